//! Memories a [`Room`] hosts: each is a [`Memory`] shared with the room as a document, plus the
//! policy that keeps it: the durable journal and its compaction, the council's log of decided
//! motions, and the council's agreement, whose messages travel on the sync layer's application
//! channel (point to point, signed like every frame) rather than as changes of a document.
//!
//! Storage is the pump's: the room asks for writes ([`Output::Store`]) and hears when each
//! completed ([`Room::stored`]), in the order asked. A local change is sent to peers, and
//! reported ([`RoomEvent::Saved`]), only once its write completed; a decided motion is reported
//! once the council log holding it is written. A restart that loses writes not yet completed
//! loses only what was never acknowledged.

use std::collections::VecDeque;

use chrysalis_memory::byzantine::{Output as AgreementOutput, Recipient as AgreementRecipient};
use chrysalis_memory::{
    Agreement, AgreementConfig, AgreementEvent, BeadDraft, BeadId, Hit, Identity, Membership,
    Memory, MemoryChange, MemoryConfig, MemoryError, Motion, PublicKey, Query,
};
use chrysalis_sync::{Document, PeerId};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::RoomError;
use crate::room::{Output, Room, RoomEvent};

/// Random bytes before each proposed motion: the agreement decides a value once, and the same
/// motion may rightly be proposed again later (a threshold set back to an earlier value).
pub const MOTION_NONCE: usize = 8;
/// Other members' pending motions remembered for [`Room::endorse`] (the oldest is forgotten).
pub const MAX_REQUESTED: usize = 64;
/// Why membership motions are refused: a newcomer would need the decided log handed over.
const MEMBERSHIP_NOT_SUPPORTED: &str =
    "membership changes are not proposed yet: open every member with the new council";
/// The format of the stored council log.
const COUNCIL_LOG_VERSION: u8 = 4;

/// How a hosted memory starts and is kept.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// The memory: founding council, threshold, index tuning.
    pub memory: MemoryConfig,
    /// The council agreement's timing.
    pub agreement: AgreementConfig,
    /// Journal entries after which the snapshot is rewritten and the journal cleared.
    pub compact_every: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            memory: MemoryConfig::default(),
            agreement: AgreementConfig::default(),
            compact_every: 200,
        }
    }
}

/// What storage held for a memory when it was opened (every completed write, nothing else).
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The last snapshot.
    pub snapshot: Option<Vec<u8>>,
    /// Journal entries appended since, oldest first.
    pub journal: Vec<Vec<u8>>,
    /// The council log.
    pub council: Option<Vec<u8>>,
}

/// A write the pump must make durable, then report with [`Room::stored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageWrite {
    /// Append these entries to the journal, in order, in one transaction.
    Append(Vec<Vec<u8>>),
    /// Replace the snapshot with this one and clear the journal, in one transaction.
    Snapshot(Vec<u8>),
    /// Replace the council log.
    Council(Vec<u8>),
}

/// What the council's agreement did, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouncilEvent {
    /// Another member asked for `motion` (`value` is its id for [`Room::endorse`]).
    Requested {
        /// The agreement value (nonce and motion).
        value: Vec<u8>,
        /// The motion.
        motion: Motion,
        /// The member who asked.
        by: PublicKey,
    },
    /// Slot `seq` decided `value`, and the council log holding it is durable.
    Decided {
        /// The slot.
        seq: u64,
        /// The view it was decided in.
        view: u64,
        /// The agreement value (nonce and motion).
        value: Vec<u8>,
        /// The motion, if the value was one.
        motion: Option<Motion>,
        /// The members whose requests endorsed it.
        endorsers: Vec<PublicKey>,
        /// Why every member refused to apply it (code and message), if they did.
        refused: Option<(&'static str, String)>,
    },
    /// The agreement entered `view`, led by `leader`.
    ViewChanged {
        /// The view.
        view: u64,
        /// Its leader.
        leader: PublicKey,
    },
}

/// The council log as stored: what was decided, so that a reload applies it again and never
/// applies a decided value twice (the agreement restarts at slot 1 after a reload, so slots
/// cannot say what was applied; each value has its own random nonce).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CouncilLog {
    version: u8,
    /// Which founding council the motions were decided in (they count for no other).
    founding: [u8; 32],
    /// BLAKE3 of every decided value, applied or refused.
    decided: Vec<[u8; 32]>,
    /// Applied motions with their endorsers.
    motions: Vec<(Vec<u8>, Vec<PublicKey>)>,
}

/// A write asked for and not yet reported complete, with what waits on it.
#[derive(Debug)]
struct InFlight {
    id: u64,
    /// This agent's writes it makes durable.
    durable: u64,
    /// Local deltas to send once it completed.
    send: Vec<Vec<u8>>,
    /// Events to report once it completed.
    events: Vec<RoomEvent>,
}

/// The policy state of one hosted memory (the [`Memory`] itself is the sync node's document).
pub(crate) struct Host {
    compact_every: usize,
    journal_len: usize,
    in_flight: VecDeque<InFlight>,
    log: CouncilLog,
    agreement: Option<Agreement>,
    /// The council's `motion_endorsements` last given to the agreement (which clamps it).
    order_wanted: usize,
    /// A write failed: no more writes are asked for, no local change is taken.
    failed: bool,
    requested: VecDeque<Vec<u8>>,
}

impl Host {
    /// When the agreement wants a tick.
    pub(crate) fn wake_at(&self) -> u64 {
        self.agreement.as_ref().map_or(u64::MAX, Agreement::wake_at)
    }
}

impl Room {
    /// Opens memory `name` from what storage held, shares it with the room and, when this agent
    /// is on its council, starts the council's agreement. Journal entries are replayed on the
    /// snapshot (and compacted at once); decided motions are applied again with their endorsers.
    pub fn open_memory(
        &mut self,
        now: u64,
        name: &str,
        options: MemoryOptions,
        stored: Stored,
    ) -> Result<(), RoomError> {
        self.check_open()?;
        if self.memories.contains_key(name) {
            return Err(RoomError::BadArgument("a memory of this name is open"));
        }
        let me = Identity::from_seed(&*self.key.seed()).map_err(memory_error)?;
        let founding = founding_id(&me, &options.memory);
        let mut memory =
            Memory::new(me, options.memory, stored.snapshot.as_deref()).map_err(memory_error)?;
        let log = match stored.council.as_deref() {
            None => None,
            Some(bytes) => Some(
                postcard::from_bytes::<CouncilLog>(bytes)
                    .map_err(|_| RoomError::BadArgument("the stored council log is damaged"))?,
            ),
        };
        // A log of another founding council or format counts for nothing here.
        let log = log
            .filter(|log| log.version == COUNCIL_LOG_VERSION && log.founding == founding)
            .unwrap_or(CouncilLog {
                version: COUNCIL_LOG_VERSION,
                founding,
                ..CouncilLog::default()
            });
        for (motion, endorsers) in &log.motions {
            let motion = Motion::from_bytes(motion).map_err(memory_error)?;
            memory
                .apply_motion(&motion, endorsers)
                .map_err(memory_error)?;
        }
        for delta in &stored.journal {
            memory
                .apply(delta)
                .map_err(|_| RoomError::BadArgument("a stored journal entry is damaged"))?;
        }
        memory.take_journal();
        memory.take_changes();
        memory.durable_through(memory.own_seq());
        let agreement = self.start_agreement(now, name, &memory, &options.agreement)?;
        let order_wanted = memory.council().motion_endorsements();
        let compact = !stored.journal.is_empty();
        let out = self.sync.share(now, name, Box::new(memory))?;
        self.absorb(out);
        self.memories.insert(
            name.to_owned(),
            Host {
                compact_every: options.compact_every.max(1),
                journal_len: 0,
                in_flight: VecDeque::new(),
                failed: false,
                log,
                agreement,
                order_wanted,
                requested: VecDeque::new(),
            },
        );
        if compact {
            self.compact(name);
        }
        if let Some(agreement) = &mut self
            .memories
            .get_mut(name)
            .and_then(|h| h.agreement.as_mut())
        {
            let out = agreement.handle_tick(now);
            self.agreement_output(now, name, out);
        }
        self.after(now);
        Ok(())
    }

    /// Stops hosting memory `name` (no longer replicated; writes in flight are forgotten);
    /// whether it was open.
    pub fn close_memory(&mut self, name: &str) -> bool {
        let Some(host) = self.memories.remove(name) else {
            return false;
        };
        self.forgotten_writes
            .extend(host.in_flight.iter().map(|w| w.id));
        self.sync.unshare(name);
        true
    }

    /// Memory `name`, to read.
    pub fn memory(&self, name: &str) -> Option<&Memory> {
        let doc: &dyn std::any::Any = self.sync.document(name)?;
        doc.downcast_ref()
    }

    /// Memory `name`'s council agreement, when this agent is on its council.
    pub fn agreement(&self, name: &str) -> Option<&Agreement> {
        self.memories.get(name)?.agreement.as_ref()
    }

    /// Memory `name`'s journal entries since its last snapshot, and its writes in flight.
    pub fn journal(&self, name: &str) -> Option<(usize, usize)> {
        let host = self.memories.get(name)?;
        Some((host.journal_len, host.in_flight.len()))
    }

    /// Remembers a bead made from `draft`; returns it and the write whose completion makes it
    /// durable (then it is sent, and [`RoomEvent::Saved`] reports it).
    pub fn remember(
        &mut self,
        now: u64,
        name: &str,
        draft: BeadDraft,
    ) -> Result<(chrysalis_memory::Bead, u64), RoomError> {
        self.check_writable(name)?;
        let bead = self
            .memory_mut(name)?
            .remember(draft, now)
            .map_err(memory_error)?;
        let write = self.settle_local(now, name);
        Ok((bead, write))
    }

    /// Forgets a bead this agent wrote; whether it was here, and the write (see
    /// [`Room::remember`]).
    pub fn forget(&mut self, now: u64, name: &str, id: &BeadId) -> Result<(bool, u64), RoomError> {
        self.check_writable(name)?;
        let found = self
            .memory_mut(name)?
            .forget(id, now)
            .map_err(memory_error)?;
        Ok((found, self.settle_local(now, name)))
    }

    /// Approves a bead; whether the approval is new, and the write (see [`Room::remember`]).
    pub fn approve(&mut self, now: u64, name: &str, id: &BeadId) -> Result<(bool, u64), RoomError> {
        self.check_writable(name)?;
        let fresh = self
            .memory_mut(name)?
            .approve(id, now)
            .map_err(memory_error)?;
        Ok((fresh, self.settle_local(now, name)))
    }

    /// The best beads of memory `name` for `query`.
    pub fn recall(&mut self, name: &str, query: &Query<'_>) -> Result<Vec<Hit>, RoomError> {
        self.memory_mut(name)?.recall(query).map_err(memory_error)
    }

    /// Proposes `motion` to memory `name`'s council: this member's signed request. Returns the
    /// agreement value (a random nonce and the motion): [`CouncilEvent::Decided`] carries it.
    pub fn propose(&mut self, now: u64, name: &str, motion: &Motion) -> Result<Vec<u8>, RoomError> {
        self.check_writable(name)?;
        if matches!(
            motion,
            Motion::Admit(_) | Motion::Remove(_) | Motion::Rotate(_)
        ) {
            return Err(RoomError::NotSupported(MEMBERSHIP_NOT_SUPPORTED));
        }
        let mut value = vec![0; MOTION_NONCE];
        self.rng.fill_bytes(&mut value);
        value.extend_from_slice(&motion.to_bytes());
        self.request(now, name, value.clone())?;
        Ok(value)
    }

    /// Endorses another member's pending motion (the value of its [`CouncilEvent::Requested`]);
    /// returns the motion.
    pub fn endorse(&mut self, now: u64, name: &str, value: &[u8]) -> Result<Motion, RoomError> {
        self.check_writable(name)?;
        let membership = value
            .get(MOTION_NONCE..)
            .and_then(|m| Motion::from_bytes(m).ok())
            .is_some_and(|m| matches!(m, Motion::Admit(_) | Motion::Remove(_) | Motion::Rotate(_)));
        if membership {
            return Err(RoomError::NotSupported(MEMBERSHIP_NOT_SUPPORTED));
        }
        let host = self.memories.get(name).ok_or(RoomError::UnknownMemory)?;
        let motion = host
            .requested
            .iter()
            .any(|v| v == value)
            .then(|| Motion::from_bytes(&value[MOTION_NONCE..]).ok())
            .flatten()
            .ok_or(RoomError::BadArgument(
                "no pending motion of another member has this value",
            ))?;
        self.request(now, name, value.to_vec())?;
        Ok(motion)
    }

    /// The pump completed write `id` (writes complete in the order they were asked).
    pub fn stored(&mut self, now: u64, id: u64) -> Result<(), RoomError> {
        if self.forgotten_writes.remove(&id) {
            return Ok(());
        }
        let Some((name, host)) = self
            .memories
            .iter_mut()
            .find(|(_, h)| h.in_flight.front().is_some_and(|w| w.id == id))
        else {
            return Err(RoomError::BadArgument(
                "no write of this id is the next to complete",
            ));
        };
        let name = name.clone();
        let done = host.in_flight.pop_front().expect("found above");
        if let Some(memory) = self.sync.document_mut::<Memory>(&name) {
            memory.durable_through(done.durable);
        }
        for delta in done.send {
            // A change the push refuses (too large for one frame, or the document unshared)
            // is durable all the same and reaches peers through anti-entropy.
            if let Ok(out) = self.sync.local_change(now, &name, delta) {
                self.absorb(out);
            }
        }
        self.out.extend(done.events.into_iter().map(Output::Event));
        self.after(now);
        Ok(())
    }

    /// The pump's storage failed write `id`: that memory stops (see
    /// [`RoomEvent::StorageFailed`]). The failure of a closed memory's write is ignored.
    pub fn storage_failed(
        &mut self,
        now: u64,
        id: u64,
        code: &str,
        message: &str,
    ) -> Result<(), RoomError> {
        if self.forgotten_writes.remove(&id) {
            return Ok(());
        }
        let Some((name, host)) = self
            .memories
            .iter_mut()
            .find(|(_, h)| h.in_flight.front().is_some_and(|w| w.id == id))
        else {
            return Err(RoomError::BadArgument(
                "no write of this id is the next to complete",
            ));
        };
        host.failed = true;
        host.in_flight.clear();
        // Its decisions could no longer be logged: the member falls silent.
        host.agreement = None;
        self.out.push_back(Output::Event(RoomEvent::StorageFailed {
            memory: name.clone(),
            code: code.chars().take(64).collect(),
            message: message.chars().take(512).collect(),
        }));
        self.after(now);
        Ok(())
    }

    /// Whether the pump should still carry out write `id`: not once its memory's storage failed
    /// (a journal must not hold an entry whose predecessor was lost), nor once its memory was
    /// closed (nothing waits on it, and a reopened memory must not see it land after its load).
    pub fn write_wanted(&self, id: u64) -> bool {
        self.memories
            .values()
            .any(|h| h.in_flight.iter().any(|w| w.id == id))
    }

    // ---- internals ----

    fn check_writable(&self, name: &str) -> Result<(), RoomError> {
        match self.memories.get(name) {
            Some(host) if host.failed => Err(RoomError::StorageFailed),
            _ => Ok(()),
        }
    }

    /// Fires the councils' agreement timers that are due.
    pub(crate) fn tick_agreements(&mut self, now: u64) {
        let due: Vec<String> = self
            .memories
            .iter()
            .filter(|(_, h)| h.wake_at() <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            if let Some(agreement) = self
                .memories
                .get_mut(&name)
                .and_then(|h| h.agreement.as_mut())
            {
                let out = agreement.handle_tick(now);
                self.agreement_output(now, &name, out);
            }
        }
        self.after(now);
    }

    fn memory_mut(&mut self, name: &str) -> Result<&mut Memory, RoomError> {
        self.check_open()?;
        if !self.memories.contains_key(name) {
            return Err(RoomError::UnknownMemory);
        }
        self.sync
            .document_mut::<Memory>(name)
            .ok_or(RoomError::UnknownMemory)
    }

    fn start_agreement(
        &self,
        now: u64,
        name: &str,
        memory: &Memory,
        config: &AgreementConfig,
    ) -> Result<Option<Agreement>, RoomError> {
        let council = memory.council();
        if !council.is_member(&self.id) {
            return Ok(None);
        }
        let members: Vec<PublicKey> = council.members().copied().collect();
        // The scope binds the council's messages to this room and memory.
        // Length-prefixed: room "x" with memory "a/b" is not room "x/a" with memory "b".
        let scope = format!("{}:{}/{name}", self.name.len(), self.name);
        let membership = Membership::at_epoch(members, council.epoch())
            .map_err(memory_error)?
            .within(&scope);
        let key = chrysalis_crypto::SigningKey::from_seed(&*self.key.seed()).expect("a key's seed");
        let mut agreement =
            Agreement::new(key, membership, config.clone(), now).map_err(memory_error)?;
        let _ = agreement.set_order_at(now, council.motion_endorsements());
        Ok(Some(agreement))
    }

    fn request(&mut self, now: u64, name: &str, value: Vec<u8>) -> Result<(), RoomError> {
        self.check_open()?;
        let host = self
            .memories
            .get_mut(name)
            .ok_or(RoomError::UnknownMemory)?;
        let agreement = host.agreement.as_mut().ok_or(RoomError::NotMember)?;
        let out = agreement.propose(now, value).map_err(memory_error)?;
        self.agreement_output(now, name, out);
        self.after(now);
        Ok(())
    }

    /// Journals a local change and asks for its write; the write's id. The change's events,
    /// its sending and [`RoomEvent::Saved`] wait for the write.
    fn settle_local(&mut self, now: u64, name: &str) -> u64 {
        let id = self.next_write;
        let Some(memory) = self.sync.document_mut::<Memory>(name) else {
            return id;
        };
        let deltas = memory.take_journal();
        let durable = memory.own_seq();
        let mut events: Vec<RoomEvent> = memory
            .take_changes()
            .into_iter()
            .map(|change| memory_event(name, change))
            .collect();
        events.push(RoomEvent::Saved {
            memory: name.to_owned(),
            write: id,
        });
        self.append(name, deltas.clone(), durable, deltas, events);
        self.after(now);
        id
    }

    /// Appends `entries` to memory `name`'s journal (`send` and `events` wait for the write),
    /// then compacts when the journal is long enough.
    fn append(
        &mut self,
        name: &str,
        entries: Vec<Vec<u8>>,
        durable: u64,
        send: Vec<Vec<u8>>,
        events: Vec<RoomEvent>,
    ) {
        let count = entries.len();
        self.write(name, StorageWrite::Append(entries), durable, send, events);
        let Some(host) = self.memories.get_mut(name) else {
            return;
        };
        host.journal_len += count;
        if host.journal_len < host.compact_every {
            return;
        }
        host.journal_len = 0;
        self.compact(name);
    }

    /// Asks for a snapshot of memory `name` that replaces its journal.
    fn compact(&mut self, name: &str) {
        if let Some(memory) = self.memory(name) {
            let (snapshot, durable) = (memory.to_bytes(), memory.own_seq());
            let write = StorageWrite::Snapshot(snapshot);
            self.write(name, write, durable, Vec::new(), Vec::new());
        }
    }

    /// Asks the pump for a write that makes this agent's writes up to `durable` durable.
    fn write(
        &mut self,
        name: &str,
        write: StorageWrite,
        durable: u64,
        send: Vec<Vec<u8>>,
        events: Vec<RoomEvent>,
    ) {
        let id = self.next_write;
        self.next_write += 1;
        if self.memories.get(name).is_some_and(|h| h.failed) {
            return;
        }
        if let Some(host) = self.memories.get_mut(name) {
            host.in_flight.push_back(InFlight {
                id,
                durable,
                send,
                events,
            });
        }
        self.out.push_back(Output::Store {
            memory: name.to_owned(),
            id,
            write,
        });
    }

    /// After every input: agreement messages that arrived are handled, and what peers' deltas
    /// changed in each memory is journalled and reported.
    pub(crate) fn after(&mut self, now: u64) {
        while let Some((channel, from, bytes)) = self.inbox.pop_front() {
            let Some(host) = self.memories.get_mut(&channel) else {
                continue;
            };
            let Some(agreement) = host.agreement.as_mut() else {
                continue;
            };
            // Only members' messages cost a signature check.
            if agreement.membership().index_of(&from).is_none() {
                continue;
            }
            let out = agreement.handle_message(now, &bytes);
            self.agreement_output(now, &channel, out);
        }
        let names: Vec<String> = self.memories.keys().cloned().collect();
        for name in names {
            let Some(memory) = self.sync.document_mut::<Memory>(&name) else {
                continue;
            };
            let journal = memory.take_journal();
            let changes = memory.take_changes();
            let durable = memory.own_seq();
            for change in changes {
                self.out
                    .push_back(Output::Event(memory_event(&name, change)));
            }
            if !journal.is_empty() {
                self.append(&name, journal, durable, Vec::new(), Vec::new());
            }
        }
    }

    /// Routes the agreement's messages to the members over the application channel, and
    /// handles what it decided.
    fn agreement_output(&mut self, now: u64, name: &str, out: AgreementOutput) {
        let mut pending = VecDeque::from([out]);
        while let Some(out) = pending.pop_front() {
            let Some(agreement) = self.memories.get(name).and_then(|h| h.agreement.as_ref()) else {
                return;
            };
            let members: Vec<PeerId> = agreement.membership().members().to_vec();
            let view = agreement.view();
            let mut events = Vec::new();
            for event in out.events {
                match event {
                    AgreementEvent::ViewChanged { view, leader } => {
                        events.push(CouncilEvent::ViewChanged {
                            view,
                            leader: members[leader],
                        });
                    }
                    AgreementEvent::Requested { value, by } => {
                        events.extend(self.requested(name, value, members[by]));
                    }
                    AgreementEvent::Decided {
                        seq,
                        value,
                        endorsers,
                    } => {
                        let endorsers = endorsers.iter().map(|i| members[*i]).collect();
                        self.decide(name, seq, view, value, endorsers);
                    }
                }
            }
            self.out.extend(events.into_iter().map(|event| {
                Output::Event(RoomEvent::Council {
                    memory: name.to_owned(),
                    event: Box::new(event),
                })
            }));
            for transmit in out.transmits {
                let to: Vec<PeerId> = match transmit.to {
                    AgreementRecipient::Everyone => members.clone(),
                    AgreementRecipient::Member(i) => vec![members[i]],
                };
                // A message the sync layer refuses (too large for a frame) is lost like a
                // dropped one: the agreement retransmits.
                if let Ok(out) = self.sync.send_app(now, Some(&to), name, transmit.bytes) {
                    self.absorb(out);
                }
            }
            // What a motion needs is the council's; a decided motion may have changed it.
            let wanted = self.memory(name).map(|m| m.council().motion_endorsements());
            if let Some(host) = self.memories.get_mut(name)
                && let Some(wanted) = wanted
                && host.order_wanted != wanted
                && let Some(agreement) = host.agreement.as_mut()
            {
                // Once per change: the agreement clamps it to its own bounds.
                host.order_wanted = wanted;
                pending.push_back(agreement.set_order_at(now, wanted));
            }
        }
    }

    /// Another member asked for `value`: remembered for [`Room::endorse`] when it is a motion.
    fn requested(&mut self, name: &str, value: Vec<u8>, by: PeerId) -> Option<CouncilEvent> {
        let motion = Motion::from_bytes(value.get(MOTION_NONCE..)?).ok()?;
        let host = self.memories.get_mut(name)?;
        if host.requested.len() >= MAX_REQUESTED {
            host.requested.pop_front();
        }
        host.requested.push_back(value.clone());
        Some(CouncilEvent::Requested { value, motion, by })
    }

    /// Applies a decided value (every member refuses a bad one alike), logs it and reports it
    /// once the log is written. Slots a reload already applied are skipped.
    fn decide(&mut self, name: &str, seq: u64, view: u64, value: Vec<u8>, endorsers: Vec<PeerId>) {
        let Some(host) = self.memories.get_mut(name) else {
            return;
        };
        let digest = *blake3::hash(&value).as_bytes();
        if host.log.decided.contains(&digest) {
            return;
        }
        host.requested.retain(|v| *v != value);
        let encoded = value.get(MOTION_NONCE..).unwrap_or_default().to_vec();
        let motion = Motion::from_bytes(&encoded).ok();
        let Some(memory) = self.sync.document_mut::<Memory>(name) else {
            return;
        };
        let applied = match &motion {
            Some(motion) => memory.apply_motion(motion, &endorsers),
            None => Motion::from_bytes(&encoded).map(|_| ()),
        };
        let host = self.memories.get_mut(name).expect("checked above");
        if applied.is_ok() {
            host.log.motions.push((encoded, endorsers.clone()));
        }
        host.log.decided.push(digest);
        let log = postcard::to_allocvec(&host.log).expect("the log encodes");
        let event = RoomEvent::Council {
            memory: name.to_owned(),
            event: Box::new(CouncilEvent::Decided {
                seq,
                view,
                value,
                motion,
                endorsers,
                refused: applied.err().map(|e| (e.code(), e.to_string())),
            }),
        };
        self.write(name, StorageWrite::Council(log), 0, Vec::new(), vec![event]);
    }
}

/// The id of the founding council a log's motions count for.
fn founding_id(me: &Identity, config: &MemoryConfig) -> [u8; 32] {
    let mut members = config.members.clone();
    if members.is_empty() {
        members.push(me.public_key());
    }
    members.sort();
    let mut bytes = b"chrysalis-room founding council v1".to_vec();
    bytes.extend_from_slice(&(config.threshold as u64).to_le_bytes());
    members.iter().for_each(|m| bytes.extend_from_slice(m));
    *blake3::hash(&bytes).as_bytes()
}

fn memory_event(name: &str, change: MemoryChange) -> RoomEvent {
    RoomEvent::Memory {
        memory: name.to_owned(),
        change,
    }
}

fn memory_error(error: MemoryError) -> RoomError {
    RoomError::Memory {
        code: error.code(),
        message: error.to_string(),
    }
}
