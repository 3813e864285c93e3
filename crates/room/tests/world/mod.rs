//! Whole rooms over in-memory links, shared by the room tests and the simulation: a relay that
//! speaks the relay protocol (challenge, auth, presence, forwarding, signalling), WebRTC data
//! channels whose offer and answer go through it, a BroadcastChannel bus, and storage whose
//! writes complete after a delay. The pumps here only move bytes, as the page's do; every
//! decision is the rooms'. Faults are seeded: frames dropped, duplicated and delayed, the
//! relay partitioned, agents restarted with every write not yet completed lost.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrysalis_crdt::{Encode, GCounter, ReplicaId};
use chrysalis_crypto::SigningKey;
use chrysalis_memory::BeadId;
use chrysalis_relay_protocol::{
    ClientMessage, PROTOCOL_VERSION, RoomPeer, ServerMessage, TO_EVERYONE, TO_PEER, auth_message,
    parse_peer, put_handle, take_handle,
};
use chrysalis_room::{
    LinkId, LinkKind, MemoryOptions, Output, Room, RoomConfig, RoomEvent, StorageWrite, Stored,
};
use chrysalis_sync::{PeerId, SyncConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// What one agent's pump holds for a link.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Relay { conn: usize },
    DataChannel { peer: PeerId, initiator: bool },
    Broadcast,
}

/// A delivery to an agent's room.
#[derive(Debug)]
pub enum Delivery {
    Opened(LinkId),
    Closed(LinkId),
    Binary(LinkId, Vec<u8>),
    Text(LinkId, String),
    Signal(LinkId, serde_json::Value),
    /// A storage write completed.
    Stored(u64),
}

pub struct Conn {
    agent: usize,
    link: LinkId,
    nonce: [u8; 32],
    peer: Option<PeerId>,
    open: bool,
}

/// Seeded network faults on binary frames between agents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Probability a frame is lost.
    pub drop: f64,
    /// Probability a frame arrives twice.
    pub duplicate: f64,
    /// Each frame is delayed by up to this many ms (so frames reorder).
    pub max_delay: u64,
}

/// What an agent's storage holds, by memory, and its writes not yet completed.
#[derive(Debug, Default)]
pub struct Disk {
    pub stored: BTreeMap<String, Stored>,
    pending: VecDeque<(u64, String, StorageWrite)>,
    /// When the last pending write completes (writes complete in order).
    busy_until: u64,
}

pub struct World {
    pub now: u64,
    pub rooms: Vec<Room>,
    pub keys: Vec<SigningKey>,
    pub configs: Vec<RoomConfig>,
    pub endpoints: Vec<BTreeMap<LinkId, Endpoint>>,
    pub events: Vec<Vec<RoomEvent>>,
    pub disks: Vec<Disk>,
    /// Memories each agent opened (reopened on restart).
    pub opened: Vec<Vec<(String, MemoryOptions)>>,
    /// Local writes not yet saved, by write id: the bead they carry.
    pub awaiting: Vec<BTreeMap<u64, BeadId>>,
    /// Beads whose write the agent's room reported saved (acknowledged to its user).
    pub acknowledged: Vec<Vec<BeadId>>,
    /// A restart makes deliveries to an earlier incarnation stale.
    incarnation: Vec<u32>,
    /// Agents that are down (crashed, not restarted).
    pub down: Vec<bool>,
    pub relay_up: bool,
    conns: Vec<Conn>,
    queue: BTreeMap<(u64, u64), (usize, u32, Delivery)>,
    next_seq: u64,
    pub faults: Faults,
    /// The relay's partition: agents in different groups do not hear each other's frames.
    pub groups: Vec<u8>,
    /// Twins: for a copy of a twin identity, which side of the room it talks to; for any other
    /// agent, which copy it hears (0: neither). Empty when nobody is twinned.
    pub sides: Vec<u8>,
    twin: Vec<bool>,
    /// Which key each agent holds (a twin's copies hold the same).
    identity: Vec<usize>,
    /// Agents whose storage fails every write from now on.
    pub failing_storage: BTreeSet<usize>,
    /// Storage write latency (ms).
    pub storage_delay: u64,
    rng: ChaCha8Rng,
    /// Frames and bytes the relay forwarded.
    pub relayed: (u64, u64),
}

pub fn key(i: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    seed[8] = 0x5a;
    SigningKey::from_seed(&seed).unwrap()
}

pub fn room_config(relay: bool, webrtc: bool, broadcast: bool) -> RoomConfig {
    RoomConfig {
        sync: SyncConfig {
            room: "room".into(),
            ..SyncConfig::default()
        },
        relays: if relay {
            vec!["ws://relay".into()]
        } else {
            Vec::new()
        },
        capability: None,
        webrtc,
        broadcast,
    }
}

/// A hosted memory's options: founding council `members` at `threshold`, compacting every 8.
pub fn memory_options(members: Vec<[u8; 32]>, threshold: usize) -> MemoryOptions {
    MemoryOptions {
        memory: chrysalis_memory::MemoryConfig {
            members,
            threshold,
            ..Default::default()
        },
        compact_every: 8,
        ..MemoryOptions::default()
    }
}

impl World {
    pub fn new(seed: u64) -> Self {
        World {
            now: 1_000,
            rooms: Vec::new(),
            keys: Vec::new(),
            configs: Vec::new(),
            endpoints: Vec::new(),
            events: Vec::new(),
            disks: Vec::new(),
            opened: Vec::new(),
            awaiting: Vec::new(),
            acknowledged: Vec::new(),
            incarnation: Vec::new(),
            down: Vec::new(),
            relay_up: true,
            conns: Vec::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            faults: Faults::default(),
            groups: Vec::new(),
            sides: Vec::new(),
            twin: Vec::new(),
            identity: Vec::new(),
            failing_storage: BTreeSet::new(),
            storage_delay: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            relayed: (0, 0),
        }
    }

    /// Adds an agent sharing a counter; returns its index.
    pub fn join(&mut self, relay: bool, webrtc: bool, broadcast: bool) -> usize {
        let i = self.add(room_config(relay, webrtc, broadcast));
        self.rooms[i]
            .share(self.now, "count", Box::new(GCounter::new()))
            .unwrap();
        self.pump(i);
        i
    }

    /// Adds an agent with `config` and nothing shared; returns its index.
    pub fn add(&mut self, config: RoomConfig) -> usize {
        let i = self.rooms.len();
        self.add_as(i, config)
    }

    /// Twins `agent`: a second agent with the same identity and config (returned), the two
    /// copies each talking only to the agents on their side of `sides` (1 and 2), so the
    /// identity says different things to different members.
    pub fn add_twin(&mut self, agent: usize) -> usize {
        let copy = self.add_as(self.identity[agent], self.configs[agent].clone());
        let n = self.rooms.len();
        self.sides.resize(n, 0);
        self.twin.resize(n, false);
        (self.sides[agent], self.sides[copy]) = (1, 2);
        (self.twin[agent], self.twin[copy]) = (true, true);
        copy
    }

    fn add_as(&mut self, identity: usize, config: RoomConfig) -> usize {
        let i = self.rooms.len();
        let room = Room::new(key(identity), config.clone(), self.now, i as u64).unwrap();
        self.rooms.push(room);
        self.keys.push(key(identity));
        self.identity.push(identity);
        self.configs.push(config);
        self.endpoints.push(BTreeMap::new());
        self.events.push(Vec::new());
        self.disks.push(Disk::default());
        self.opened.push(Vec::new());
        self.awaiting.push(BTreeMap::new());
        self.acknowledged.push(Vec::new());
        self.incarnation.push(0);
        self.down.push(false);
        self.pump(i);
        i
    }

    /// Opens memory `name` in `agent`'s room from what its disk holds.
    pub fn open_memory(&mut self, agent: usize, name: &str, options: MemoryOptions) {
        let stored = self.disks[agent]
            .stored
            .get(name)
            .cloned()
            .unwrap_or_default();
        self.rooms[agent]
            .open_memory(self.now, name, options.clone(), stored)
            .unwrap();
        if !self.opened[agent].iter().any(|(n, _)| n == name) {
            self.opened[agent].push((name.to_owned(), options));
        }
        self.pump(agent);
    }

    /// `agent` remembers `text` in memory `name`; the bead's id.
    pub fn remember(&mut self, agent: usize, name: &str, text: &str) -> BeadId {
        let draft = chrysalis_memory::BeadDraft {
            content: text.to_owned(),
            kind: "note".into(),
            tags: Vec::new(),
            embedding: None,
        };
        let (bead, write) = self.rooms[agent].remember(self.now, name, draft).unwrap();
        self.awaiting[agent].insert(write, bead.id);
        self.pump(agent);
        bead.id
    }

    /// `agent` crashes: its sockets close, its unfinished writes are lost, and it stays down
    /// until [`World::restart`].
    pub fn crash(&mut self, agent: usize) {
        let links: Vec<LinkId> = self.endpoints[agent].keys().copied().collect();
        for link in links {
            self.close(agent, link);
        }
        self.endpoints[agent].clear();
        let disk = &mut self.disks[agent];
        disk.pending.clear();
        disk.busy_until = 0;
        self.awaiting[agent].clear();
        self.incarnation[agent] += 1;
        self.down[agent] = true;
    }

    /// `agent` starts again from its disk (a new room, its memories reopened).
    pub fn restart(&mut self, agent: usize) {
        if !self.down[agent] {
            self.crash(agent);
        }
        self.down[agent] = false;
        let seed = self.rng.next_u64();
        self.rooms[agent] = Room::new(
            key(self.identity[agent]),
            self.configs[agent].clone(),
            self.now,
            seed,
        )
        .unwrap();
        self.pump(agent);
        let opened = self.opened[agent].clone();
        for (name, options) in opened {
            self.open_memory(agent, &name, options);
        }
    }

    pub fn id(&self, agent: usize) -> PeerId {
        self.rooms[agent].id()
    }

    /// The first agent holding `peer`'s identity.
    pub fn agent_of(&self, peer: &PeerId) -> usize {
        self.rooms.iter().position(|r| r.id() == *peer).unwrap()
    }

    pub fn increment(&mut self, agent: usize) {
        let replica = ReplicaId(agent as u64 + 1);
        let counter: &mut GCounter = self.rooms[agent].document_mut("count").unwrap();
        let delta = counter.increment(replica, 1).to_bytes();
        self.rooms[agent]
            .local_change(self.now, "count", delta)
            .unwrap();
        self.pump(agent);
    }

    pub fn value(&self, agent: usize) -> u64 {
        let doc: &dyn std::any::Any = self.rooms[agent].sync().document("count").unwrap();
        doc.downcast_ref::<GCounter>().unwrap().value()
    }

    fn schedule(&mut self, agent: usize, at: u64, delivery: Delivery) {
        self.next_seq += 1;
        let incarnation = self.incarnation[agent];
        self.queue
            .insert((at, self.next_seq), (agent, incarnation, delivery));
    }

    fn soon(&mut self, agent: usize, delivery: Delivery) {
        self.schedule(agent, self.now, delivery);
    }

    /// A frame between two agents, through the faults.
    fn carry(&mut self, from: usize, to: usize, link: LinkId, bytes: Vec<u8>) {
        if self.groups.len() > from.max(to) && self.groups[from] != self.groups[to] {
            return;
        }
        let side = |agent: usize| self.sides.get(agent).copied().unwrap_or(0);
        let twin = |agent: usize| self.twin.get(agent).copied().unwrap_or(false);
        if (twin(from) || twin(to)) && side(from) != side(to) {
            return;
        }
        let f = self.faults;
        if f.drop > 0.0 && self.chance(f.drop) {
            return;
        }
        let copies = if f.duplicate > 0.0 && self.chance(f.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if f.max_delay > 0 {
                self.rng.next_u64() % (f.max_delay + 1)
            } else {
                0
            };
            self.schedule(to, self.now + delay, Delivery::Binary(link, bytes.clone()));
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// Carries out what `agent`'s room asks.
    pub fn pump(&mut self, agent: usize) {
        while let Some(output) = self.rooms[agent].poll_output() {
            match output {
                Output::OpenRelay { link, .. } => {
                    if self.relay_up {
                        let conn = self.conns.len();
                        let mut nonce = [0u8; 32];
                        nonce[..8].copy_from_slice(&(conn as u64).to_le_bytes());
                        self.conns.push(Conn {
                            agent,
                            link,
                            nonce,
                            peer: None,
                            open: true,
                        });
                        self.endpoints[agent].insert(link, Endpoint::Relay { conn });
                        self.soon(agent, Delivery::Opened(link));
                        let challenge = ServerMessage::Challenge {
                            version: PROTOCOL_VERSION,
                            nonce: hex(&nonce),
                        };
                        self.soon(agent, Delivery::Text(link, challenge.to_text()));
                    } else {
                        self.soon(agent, Delivery::Closed(link));
                    }
                }
                Output::OpenDataChannel {
                    link,
                    peer,
                    initiator,
                } => {
                    self.endpoints[agent].insert(link, Endpoint::DataChannel { peer, initiator });
                    if initiator {
                        self.rooms[agent]
                            .local_signal(link, serde_json::json!({ "kind": "offer" }));
                    }
                }
                Output::OpenBroadcast { link, .. } => {
                    self.endpoints[agent].insert(link, Endpoint::Broadcast);
                    self.soon(agent, Delivery::Opened(link));
                }
                Output::Close { link } => {
                    self.close(agent, link);
                }
                Output::Send { link, bytes } => self.send(agent, link, bytes),
                Output::SendText { link, text } => self.relay_text(agent, link, &text),
                Output::Signal { link, data } => self.soon(agent, Delivery::Signal(link, data)),
                Output::Store { memory, id, write } => {
                    let disk = &mut self.disks[agent];
                    let at = disk.busy_until.max(self.now) + self.storage_delay;
                    disk.busy_until = at;
                    disk.pending.push_back((id, memory, write));
                    self.schedule(agent, at, Delivery::Stored(id));
                }
                Output::Event(event) => {
                    if let RoomEvent::Saved { write, .. } = &event
                        && let Some(bead) = self.awaiting[agent].remove(write)
                    {
                        self.acknowledged[agent].push(bead);
                    }
                    self.events[agent].push(event);
                }
            }
        }
    }

    fn close(&mut self, agent: usize, link: LinkId) {
        match self.endpoints[agent].remove(&link) {
            Some(Endpoint::Relay { conn }) => self.drop_conn(conn),
            Some(Endpoint::DataChannel { peer, .. }) => {
                let other = self.agent_of(&peer);
                let me = self.id(agent);
                if let Some(link) = self.data_channel_of(other, &me) {
                    self.endpoints[other].remove(&link);
                    self.soon(other, Delivery::Closed(link));
                }
            }
            _ => {}
        }
    }

    pub fn data_channel_of(&self, agent: usize, peer: &PeerId) -> Option<LinkId> {
        self.endpoints[agent].iter().find_map(|(link, e)| match e {
            Endpoint::DataChannel { peer: p, .. } if p == peer => Some(*link),
            _ => None,
        })
    }

    fn send(&mut self, agent: usize, link: LinkId, bytes: Vec<u8>) {
        match self.endpoints[agent].get(&link).cloned() {
            Some(Endpoint::Relay { conn }) => self.relay_binary(conn, &bytes),
            Some(Endpoint::DataChannel { peer, .. }) => {
                let other = self.agent_of(&peer);
                let me = self.id(agent);
                if let Some(link) = self.data_channel_of(other, &me) {
                    self.carry(agent, other, link, bytes);
                }
            }
            Some(Endpoint::Broadcast) => {
                for other in 0..self.rooms.len() {
                    if other == agent {
                        continue;
                    }
                    let links: Vec<LinkId> = self.endpoints[other]
                        .iter()
                        .filter(|(_, e)| matches!(e, Endpoint::Broadcast))
                        .map(|(l, _)| *l)
                        .collect();
                    for link in links {
                        self.carry(agent, other, link, bytes.clone());
                    }
                }
            }
            None => {}
        }
    }

    // ---- the relay ----

    fn relay_text(&mut self, agent: usize, link: LinkId, text: &str) {
        let Some(Endpoint::Relay { conn }) = self.endpoints[agent].get(&link).cloned() else {
            return;
        };
        match serde_json::from_str::<ClientMessage>(text).unwrap() {
            ClientMessage::Auth {
                version,
                room,
                peer,
                signature,
                ..
            } => {
                assert_eq!(version, PROTOCOL_VERSION);
                let peer = parse_peer(&peer).unwrap();
                let signature = hex_decode(&signature);
                assert!(chrysalis_crypto::ed25519_verify(
                    &peer,
                    &auth_message(&self.conns[conn].nonce, &room),
                    &signature
                ));
                let others: Vec<usize> = self.open_conns().filter(|&c| c != conn).collect();
                // A connection's index is its peer's handle.
                let peers = others
                    .iter()
                    .map(|&c| RoomPeer {
                        peer: hex(&self.conns[c].peer.unwrap()),
                        handle: c as u32,
                        write: true,
                    })
                    .collect();
                self.conns[conn].peer = Some(peer);
                let handle = conn as u32;
                self.tell(
                    conn,
                    &ServerMessage::Welcome {
                        peer: hex(&peer),
                        handle,
                        peers,
                        write: true,
                        archive: None,
                    },
                );
                for c in others {
                    let peer = hex(&peer);
                    self.tell(
                        c,
                        &ServerMessage::PeerJoined {
                            peer,
                            handle,
                            write: true,
                        },
                    );
                }
            }
            ClientMessage::Signal { to, data } => {
                let to = parse_peer(&to).unwrap();
                let from = hex(&self.conns[conn].peer.unwrap());
                let target = self.open_conns().find(|&c| self.conns[c].peer == Some(to));
                if let Some(c) = target {
                    self.tell(c, &ServerMessage::Signal { from, data });
                }
            }
        }
    }

    fn relay_binary(&mut self, conn: usize, bytes: &[u8]) {
        if self.conns[conn].peer.is_none() {
            return;
        }
        let (targets, frame): (Vec<usize>, &[u8]) = match bytes[0] {
            TO_EVERYONE => (
                self.open_conns().filter(|&c| c != conn).collect(),
                &bytes[1..],
            ),
            TO_PEER => {
                let (to, frame) = take_handle(&bytes[1..]).expect("a handle");
                (
                    self.open_conns().filter(|&c| c == to as usize).collect(),
                    frame,
                )
            }
            _ => panic!("bad header"),
        };
        let sender = self.conns[conn].agent;
        for c in targets {
            let (agent, link) = (self.conns[c].agent, self.conns[c].link);
            let mut message = Vec::with_capacity(5 + frame.len());
            put_handle(&mut message, conn as u32);
            message.extend_from_slice(frame);
            self.relayed.0 += 1;
            self.relayed.1 += message.len() as u64;
            self.carry(sender, agent, link, message);
        }
    }

    fn open_conns(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.conns.len()).filter(|&c| self.conns[c].open && self.conns[c].peer.is_some())
    }

    fn tell(&mut self, conn: usize, message: &ServerMessage) {
        let (agent, link) = (self.conns[conn].agent, self.conns[conn].link);
        self.soon(agent, Delivery::Text(link, message.to_text()));
    }

    fn drop_conn(&mut self, conn: usize) {
        if !std::mem::replace(&mut self.conns[conn].open, false) {
            return;
        }
        if let Some(peer) = self.conns[conn].peer {
            let others: Vec<usize> = self.open_conns().collect();
            for c in others {
                self.tell(c, &ServerMessage::PeerLeft { peer: hex(&peer) });
            }
        }
    }

    /// The relay process stops: every socket closes.
    pub fn stop_relay(&mut self) {
        self.relay_up = false;
        for conn in 0..self.conns.len() {
            if self.conns[conn].open {
                self.conns[conn].open = false;
                let (agent, link) = (self.conns[conn].agent, self.conns[conn].link);
                self.endpoints[agent].remove(&link);
                self.soon(agent, Delivery::Closed(link));
            }
        }
    }

    // ---- running ----

    fn deliver(&mut self, agent: usize, delivery: Delivery) {
        let now = self.now;
        if let Delivery::Stored(id) = delivery {
            let disk = &mut self.disks[agent];
            let (done, name, write) = disk.pending.pop_front().expect("a pending write");
            assert_eq!(done, id, "writes complete in order");
            // The pump carries out only the writes the room still wants.
            if !self.rooms[agent].write_wanted(id) {
                return;
            }
            if self.failing_storage.contains(&agent) {
                self.rooms[agent]
                    .storage_failed(now, id, "QUOTA_EXCEEDED", "the disk is full")
                    .unwrap();
                self.pump(agent);
                return;
            }
            let disk = &mut self.disks[agent];
            let stored = disk.stored.entry(name).or_default();
            match write {
                StorageWrite::Append(entries) => stored.journal.extend(entries),
                StorageWrite::Snapshot(bytes) => {
                    stored.snapshot = Some(bytes);
                    stored.journal.clear();
                }
                StorageWrite::Council(bytes) => stored.council = Some(bytes),
            }
            self.rooms[agent].stored(now, id).unwrap();
            self.pump(agent);
            return;
        }
        let room = &mut self.rooms[agent];
        match delivery {
            Delivery::Opened(link) => room.link_opened(now, link),
            Delivery::Closed(link) => room.link_closed(now, link),
            Delivery::Binary(link, bytes) => room.receive(now, link, &bytes),
            Delivery::Text(link, text) => room.receive_text(now, link, &text),
            Delivery::Signal(link, data) => {
                // The peer connection takes the remote signalling: an offer is answered, an
                // answer opens the channel on both sides.
                let Some(Endpoint::DataChannel { peer, initiator }) =
                    self.endpoints[agent].get(&link).cloned()
                else {
                    return;
                };
                match (data["kind"].as_str(), initiator) {
                    (Some("offer"), false) => {
                        room.local_signal(link, serde_json::json!({ "kind": "answer" }));
                    }
                    (Some("answer"), true) => {
                        room.link_opened(now, link);
                        let other = self.agent_of(&peer);
                        let me = self.id(agent);
                        if let Some(theirs) = self.data_channel_of(other, &me) {
                            self.soon(other, Delivery::Opened(theirs));
                        }
                    }
                    _ => {}
                }
            }
            Delivery::Stored(_) => unreachable!("handled above"),
        }
        self.pump(agent);
    }

    /// Runs until `until` (ms): deliveries and timers in time order.
    pub fn run(&mut self, until: u64) {
        loop {
            let next_delivery = self.queue.keys().next().map_or(u64::MAX, |(at, _)| *at);
            let next_timer = (0..self.rooms.len())
                .filter(|&i| !self.down[i])
                .map(|i| self.rooms[i].timeout())
                .min()
                .unwrap_or(u64::MAX);
            let next = next_delivery.min(next_timer);
            if next > until {
                self.now = self.now.max(until);
                return;
            }
            self.now = self.now.max(next);
            if next_delivery <= next_timer {
                let (_, (agent, incarnation, delivery)) = self.queue.pop_first().unwrap();
                if incarnation == self.incarnation[agent] && !self.down[agent] {
                    self.deliver(agent, delivery);
                }
                continue;
            }
            for agent in 0..self.rooms.len() {
                if !self.down[agent] && self.rooms[agent].timeout() <= self.now {
                    self.rooms[agent].tick(self.now);
                    // A page's pump runs a tick that is due at once in a microtask: a Room that
                    // wanted another at once after its tick would hold the page's task forever.
                    assert!(
                        self.rooms[agent].timeout() > self.now,
                        "agent {agent} wants a tick again at {}",
                        self.now
                    );
                    self.pump(agent);
                }
            }
        }
    }

    pub fn peers_via(&self, agent: usize) -> Vec<(usize, Vec<LinkKind>)> {
        self.rooms[agent]
            .peers()
            .map(|(peer, _, via)| (self.agent_of(&peer), via))
            .collect()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}
