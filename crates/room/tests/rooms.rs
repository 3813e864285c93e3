//! Whole rooms over in-memory links: a relay that speaks the relay protocol (challenge, auth,
//! presence, forwarding, signalling), WebRTC data channels whose offer and answer go through
//! it, and a BroadcastChannel bus. The pumps here only move bytes, as the page's do; every
//! decision is the rooms'.

use std::collections::{BTreeMap, VecDeque};

use chrysalis_crdt::{Encode, GCounter, ReplicaId};
use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{
    ClientMessage, PROTOCOL_VERSION, RelayState, ServerMessage, TO_EVERYONE, TO_PEER, auth_message,
    parse_peer,
};
use chrysalis_room::{LinkId, LinkKind, Output, Room, RoomConfig, RoomEvent};
use chrysalis_sync::{PeerId, SyncConfig};

/// What one agent's pump holds for a link.
#[derive(Debug, Clone)]
enum Endpoint {
    Relay { conn: usize },
    DataChannel { peer: PeerId, initiator: bool },
    Broadcast,
}

/// A delivery to an agent's room.
#[derive(Debug)]
enum Delivery {
    Opened(LinkId),
    Closed(LinkId),
    Binary(LinkId, Vec<u8>),
    Text(LinkId, String),
    Signal(LinkId, serde_json::Value),
}

struct Conn {
    agent: usize,
    link: LinkId,
    nonce: [u8; 32],
    peer: Option<PeerId>,
    open: bool,
}

struct World {
    now: u64,
    rooms: Vec<Room>,
    keys: Vec<SigningKey>,
    endpoints: Vec<BTreeMap<LinkId, Endpoint>>,
    events: Vec<Vec<RoomEvent>>,
    relay_up: bool,
    conns: Vec<Conn>,
    queue: VecDeque<(usize, Delivery)>,
}

fn key(i: usize) -> SigningKey {
    SigningKey::from_seed(&[i as u8 + 1; 32]).unwrap()
}

impl World {
    fn new() -> Self {
        World {
            now: 1_000,
            rooms: Vec::new(),
            keys: Vec::new(),
            endpoints: Vec::new(),
            events: Vec::new(),
            relay_up: true,
            conns: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// Adds an agent sharing a counter; returns its index.
    fn join(&mut self, relay: bool, webrtc: bool, broadcast: bool) -> usize {
        let i = self.rooms.len();
        let config = RoomConfig {
            sync: SyncConfig {
                room: "room".into(),
                ..SyncConfig::default()
            },
            relay,
            webrtc,
            broadcast,
        };
        let mut room = Room::new(key(i), config, self.now, i as u64).unwrap();
        room.share(self.now, "count", Box::new(GCounter::new()))
            .unwrap();
        self.rooms.push(room);
        self.keys.push(key(i));
        self.endpoints.push(BTreeMap::new());
        self.events.push(Vec::new());
        self.pump(i);
        i
    }

    fn id(&self, agent: usize) -> PeerId {
        self.rooms[agent].id()
    }

    fn agent_of(&self, peer: &PeerId) -> usize {
        self.rooms.iter().position(|r| r.id() == *peer).unwrap()
    }

    fn increment(&mut self, agent: usize) {
        let replica = ReplicaId(agent as u64 + 1);
        let counter: &mut GCounter = self.rooms[agent].document_mut("count").unwrap();
        let delta = counter.increment(replica, 1).to_bytes();
        self.rooms[agent]
            .local_change(self.now, "count", delta)
            .unwrap();
        self.pump(agent);
    }

    fn value(&self, agent: usize) -> u64 {
        let doc: &dyn std::any::Any = self.rooms[agent].sync().document("count").unwrap();
        doc.downcast_ref::<GCounter>().unwrap().value()
    }

    /// Carries out what `agent`'s room asks.
    fn pump(&mut self, agent: usize) {
        while let Some(output) = self.rooms[agent].poll_output() {
            match output {
                Output::OpenRelay { link } => {
                    if self.relay_up {
                        let conn = self.conns.len();
                        let nonce = [conn as u8; 32];
                        self.conns.push(Conn {
                            agent,
                            link,
                            nonce,
                            peer: None,
                            open: true,
                        });
                        self.endpoints[agent].insert(link, Endpoint::Relay { conn });
                        self.queue.push_back((agent, Delivery::Opened(link)));
                        let challenge = ServerMessage::Challenge {
                            version: PROTOCOL_VERSION,
                            nonce: hex(&nonce),
                        };
                        self.queue
                            .push_back((agent, Delivery::Text(link, challenge.to_text())));
                    } else {
                        self.queue.push_back((agent, Delivery::Closed(link)));
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
                    self.queue.push_back((agent, Delivery::Opened(link)));
                }
                Output::Close { link } => self.close(agent, link),
                Output::Send { link, bytes } => self.send(agent, link, bytes),
                Output::SendText { link, text } => self.relay_text(agent, link, &text),
                Output::Signal { link, data } => {
                    self.queue.push_back((agent, Delivery::Signal(link, data)));
                }
                Output::Event(event) => self.events[agent].push(event),
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
                    self.queue.push_back((other, Delivery::Closed(link)));
                }
            }
            _ => {}
        }
    }

    fn data_channel_of(&self, agent: usize, peer: &PeerId) -> Option<LinkId> {
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
                    self.queue.push_back((other, Delivery::Binary(link, bytes)));
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
                        self.queue
                            .push_back((other, Delivery::Binary(link, bytes.clone())));
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
                room,
                peer,
                signature,
            } => {
                let peer = parse_peer(&peer).unwrap();
                let signature = hex_decode(&signature);
                assert!(chrysalis_crypto::ed25519_verify(
                    &peer,
                    &auth_message(&self.conns[conn].nonce, &room),
                    &signature
                ));
                let others: Vec<usize> = self.open_conns().filter(|&c| c != conn).collect();
                let peers = others
                    .iter()
                    .map(|&c| hex(&self.conns[c].peer.unwrap()))
                    .collect();
                self.conns[conn].peer = Some(peer);
                self.tell(
                    conn,
                    &ServerMessage::Welcome {
                        peer: hex(&peer),
                        peers,
                    },
                );
                for c in others {
                    self.tell(c, &ServerMessage::PeerJoined { peer: hex(&peer) });
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
        let from = self.conns[conn].peer.unwrap();
        let (targets, frame): (Vec<usize>, &[u8]) = match bytes[0] {
            TO_EVERYONE => (
                self.open_conns().filter(|&c| c != conn).collect(),
                &bytes[1..],
            ),
            TO_PEER => {
                let to: PeerId = bytes[1..33].try_into().unwrap();
                (
                    self.open_conns()
                        .filter(|&c| self.conns[c].peer == Some(to))
                        .collect(),
                    &bytes[33..],
                )
            }
            _ => panic!("bad header"),
        };
        for c in targets {
            let (agent, link) = (self.conns[c].agent, self.conns[c].link);
            let message = [&from[..], frame].concat();
            self.queue
                .push_back((agent, Delivery::Binary(link, message)));
        }
    }

    fn open_conns(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.conns.len()).filter(|&c| self.conns[c].open && self.conns[c].peer.is_some())
    }

    fn tell(&mut self, conn: usize, message: &ServerMessage) {
        let (agent, link) = (self.conns[conn].agent, self.conns[conn].link);
        self.queue
            .push_back((agent, Delivery::Text(link, message.to_text())));
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
    fn stop_relay(&mut self) {
        self.relay_up = false;
        for conn in 0..self.conns.len() {
            if self.conns[conn].open {
                self.conns[conn].open = false;
                let (agent, link) = (self.conns[conn].agent, self.conns[conn].link);
                self.endpoints[agent].remove(&link);
                self.queue.push_back((agent, Delivery::Closed(link)));
            }
        }
    }

    // ---- running ----

    fn deliver(&mut self, agent: usize, delivery: Delivery) {
        let now = self.now;
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
                            self.queue.push_back((other, Delivery::Opened(theirs)));
                        }
                    }
                    _ => {}
                }
            }
        }
        self.pump(agent);
    }

    /// Runs until `until` (ms): deliveries first, then timers in time order.
    fn run(&mut self, until: u64) {
        loop {
            while let Some((agent, delivery)) = self.queue.pop_front() {
                self.deliver(agent, delivery);
            }
            let next = (0..self.rooms.len())
                .map(|i| self.rooms[i].timeout())
                .min()
                .unwrap_or(u64::MAX);
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            for agent in 0..self.rooms.len() {
                if self.rooms[agent].timeout() <= self.now {
                    self.rooms[agent].tick(self.now);
                    self.pump(agent);
                }
            }
        }
    }

    fn peers_via(&self, agent: usize) -> Vec<(usize, Vec<LinkKind>)> {
        self.rooms[agent]
            .peers()
            .map(|(peer, _, via)| (self.agent_of(&peer), via))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn three_rooms_converge_through_the_relay_and_a_late_one_catches_up() {
    let mut world = World::new();
    let agents: Vec<usize> = (0..3).map(|_| world.join(true, false, false)).collect();
    world.run(world.now + 100);
    for &a in &agents {
        assert_eq!(world.rooms[a].relay_state(), Some(RelayState::Open));
        assert_eq!(world.peers_via(a).len(), 2);
        world.increment(a);
    }
    world.run(world.now + 100);
    for &a in &agents {
        assert_eq!(world.value(a), 3, "agent {a}");
    }
    // A change to every peer over the relay is one frame to everyone.
    let sent = world.rooms[0].traffic(LinkKind::Relay).frames_sent;
    world.increment(0);
    assert_eq!(
        world.rooms[0].traffic(LinkKind::Relay).frames_sent,
        sent + 1
    );
    let late = world.join(true, false, false);
    world.run(world.now + 2_000);
    assert_eq!(world.value(late), 4, "the late room caught up");
    assert!(world.events[1].iter().any(
        |e| matches!(e, RoomEvent::PeerJoined { peer, via: LinkKind::Relay } if *peer == world.id(late))
    ));
}

#[test]
fn data_channels_carry_the_room_while_the_relay_is_down_and_the_relay_comes_back() {
    let mut world = World::new();
    let (a, b) = (world.join(true, true, false), world.join(true, true, false));
    world.run(world.now + 100);
    for (agent, other) in [(a, b), (b, a)] {
        assert_eq!(
            world.peers_via(agent),
            vec![(other, vec![LinkKind::Relay, LinkKind::WebRtc])]
        );
    }
    world.increment(a);
    world.run(world.now + 100);
    assert_eq!(world.value(b), 1);
    assert!(
        world.rooms[a].traffic(LinkKind::WebRtc).frames_sent > 0,
        "direct first"
    );
    let relayed = world.rooms[a].traffic(LinkKind::Relay).frames_sent;

    world.stop_relay();
    world.run(world.now + 100);
    assert!(matches!(
        world.rooms[a].relay_state(),
        Some(RelayState::Waiting { .. })
    ));
    world.increment(b);
    world.run(world.now + 100);
    assert_eq!(world.value(a), 2, "replicated over the data channel alone");
    assert_eq!(world.rooms[a].traffic(LinkKind::Relay).frames_sent, relayed);

    // Reconnection attempts back off while the relay is down, then succeed when it is up.
    world.run(world.now + 5_000);
    let attempts = world.events[a]
        .iter()
        .filter(|e| {
            matches!(
                e,
                RoomEvent::ConnectionState {
                    transport: LinkKind::Relay,
                    state: "connecting",
                    ..
                }
            )
        })
        .count();
    assert!((3..=12).contains(&attempts), "{attempts} attempts in 5 s");
    world.relay_up = true;
    world.run(world.now + 40_000);
    assert_eq!(world.rooms[a].relay_state(), Some(RelayState::Open));
    assert_eq!(
        world.peers_via(a),
        vec![(b, vec![LinkKind::Relay, LinkKind::WebRtc])]
    );
}

#[test]
fn tabs_find_each_other_over_the_broadcast_channel_and_leave_with_a_goodbye() {
    let mut world = World::new();
    let (a, b, c) = (
        world.join(false, false, true),
        world.join(false, false, true),
        world.join(false, false, true),
    );
    world.run(world.now + 100);
    assert_eq!(world.peers_via(a).len(), 2);
    world.increment(c);
    world.run(world.now + 100);
    assert_eq!((world.value(a), world.value(b)), (1, 1));
    // Junk and a replayed hello on the channel change nothing.
    let link = *world.endpoints[a].keys().next().unwrap();
    world.rooms[a].receive(world.now, link, &[9, 9, 9]);
    world.rooms[a].receive(world.now, link, &[]);
    assert_eq!(world.peers_via(a).len(), 2);
    // C leaves: its goodbye unlinks it at once.
    world.rooms[c].close(world.now);
    world.pump(c);
    world.run(world.now + 10);
    assert_eq!(world.peers_via(a), vec![(b, vec![LinkKind::Broadcast])]);
    assert!(world.events[a].iter().any(
        |e| matches!(e, RoomEvent::PeerLeft { peer, via: LinkKind::Broadcast } if *peer == world.id(c))
    ));
    // A tab that stops saying hello times out.
    let silent = world.endpoints[b].keys().copied().collect::<Vec<_>>();
    for link in silent {
        world.endpoints[b].remove(&link);
    }
    world.run(world.now + 10_000);
    assert!(world.peers_via(a).is_empty());
}
