//! PBFT-style Byzantine agreement, sans-IO: what must be agreed rather than merged (membership,
//! key rotation, accepted facts) is decided here, by `n ≥ 3f + 1` agents of which up to `f` may
//! lie, equivocate or stay silent.
//!
//! The protocol is Castro and Liskov's PBFT with signatures (every message is Ed25519-signed, so
//! certificates are transferable):
//!
//! - **Normal case.** The leader of view `v` (`v mod n`) orders a request as `PRE-PREPARE(v, s,
//!   value)`; every agent answers `PREPARE(v, s, digest)`; an agent with the pre-prepare and a
//!   quorum of prepares is *prepared* and sends `COMMIT(v, s, digest)`; a quorum of commits
//!   decides slot `s`. Slots execute in order; a value decided twice executes once.
//! - **Quorums** are `⌈(n + f + 1) / 2⌉` (`2f + 1` when `n = 3f + 1`), so any two intersect in an
//!   honest agent for every `n`.
//! - **Checkpoints.** Every `checkpoint_interval` slots, agents sign the hash chain of the log; a
//!   quorum of matching checkpoints is *stable* and the protocol state below it is dropped.
//! - **View change.** An agent that waits too long for a known request (a silent or lying leader)
//!   sends `VIEW-CHANGE(v + 1)` carrying its stable checkpoint and prepared certificates; `f + 1`
//!   view changes for higher views pull the others along; the new leader's `NEW-VIEW` carries a
//!   quorum of view changes and re-proposes every prepared value (no-ops for gaps), which every
//!   agent re-derives before it accepts. Timeouts double with each failed view.
//! - **Catch-up.** Agents broadcast their status each retransmit period; a peer that is behind
//!   gets `DECISION`s (the value and a quorum of signed commits) and the last `NEW-VIEW`.
//!
//! Messages are idempotent and retransmitted, so drops and duplicates only cost time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrysalis_crypto::{SigningKey, ed25519_verify};
use serde::{Deserialize, Serialize};

use crate::MemoryError;

/// A BLAKE3 digest of a value.
pub type Digest = [u8; 32];

/// An Ed25519 public key: an agent as the agreement sees it.
pub use crate::identity::PublicKey;

/// The largest value an agent may propose.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The largest message an agent reads (a `NEW-VIEW` carries a quorum of view changes).
pub const MAX_MESSAGE_LEN: usize = 8 << 20;

/// The largest membership (agents are addressed by a 16-bit index).
pub const MAX_MEMBERS: usize = 256;

const DOMAIN: &[u8] = b"chrysalis-agreement message v1";

/// Timing and window settings; the defaults suit a browser room over a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementConfig {
    /// How long an agent waits for a known request to be decided before it asks for a new
    /// view; doubles with each failed view up to 16×.
    pub view_timeout_ms: u64,
    /// How often an agent retransmits what is in flight and broadcasts its status.
    pub retransmit_ms: u64,
    /// Slots between checkpoints.
    pub checkpoint_interval: u64,
    /// How far past the stable checkpoint a leader may order (the high-water mark).
    pub window: u64,
}

impl Default for AgreementConfig {
    fn default() -> Self {
        AgreementConfig {
            view_timeout_ms: 2_000,
            retransmit_ms: 1_000,
            checkpoint_interval: 16,
            window: 64,
        }
    }
}

/// The agents of one agreement instance, in order (an agent's index is its position). Its id
/// is signed into every message, so messages of one membership never count in another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    members: Vec<PublicKey>,
    id: Digest,
}

impl Membership {
    /// A membership of distinct keys (1 to [`MAX_MEMBERS`]), of epoch 0.
    pub fn new(members: Vec<PublicKey>) -> Result<Self, MemoryError> {
        Membership::at_epoch(members, 0)
    }

    /// The membership of `epoch` (how many membership changes were decided before it): its id
    /// covers the epoch, so messages of an earlier instance with the same keys never count.
    pub fn at_epoch(members: Vec<PublicKey>, epoch: u64) -> Result<Self, MemoryError> {
        if members.is_empty() || members.len() > MAX_MEMBERS {
            return Err(MemoryError::bad_input(
                "members",
                format!("{} members; 1 to {MAX_MEMBERS} are allowed", members.len()),
            ));
        }
        if members.iter().collect::<BTreeSet<_>>().len() != members.len() {
            return Err(MemoryError::bad_input("members", "a key appears twice"));
        }
        let mut bytes = b"chrysalis-agreement membership v1".to_vec();
        if epoch > 0 {
            bytes.extend_from_slice(&epoch.to_le_bytes());
        }
        members.iter().for_each(|m| bytes.extend_from_slice(m));
        let id = hash(&bytes);
        Ok(Membership { members, id })
    }

    /// The members' keys, in index order.
    pub fn members(&self) -> &[PublicKey] {
        &self.members
    }

    /// The number of agents.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no agents (never: [`Membership::new`] refuses it).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The most faulty agents tolerated: `⌊(n − 1) / 3⌋`.
    pub fn faults(&self) -> usize {
        (self.len() - 1) / 3
    }

    /// Agents that make a quorum: `⌈(n + f + 1) / 2⌉`.
    pub fn quorum(&self) -> usize {
        (self.len() + self.faults() + 2) / 2
    }

    /// The leader of `view`.
    pub fn leader(&self, view: u64) -> usize {
        (view % self.len() as u64) as usize
    }

    /// The index of `key`, if it is a member.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.members.iter().position(|m| m == key)
    }

    /// The membership's id (a hash of its epoch and its keys in order).
    pub fn id(&self) -> &Digest {
        &self.id
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// Every other member.
    Everyone,
    /// One member, by index.
    Member(usize),
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: Recipient,
    /// The signed message.
    pub bytes: Vec<u8>,
}

/// What happened during a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgreementEvent {
    /// Slot `seq` executed with `value` (in slot order; a value decided again later is not
    /// reported twice, and no-op slots are not reported).
    Decided {
        /// The slot.
        seq: u64,
        /// The decided value.
        value: Vec<u8>,
    },
    /// This agent entered `view` (after a view change).
    ViewChanged {
        /// The new view.
        view: u64,
        /// Its leader.
        leader: usize,
    },
}

/// What a call returns: messages to send, events, and when to call
/// [`Agreement::handle_tick`] next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Messages to send.
    pub transmits: Vec<Transmit>,
    /// Events, in order.
    pub events: Vec<AgreementEvent>,
    /// The next time (ms) this agent wants a tick.
    pub wake_at: u64,
}

/// Counters for the UI and the simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgreementStats {
    /// Messages sent (a broadcast counts once per recipient).
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Messages refused, by reason (`BAD_SIGNATURE`, `EQUIVOCATION`, `BAD_PROOF`, …).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Views entered after a view change.
    pub view_changes: u64,
    /// Slots executed (no-ops included).
    pub executed: u64,
}

/// One agent's replica of the agreement.
pub struct Agreement {
    members: Membership,
    me: usize,
    key: SigningKey,
    config: AgreementConfig,
    view: u64,
    /// The view this agent is changing to, while it waits for its `NEW-VIEW`.
    changing: Option<u64>,
    failed_views: u32,
    slots: BTreeMap<u64, Slot>,
    decided: BTreeMap<u64, Decided>,
    executed: u64,
    chain: Digest,
    executed_digests: HashSet<Digest>,
    pending: BTreeMap<Digest, Pending>,
    /// Digests the leader has ordered in the current view.
    assigned: HashSet<Digest>,
    next_seq: u64,
    stable: Stable,
    checkpoints: BTreeMap<u64, BTreeMap<usize, Signed>>,
    /// Each agent's latest view change (one per agent bounds what a liar can make us hold).
    view_changes: BTreeMap<usize, Signed>,
    new_view: Option<Signed>,
    deadline: Option<u64>,
    next_retransmit: u64,
    verified: HashSet<Digest>,
    stats: AgreementStats,
    out: Output,
}

#[derive(Default)]
struct Slot {
    /// The accepted pre-prepare: (view, digest, value, message).
    pre_prepare: Option<(u64, Digest, Vec<u8>, Signed)>,
    prepares: BTreeMap<(u64, Digest), BTreeMap<usize, Signed>>,
    commits: BTreeMap<(u64, Digest), BTreeMap<usize, Signed>>,
    /// The certificate of the highest view this agent prepared in.
    prepared: Option<PreparedProof>,
    committed_in: Option<u64>,
}

struct Decided {
    value: Vec<u8>,
    commits: Vec<Signed>,
}

struct Pending {
    value: Vec<u8>,
    /// The signed request (this agent's or a peer's), forwarded until decided so that every
    /// leader learns it.
    request: Signed,
}

#[derive(Default, Clone)]
struct Stable {
    seq: u64,
    state: Digest,
    proof: Vec<Signed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    sender: u16,
    body: Body,
    signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PreparedProof {
    pre_prepare: Signed,
    prepares: Vec<Signed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Body {
    Request {
        value: Vec<u8>,
    },
    PrePrepare {
        view: u64,
        seq: u64,
        value: Vec<u8>,
    },
    Prepare {
        view: u64,
        seq: u64,
        digest: Digest,
    },
    Commit {
        view: u64,
        seq: u64,
        digest: Digest,
    },
    Checkpoint {
        seq: u64,
        state: Digest,
    },
    ViewChange {
        view: u64,
        stable: u64,
        state: Digest,
        checkpoint_proof: Vec<Signed>,
        prepared: Vec<PreparedProof>,
    },
    NewView {
        view: u64,
        view_changes: Vec<Signed>,
        pre_prepares: Vec<Signed>,
    },
    Decision {
        seq: u64,
        value: Vec<u8>,
        commits: Vec<Signed>,
    },
    Status {
        view: u64,
        executed: u64,
    },
}

type Verdict = Result<(), &'static str>;

#[derive(Clone, Copy)]
enum Vote {
    Prepare,
    Commit,
}

fn digest_of(value: &[u8]) -> Digest {
    hash(value)
}

fn hash(bytes: &[u8]) -> Digest {
    blake3::hash(bytes).into()
}

impl Agreement {
    /// The replica of the member whose key is `key`, at time `now` (ms).
    pub fn new(
        key: SigningKey,
        members: Membership,
        config: AgreementConfig,
        now: u64,
    ) -> Result<Self, MemoryError> {
        let me = members
            .index_of(&key.public_key())
            .ok_or_else(|| MemoryError::NotMember("this agent's key".into()))?;
        if config.checkpoint_interval == 0 || config.window < 2 * config.checkpoint_interval {
            return Err(MemoryError::bad_input(
                "config",
                "window must be at least twice a non-zero checkpoint interval",
            ));
        }
        if config.view_timeout_ms == 0 || config.retransmit_ms == 0 {
            return Err(MemoryError::bad_input(
                "config",
                "timeouts must be positive",
            ));
        }
        Ok(Agreement {
            me,
            key,
            next_retransmit: now + config.retransmit_ms,
            config,
            members,
            view: 0,
            changing: None,
            failed_views: 0,
            slots: BTreeMap::new(),
            decided: BTreeMap::new(),
            executed: 0,
            chain: [0; 32],
            executed_digests: HashSet::new(),
            pending: BTreeMap::new(),
            assigned: HashSet::new(),
            next_seq: 1,
            stable: Stable::default(),
            checkpoints: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            new_view: None,
            deadline: None,
            verified: HashSet::new(),
            stats: AgreementStats::default(),
            out: Output::default(),
        })
    }

    /// Proposes `value` (1 byte to [`MAX_VALUE_LEN`]) for ordering. Proposing a value that is
    /// already decided or pending changes nothing.
    pub fn propose(&mut self, now: u64, value: Vec<u8>) -> Result<Output, MemoryError> {
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err(MemoryError::bad_input(
                "value",
                format!("{} bytes; 1 to {MAX_VALUE_LEN} are allowed", value.len()),
            ));
        }
        let request = self.sign(Body::Request {
            value: value.clone(),
        });
        let digest = digest_of(&value);
        if !self.executed_digests.contains(&digest) && !self.pending.contains_key(&digest) {
            self.broadcast(&request);
            self.pending.insert(digest, Pending { value, request });
            self.arm_timer(now);
            self.assign();
        }
        Ok(self.finish())
    }

    /// Handles a message from a peer. Anything malformed, unsigned or inconsistent is counted
    /// under [`AgreementStats::rejected`] and otherwise ignored.
    pub fn handle_message(&mut self, now: u64, bytes: &[u8]) -> Output {
        self.stats.received += 1;
        let verdict = self.receive(now, bytes);
        if let Err(reason) = verdict {
            *self.stats.rejected.entry(reason).or_default() += 1;
        }
        self.finish()
    }

    /// Fires timers: a view change when a known request waited too long, retransmission and a
    /// status broadcast each retransmit period.
    pub fn handle_tick(&mut self, now: u64) -> Output {
        if self.deadline.is_some_and(|d| d <= now) {
            let target = self.changing.unwrap_or(self.view) + 1;
            self.start_view_change(now, target);
        }
        if now >= self.next_retransmit {
            self.next_retransmit = now + self.config.retransmit_ms;
            self.retransmit();
        }
        self.finish()
    }

    /// Whether `value` has been decided and executed here.
    pub fn is_decided(&self, value: &[u8]) -> bool {
        self.executed_digests.contains(&digest_of(value))
    }

    /// The value decided for slot `seq` (empty for a no-op), once it has executed.
    pub fn decision(&self, seq: u64) -> Option<&[u8]> {
        (seq <= self.executed)
            .then(|| self.decided.get(&seq).map(|d| d.value.as_slice()))
            .flatten()
    }

    /// The highest slot executed (every slot up to it is decided).
    pub fn executed(&self) -> u64 {
        self.executed
    }

    /// The current view (or the last one entered, during a view change).
    pub fn view(&self) -> u64 {
        self.view
    }

    /// The view this agent is changing to, if it is waiting for a new view.
    pub fn changing_to(&self) -> Option<u64> {
        self.changing
    }

    /// The leader of the current view.
    pub fn leader(&self) -> usize {
        self.members.leader(self.view)
    }

    /// This agent's index in the membership.
    pub fn index(&self) -> usize {
        self.me
    }

    /// The membership.
    pub fn membership(&self) -> &Membership {
        &self.members
    }

    /// Requests known here and not yet decided.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The stable checkpoint's slot.
    pub fn stable_checkpoint(&self) -> u64 {
        self.stable.seq
    }

    /// Counters.
    pub fn stats(&self) -> &AgreementStats {
        &self.stats
    }

    /// When this agent next wants a tick.
    pub fn wake_at(&self) -> u64 {
        self.deadline
            .map_or(self.next_retransmit, |d| d.min(self.next_retransmit))
    }

    fn finish(&mut self) -> Output {
        let mut out = std::mem::take(&mut self.out);
        out.wake_at = self.wake_at();
        out
    }

    // ---- signing, sending, verifying ----

    fn signed_bytes(&self, sender: u16, body: &Body) -> Vec<u8> {
        let mut bytes = DOMAIN.to_vec();
        bytes.extend_from_slice(self.members.id());
        bytes.extend_from_slice(&sender.to_le_bytes());
        bytes.extend(postcard::to_allocvec(body).expect("bodies encode"));
        bytes
    }

    fn sign(&self, body: Body) -> Signed {
        let sender = self.me as u16;
        let signature = self.key.sign(&self.signed_bytes(sender, &body)).to_vec();
        Signed {
            sender,
            body,
            signature,
        }
    }

    /// Checks a message's signature (each distinct message once: certificates repeat them).
    fn verify(&mut self, message: &Signed) -> Verdict {
        let key = self
            .members
            .members
            .get(message.sender as usize)
            .ok_or("UNKNOWN_SENDER")?;
        let bytes = self.signed_bytes(message.sender, &message.body);
        let mut cache_key = bytes.clone();
        cache_key.extend_from_slice(&message.signature);
        let cache_key = hash(&cache_key);
        if self.verified.contains(&cache_key) {
            return Ok(());
        }
        if !ed25519_verify(key, &bytes, &message.signature) {
            return Err("BAD_SIGNATURE");
        }
        if self.verified.len() >= 1 << 16 {
            self.verified.clear();
        }
        self.verified.insert(cache_key);
        Ok(())
    }

    fn encode(message: &Signed) -> Vec<u8> {
        postcard::to_allocvec(message).expect("messages encode")
    }

    fn broadcast(&mut self, message: &Signed) {
        self.stats.sent += self.members.len() as u64 - 1;
        self.out.transmits.push(Transmit {
            to: Recipient::Everyone,
            bytes: Self::encode(message),
        });
    }

    fn send_to(&mut self, member: usize, message: &Signed) {
        self.stats.sent += 1;
        self.out.transmits.push(Transmit {
            to: Recipient::Member(member),
            bytes: Self::encode(message),
        });
    }

    /// Signs `body`, sends it to everyone and handles it here too.
    fn multicast(&mut self, now: u64, body: Body) {
        let message = self.sign(body);
        self.broadcast(&message);
        // An agent's own messages pass every check but the window, which only a checkpoint far
        // ahead of a lagging agent's stable one can miss; then it is simply not counted here.
        let _ = self.dispatch(now, message);
    }

    fn receive(&mut self, now: u64, bytes: &[u8]) -> Verdict {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err("OVERSIZED");
        }
        let message: Signed = postcard::from_bytes(bytes).map_err(|_| "DECODE")?;
        if message.sender as usize == self.me {
            return Err("OWN_MESSAGE");
        }
        self.verify(&message)?;
        self.dispatch(now, message)
    }

    fn dispatch(&mut self, now: u64, message: Signed) -> Verdict {
        let sender = message.sender as usize;
        match &message.body {
            Body::Request { value } => {
                let value = value.clone();
                self.on_request(now, value, message)
            }
            Body::PrePrepare { view, seq, value } => {
                if sender != self.members.leader(*view) {
                    return Err("NOT_LEADER");
                }
                if *view != self.view || self.changing.is_some() {
                    return Err("OTHER_VIEW");
                }
                let (seq, value) = (*seq, value.clone());
                self.accept_pre_prepare(now, seq, value, message)
            }
            Body::Prepare { view, seq, digest } => {
                let (view, seq, digest) = (*view, *seq, *digest);
                self.record_vote(Vote::Prepare, view, seq, digest, message)?;
                self.check_prepared(now, seq);
                Ok(())
            }
            Body::Commit { view, seq, digest } => {
                let (view, seq, digest) = (*view, *seq, *digest);
                self.record_vote(Vote::Commit, view, seq, digest, message)?;
                self.check_committed(now, seq);
                Ok(())
            }
            Body::Checkpoint { seq, state } => {
                let (seq, state) = (*seq, *state);
                self.on_checkpoint(seq, state, message)
            }
            Body::ViewChange { view, .. } => {
                let view = *view;
                self.on_view_change(now, view, message)
            }
            Body::NewView { view, .. } => {
                let view = *view;
                self.on_new_view(now, view, message)
            }
            Body::Decision {
                seq,
                value,
                commits,
            } => {
                let (seq, value, commits) = (*seq, value.clone(), commits.clone());
                self.on_decision(now, seq, value, commits)
            }
            Body::Status { view, executed } => {
                let (view, executed) = (*view, *executed);
                self.on_status(sender, view, executed);
                Ok(())
            }
        }
    }

    /// Keeps a prepare or commit of this view (the first one per sender and digest).
    fn record_vote(
        &mut self,
        vote: Vote,
        view: u64,
        seq: u64,
        digest: Digest,
        message: Signed,
    ) -> Verdict {
        self.in_window(seq)?;
        if view != self.view {
            return Err("OTHER_VIEW");
        }
        let slot = self.slots.entry(seq).or_default();
        let votes = match vote {
            Vote::Prepare => &mut slot.prepares,
            Vote::Commit => &mut slot.commits,
        };
        votes
            .entry((view, digest))
            .or_default()
            .entry(message.sender as usize)
            .or_insert(message);
        Ok(())
    }

    fn in_window(&self, seq: u64) -> Verdict {
        if seq <= self.stable.seq || seq > self.stable.seq + self.config.window {
            Err("OUT_OF_WINDOW")
        } else {
            Ok(())
        }
    }

    // ---- normal case ----

    fn on_request(&mut self, now: u64, value: Vec<u8>, request: Signed) -> Verdict {
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err("BAD_VALUE");
        }
        let digest = digest_of(&value);
        if self.executed_digests.contains(&digest) {
            return Ok(());
        }
        self.pending
            .entry(digest)
            .or_insert(Pending { value, request });
        self.arm_timer(now);
        self.assign();
        Ok(())
    }

    /// The leader orders every pending request it has not ordered in this view.
    fn assign(&mut self) {
        if self.members.leader(self.view) != self.me || self.changing.is_some() {
            return;
        }
        let mut todo: Vec<(Digest, Vec<u8>)> = self
            .pending
            .iter()
            .filter(|(d, _)| !self.assigned.contains(*d))
            .map(|(d, p)| (*d, p.value.clone()))
            .collect();
        todo.truncate(
            (self.stable.seq + self.config.window + 1).saturating_sub(self.next_seq) as usize,
        );
        for (digest, value) in todo {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.assigned.insert(digest);
            let message = self.sign(Body::PrePrepare {
                view: self.view,
                seq,
                value: value.clone(),
            });
            self.broadcast(&message);
            // `now` only matters for timers, which the leader's own request already armed.
            let _ = self.accept_pre_prepare(0, seq, value, message);
        }
    }

    fn accept_pre_prepare(
        &mut self,
        now: u64,
        seq: u64,
        value: Vec<u8>,
        message: Signed,
    ) -> Verdict {
        self.in_window(seq)?;
        if value.len() > MAX_VALUE_LEN {
            return Err("BAD_VALUE");
        }
        let digest = digest_of(&value);
        let view = self.view;
        let slot = self.slots.entry(seq).or_default();
        match &slot.pre_prepare {
            Some((v, d, _, _)) if *v == view && *d == digest => return Ok(()),
            Some((v, _, _, _)) if *v == view => return Err("EQUIVOCATION"),
            _ => {}
        }
        slot.pre_prepare = Some((view, digest, value, message));
        self.arm_timer(now);
        self.multicast(now, Body::Prepare { view, seq, digest });
        self.check_committed(now, seq);
        Ok(())
    }

    fn check_prepared(&mut self, now: u64, seq: u64) {
        let quorum = self.members.quorum();
        let view = self.view;
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some((v, digest, _, pre_prepare)) = &slot.pre_prepare else {
            return;
        };
        // An agent that asked for a new view has promised to vote no more in this one.
        if *v != view || slot.committed_in == Some(view) || self.changing.is_some() {
            return;
        }
        let digest = *digest;
        let Some(prepares) = slot.prepares.get(&(view, digest)) else {
            return;
        };
        if prepares.len() < quorum {
            return;
        }
        slot.prepared = Some(PreparedProof {
            pre_prepare: pre_prepare.clone(),
            prepares: prepares.values().take(quorum).cloned().collect(),
        });
        slot.committed_in = Some(view);
        self.multicast(now, Body::Commit { view, seq, digest });
    }

    fn check_committed(&mut self, now: u64, seq: u64) {
        let quorum = self.members.quorum();
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        let Some((_, digest, value, _)) = &slot.pre_prepare else {
            return;
        };
        let certificate = slot
            .commits
            .iter()
            .find(|((_, d), commits)| d == digest && commits.len() >= quorum)
            .map(|(_, commits)| commits.values().take(quorum).cloned().collect::<Vec<_>>());
        if let Some(commits) = certificate {
            let value = value.clone();
            self.decide(now, seq, value, commits);
        }
    }

    fn decide(&mut self, now: u64, seq: u64, value: Vec<u8>, commits: Vec<Signed>) {
        if seq <= self.executed || self.decided.contains_key(&seq) {
            return;
        }
        // The slot stays until a checkpoint is stable: its prepared certificate must reach the
        // next view change, or a new leader could fill the slot with something else.
        self.decided.insert(seq, Decided { value, commits });
        self.execute(now);
    }

    fn execute(&mut self, now: u64) {
        let mut progressed = false;
        while let Some(decided) = self.decided.get(&(self.executed + 1)) {
            let seq = self.executed + 1;
            let digest = digest_of(&decided.value);
            let mut link = self.chain.to_vec();
            link.extend_from_slice(&seq.to_le_bytes());
            link.extend_from_slice(&digest);
            self.chain = hash(&link);
            self.executed = seq;
            self.stats.executed += 1;
            progressed = true;
            if !decided.value.is_empty() && self.executed_digests.insert(digest) {
                self.out.events.push(AgreementEvent::Decided {
                    seq,
                    value: decided.value.clone(),
                });
                self.pending.remove(&digest);
            }
            if seq % self.config.checkpoint_interval == 0 {
                let state = self.chain;
                self.multicast(now, Body::Checkpoint { seq, state });
            }
        }
        if progressed {
            self.failed_views = 0;
            self.next_seq = self.next_seq.max(self.executed + 1);
            self.deadline = None;
            self.arm_timer(now);
            self.assign();
        }
    }

    /// Starts the view-change timer, if none runs, while something waits on the leader: a
    /// known request or a slot ordered in this view and not executed. During a view change
    /// the timer starts only once a quorum asks for the same view (PBFT's liveness rule): an
    /// agent cut off from the others never runs ahead by more than one view.
    fn arm_timer(&mut self, now: u64) {
        if self.deadline.is_some() {
            return;
        }
        let waiting =
            match self.changing {
                Some(target) => {
                    let votes = self
                        .view_changes
                        .values()
                        .filter(|vc| view_of(vc) == target);
                    votes.count() >= self.members.quorum()
                }
                None => !self.pending.is_empty()
                    || self.slots.range(self.executed + 1..).any(
                        |(_, slot)| matches!(&slot.pre_prepare, Some((v, ..)) if *v == self.view),
                    ),
            };
        if waiting {
            self.deadline = Some(now + self.timeout());
        }
    }

    fn timeout(&self) -> u64 {
        self.config.view_timeout_ms << self.failed_views.min(4)
    }

    // ---- checkpoints and catch-up ----

    fn on_checkpoint(&mut self, seq: u64, state: Digest, message: Signed) -> Verdict {
        if seq <= self.stable.seq {
            return Ok(());
        }
        if seq % self.config.checkpoint_interval != 0
            || seq > self.stable.seq + 4 * self.config.window
        {
            return Err("OUT_OF_WINDOW");
        }
        let sender = message.sender as usize;
        let votes = self.checkpoints.entry(seq).or_default();
        votes.entry(sender).or_insert(message);
        let proof: Vec<Signed> = votes
            .values()
            .filter(|m| matches!(&m.body, Body::Checkpoint { state: s, .. } if *s == state))
            .cloned()
            .collect();
        if proof.len() >= self.members.quorum() {
            self.make_stable(seq, state, proof);
        }
        Ok(())
    }

    fn make_stable(&mut self, seq: u64, state: Digest, proof: Vec<Signed>) {
        self.stable = Stable { seq, state, proof };
        self.slots = self.slots.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
    }

    fn on_status(&mut self, sender: usize, view: u64, executed: u64) {
        if executed < self.executed {
            let last = self.executed.min(executed + 32);
            for seq in executed + 1..=last {
                if let Some(decided) = self.decided.get(&seq) {
                    let message = self.sign(Body::Decision {
                        seq,
                        value: decided.value.clone(),
                        commits: decided.commits.clone(),
                    });
                    self.send_to(sender, &message);
                }
            }
        }
        if view < self.view
            && let Some(new_view) = self.new_view.clone()
        {
            self.send_to(sender, &new_view);
        }
    }

    fn on_decision(&mut self, now: u64, seq: u64, value: Vec<u8>, commits: Vec<Signed>) -> Verdict {
        if seq <= self.executed || self.decided.contains_key(&seq) {
            return Ok(());
        }
        if seq > self.executed + 4 * self.config.window {
            return Err("OUT_OF_WINDOW");
        }
        let digest = digest_of(&value);
        let mut view = None;
        let mut senders = BTreeSet::new();
        for commit in &commits {
            let Body::Commit {
                view: v,
                seq: s,
                digest: d,
            } = commit.body
            else {
                return Err("BAD_PROOF");
            };
            if s != seq || d != digest || *view.get_or_insert(v) != v {
                return Err("BAD_PROOF");
            }
            self.verify(commit)?;
            senders.insert(commit.sender);
        }
        if senders.len() < self.members.quorum() {
            return Err("BAD_PROOF");
        }
        self.decide(now, seq, value, commits);
        Ok(())
    }

    // ---- view change ----

    fn start_view_change(&mut self, now: u64, target: u64) {
        if target <= self.changing.unwrap_or(self.view) {
            return;
        }
        self.changing = Some(target);
        self.failed_views += 1;
        self.deadline = None;
        let prepared = self
            .slots
            .iter()
            .filter(|(seq, _)| **seq > self.stable.seq)
            .filter_map(|(_, slot)| slot.prepared.clone())
            .collect();
        let body = Body::ViewChange {
            view: target,
            stable: self.stable.seq,
            state: self.stable.state,
            checkpoint_proof: self.stable.proof.clone(),
            prepared,
        };
        self.multicast(now, body);
        self.arm_timer(now);
    }

    /// Checks a view change's checkpoint proof and prepared certificates.
    fn check_view_change(&mut self, message: &Signed) -> Verdict {
        let Body::ViewChange {
            view,
            stable,
            state,
            checkpoint_proof,
            prepared,
        } = &message.body
        else {
            return Err("BAD_PROOF");
        };
        if *stable > 0 {
            let mut senders = BTreeSet::new();
            for checkpoint in checkpoint_proof {
                match checkpoint.body {
                    Body::Checkpoint { seq, state: s } if seq == *stable && s == *state => {}
                    _ => return Err("BAD_PROOF"),
                }
                self.verify(checkpoint)?;
                senders.insert(checkpoint.sender);
            }
            if senders.len() < self.members.quorum() {
                return Err("BAD_PROOF");
            }
        }
        for proof in prepared {
            let Body::PrePrepare {
                view: v,
                seq,
                value,
            } = &proof.pre_prepare.body
            else {
                return Err("BAD_PROOF");
            };
            if *v >= *view
                || seq <= stable
                || proof.pre_prepare.sender as usize != self.members.leader(*v)
            {
                return Err("BAD_PROOF");
            }
            self.verify(&proof.pre_prepare)?;
            let digest = digest_of(value);
            let mut senders = BTreeSet::new();
            for prepare in &proof.prepares {
                match prepare.body {
                    Body::Prepare {
                        view: pv,
                        seq: ps,
                        digest: pd,
                    } if pv == *v && ps == *seq && pd == digest => {}
                    _ => return Err("BAD_PROOF"),
                }
                self.verify(prepare)?;
                senders.insert(prepare.sender);
            }
            if senders.len() < self.members.quorum() {
                return Err("BAD_PROOF");
            }
        }
        Ok(())
    }

    fn on_view_change(&mut self, now: u64, view: u64, message: Signed) -> Verdict {
        let sender = message.sender as usize;
        if view <= self.view {
            // A peer still asking for a view this agent has passed: show it the way.
            if sender != self.me
                && let Some(new_view) = self.new_view.clone()
            {
                self.send_to(sender, &new_view);
            }
            return Ok(());
        }
        if self
            .view_changes
            .get(&sender)
            .is_some_and(|vc| view_of(vc) >= view)
        {
            return Ok(());
        }
        self.check_view_change(&message)?;
        self.view_changes.insert(sender, message);
        self.arm_timer(now);

        // f + 1 agents want a higher view than this one: at least one is honest, so join.
        let current = self.changing.unwrap_or(self.view);
        let mut higher: Vec<u64> = self
            .view_changes
            .values()
            .map(view_of)
            .filter(|v| *v > current)
            .collect();
        if higher.len() > self.members.faults() {
            higher.sort_unstable();
            self.start_view_change(now, higher[0]);
        }

        // The new leader with a quorum for its view announces it.
        if let Some(target) = self.changing
            && self.members.leader(target) == self.me
        {
            let quorum: Vec<Signed> = self
                .view_changes
                .values()
                .filter(|vc| view_of(vc) == target)
                .take(self.members.quorum())
                .cloned()
                .collect();
            if quorum.len() == self.members.quorum() {
                let pre_prepares = new_view_plan(&quorum)
                    .slots
                    .into_iter()
                    .map(|(seq, value)| {
                        self.sign(Body::PrePrepare {
                            view: target,
                            seq,
                            value,
                        })
                    })
                    .collect();
                self.multicast(
                    now,
                    Body::NewView {
                        view: target,
                        view_changes: quorum,
                        pre_prepares,
                    },
                );
            }
        }
        Ok(())
    }

    fn on_new_view(&mut self, now: u64, view: u64, message: Signed) -> Verdict {
        if message.sender as usize != self.members.leader(view) {
            return Err("NOT_LEADER");
        }
        if view < self.changing.unwrap_or(self.view)
            || (view == self.view && self.changing.is_none())
        {
            return Ok(());
        }
        let Body::NewView {
            view_changes,
            pre_prepares,
            ..
        } = &message.body
        else {
            unreachable!("dispatched on NewView");
        };
        let mut senders = BTreeSet::new();
        for vc in view_changes {
            if view_of(vc) != view {
                return Err("BAD_PROOF");
            }
            self.verify(vc)?;
            self.check_view_change(vc)?;
            senders.insert(vc.sender);
        }
        if senders.len() < self.members.quorum() {
            return Err("BAD_PROOF");
        }
        let plan = new_view_plan(view_changes);
        if plan.slots.len() != pre_prepares.len() {
            return Err("BAD_PROOF");
        }
        for ((seq, value), pp) in plan.slots.iter().zip(pre_prepares) {
            let matches = matches!(&pp.body,
                Body::PrePrepare { view: v, seq: s, value: x } if *v == view && s == seq && x == value);
            if !matches || pp.sender != message.sender {
                return Err("BAD_PROOF");
            }
            self.verify(pp)?;
        }

        // Enter the view.
        let pre_prepares = pre_prepares.clone();
        self.view = view;
        self.changing = None;
        self.new_view = Some(message);
        self.assigned.clear();
        self.view_changes.retain(|_, vc| view_of(vc) > view);
        self.stats.view_changes += 1;
        self.out.events.push(AgreementEvent::ViewChanged {
            view,
            leader: self.members.leader(view),
        });
        self.deadline = None;
        self.arm_timer(now);
        // Before the re-proposals: executing one of them lets the leader order pending requests,
        // which must go after the plan's slots.
        self.next_seq = plan.last.max(self.executed) + 1;
        for pp in pre_prepares {
            if let Body::PrePrepare { seq, value, .. } = &pp.body {
                let (seq, value) = (*seq, value.clone());
                self.assigned.insert(digest_of(&value));
                if seq > self.executed {
                    let _ = self.accept_pre_prepare(now, seq, value, pp);
                }
            }
        }
        self.assign();
        Ok(())
    }

    // ---- retransmission ----

    fn retransmit(&mut self) {
        let mut again: Vec<Signed> = self.pending.values().map(|p| p.request.clone()).collect();
        if let Some(target) = self.changing {
            if let Some(vc) = self.view_changes.get(&self.me)
                && view_of(vc) == target
            {
                again.push(vc.clone());
            }
        } else {
            for slot in self.slots.range(self.executed + 1..).map(|(_, s)| s) {
                if let Some((v, _, _, pp)) = &slot.pre_prepare
                    && *v == self.view
                {
                    if pp.sender as usize == self.me {
                        again.push(pp.clone());
                    }
                    for votes in [&slot.prepares, &slot.commits] {
                        again.extend(
                            votes
                                .iter()
                                .filter(|((view, _), _)| *view == self.view)
                                .filter_map(|(_, by)| by.get(&self.me).cloned()),
                        );
                    }
                }
            }
        }
        for message in &again {
            self.broadcast(message);
        }
        let status = self.sign(Body::Status {
            view: self.view,
            executed: self.executed,
        });
        self.broadcast(&status);
    }
}

fn view_of(view_change: &Signed) -> u64 {
    match view_change.body {
        Body::ViewChange { view, .. } => view,
        _ => 0,
    }
}

struct NewViewPlan {
    /// The slots the new leader re-proposes, in order: the value prepared in the highest view,
    /// or a no-op (empty) for a gap.
    slots: Vec<(u64, Vec<u8>)>,
    /// The last slot covered (the highest stable checkpoint when nothing was prepared above it).
    last: u64,
}

/// What a new view must re-propose, derived the same way by the leader and every agent that
/// checks its `NEW-VIEW`.
fn new_view_plan(view_changes: &[Signed]) -> NewViewPlan {
    let mut low = 0;
    let mut best: BTreeMap<u64, (u64, Digest, Vec<u8>)> = BTreeMap::new();
    for vc in view_changes {
        if let Body::ViewChange {
            stable, prepared, ..
        } = &vc.body
        {
            low = low.max(*stable);
            for proof in prepared {
                if let Body::PrePrepare { view, seq, value } = &proof.pre_prepare.body {
                    let candidate = (*view, digest_of(value), value.clone());
                    let entry = best.entry(*seq).or_insert_with(|| candidate.clone());
                    if (candidate.0, candidate.1) > (entry.0, entry.1) {
                        *entry = candidate;
                    }
                }
            }
        }
    }
    let last = best.keys().next_back().copied().unwrap_or(low).max(low);
    let slots = (low + 1..=last)
        .map(|seq| {
            let value = best
                .get(&seq)
                .map(|(_, _, v)| v.clone())
                .unwrap_or_default();
            (seq, value)
        })
        .collect();
    NewViewPlan { slots, last }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<SigningKey> {
        (0..n)
            .map(|i| SigningKey::from_seed(&[i as u8 + 1; 32]).unwrap())
            .collect()
    }

    #[test]
    fn quorums_intersect_in_an_honest_agent() {
        for n in 1..=40usize {
            let m = Membership::new((0..n).map(|i| [i as u8; 32]).collect()).unwrap();
            let (f, q) = (m.faults(), m.quorum());
            assert!(n > 3 * f, "n = {n}");
            assert!(
                2 * q - n > f,
                "two quorums of {q} among {n} share more than f = {f}"
            );
            assert!(q <= n - f, "a quorum of honest agents exists for n = {n}");
        }
    }

    #[test]
    fn memberships_refuse_duplicates_and_outsiders() {
        assert!(Membership::new(vec![[1; 32], [1; 32]]).is_err());
        assert!(Membership::new(vec![]).is_err());
        let ks = keys(4);
        let m = Membership::new(ks[..3].iter().map(|k| k.public_key()).collect()).unwrap();
        let outsider = SigningKey::from_seed(&*ks[3].seed()).unwrap();
        assert_eq!(
            Agreement::new(outsider, m, AgreementConfig::default(), 0)
                .err()
                .map(|e| e.code()),
            Some("NOT_MEMBER")
        );
    }

    #[test]
    fn messages_of_another_epoch_never_count() {
        let ks = keys(4);
        let keys_of = || ks.iter().map(|k| k.public_key()).collect::<Vec<_>>();
        let agent = |i: usize, epoch| {
            let m = Membership::at_epoch(keys_of(), epoch).unwrap();
            let key = SigningKey::from_seed(&*ks[i].seed()).unwrap();
            Agreement::new(key, m, AgreementConfig::default(), 0).unwrap()
        };
        assert_eq!(
            Membership::new(keys_of()),
            Membership::at_epoch(keys_of(), 0)
        );
        let mut old = agent(0, 1);
        let request = old.propose(0, b"motion".to_vec()).unwrap().transmits;
        let (mut same, mut next) = (agent(1, 1), agent(1, 2));
        same.handle_message(1, &request[0].bytes);
        next.handle_message(1, &request[0].bytes);
        assert!(same.stats().rejected.is_empty());
        assert_eq!(next.stats().rejected.get("BAD_SIGNATURE"), Some(&1));
    }
}
