//! PBFT-style Byzantine agreement, sans-IO: what must be agreed rather than merged (membership,
//! key rotation, accepted facts) is decided here, by `n ≥ 3f + 1` agents of which up to `f` may
//! lie, equivocate or stay silent.
//!
//! The protocol is Castro and Liskov's PBFT with signatures (every message is Ed25519-signed, so
//! certificates are transferable):
//!
//! - **Requests need endorsements.** A member proposes a value by broadcasting a signed
//!   `REQUEST`; an honest leader orders a value once [`Agreement::order_at`] distinct members
//!   requested it (a council sets it to its threshold `k`). Every pre-prepare carries the
//!   endorsing signatures, at least [`Agreement::endorsements`] (`f + 1`, so never the faulty
//!   members alone), which every agent checks before it prepares, and every
//!   [`AgreementEvent::Decided`] names the endorsers, so that what applies the value can
//!   require more (the council refuses a motion below `k`).
//! - **Normal case.** The leader of view `v` (`v mod n`) orders an endorsed value as
//!   `PRE-PREPARE(v, s, value)`; every agent answers `PREPARE(v, s, digest)`; an agent with the
//!   pre-prepare and a quorum of prepares is *prepared* and sends `COMMIT(v, s, digest)`; a
//!   quorum of commits decides slot `s`. Slots execute in order; a value decided twice executes
//!   once.
//! - **Quorums** are `⌈(n + f + 1) / 2⌉` (`2f + 1` when `n = 3f + 1`), so any two intersect in an
//!   honest agent for every `n`.
//! - **Checkpoints.** Every `checkpoint_interval` slots, agents sign the hash chain of the log; a
//!   quorum of matching checkpoints is *stable* and the protocol state below it is dropped.
//! - **View change.** An agent that waits too long for an endorsed request (a silent or lying
//!   leader) sends `VIEW-CHANGE(v + 1)` carrying its stable checkpoint and prepared
//!   certificates; `f + 1` view changes for higher views pull the others along; the new leader's
//!   `NEW-VIEW` carries a quorum of view changes and re-proposes every prepared value (no-ops for
//!   gaps), which every agent re-derives before it accepts. Timeouts double with each failed view.
//! - **Catch-up.** Agents broadcast their status each retransmit period; a peer that is behind
//!   gets `DECISION`s (the value, its endorsements and a quorum of signed commits) and the last
//!   `NEW-VIEW`, at most once per retransmit period per peer.
//!
//! **Hostile bytes.** A message is `version ‖ kind ‖ sender ‖ signature ‖ body`: its length is
//! checked first, then the signature over the raw body (so only a member's bytes are ever
//! decoded), then the body is decoded into flat types whose nesting is fixed (no message type
//! contains itself) and must re-encode to the same bytes. What one member can make another hold
//! is bounded: [`MAX_PENDING_PER_MEMBER`] requests, one vote of each kind per slot and view, one
//! view change, one checkpoint vote per checkpoint slot.
//!
//! Messages are idempotent and retransmitted, so drops and duplicates only cost time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrysalis_crypto::{SigningKey, ed25519_verify};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::MemoryError;
use crate::identity::Signature;

/// A BLAKE3 digest of a value.
pub type Digest = [u8; 32];

/// An Ed25519 public key: an agent as the agreement sees it.
pub use crate::identity::PublicKey;

/// The largest value an agent may propose.
pub const MAX_VALUE_LEN: usize = 8 * 1024;

/// The largest message an agent reads (a `NEW-VIEW` carries a quorum of view changes).
pub const MAX_MESSAGE_LEN: usize = 8 << 20;

/// The largest membership (agents are addressed by a 16-bit index).
pub const MAX_MEMBERS: usize = 256;

/// Requests of one member an agent holds before they are decided; more are refused
/// (`TOO_MANY_PENDING`), so a member that floods only fills its own share.
pub const MAX_PENDING_PER_MEMBER: usize = 16;

/// The version byte that starts every message.
pub const WIRE_VERSION: u8 = 2;

const DOMAIN: &[u8] = b"chrysalis-agreement message v2";

/// Bytes before a message's body: version, kind, sender (u16 LE), signature.
const HEADER_LEN: usize = 1 + 1 + 2 + 64;

/// Timing and window settings; the defaults suit a browser room over a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementConfig {
    /// How long an agent waits for an endorsed request to be decided before it asks for a new
    /// view; doubles with each failed view up to 16×.
    pub view_timeout_ms: u64,
    /// How often an agent retransmits what is in flight and broadcasts its status.
    pub retransmit_ms: u64,
    /// Slots between checkpoints.
    pub checkpoint_interval: u64,
    /// How far past the stable checkpoint a leader may order (the high-water mark).
    pub window: u64,
    /// Distinct members whose requests a value needs before it is ordered; raised to `f + 1`
    /// when lower (0 means `f + 1`) and capped at the membership's size.
    pub endorsements: usize,
}

impl Default for AgreementConfig {
    fn default() -> Self {
        AgreementConfig {
            view_timeout_ms: 2_000,
            retransmit_ms: 1_000,
            checkpoint_interval: 16,
            window: 64,
            endorsements: 0,
        }
    }
}

/// The agents of one agreement instance, in order (an agent's index is its position). Its id
/// is signed into every message, so messages of one membership never count in another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    members: Vec<PublicKey>,
    epoch: u64,
    id: Digest,
}

impl Membership {
    /// A membership of distinct keys (1 to [`MAX_MEMBERS`]), of epoch 0, in no scope.
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
        let mut membership = Membership {
            members,
            epoch,
            id: [0; 32],
        };
        membership.id = membership.hash_id(b"");
        Ok(membership)
    }

    /// The same members bound to `scope` (say the room and the document the council governs):
    /// the id covers it, so a council's messages never count in another council of the same
    /// keys elsewhere.
    pub fn within(mut self, scope: &str) -> Self {
        self.id = self.hash_id(scope.as_bytes());
        self
    }

    fn hash_id(&self, scope: &[u8]) -> Digest {
        let mut bytes = b"chrysalis-agreement membership v2".to_vec();
        bytes.extend_from_slice(&(scope.len() as u64).to_le_bytes());
        bytes.extend_from_slice(scope);
        bytes.extend_from_slice(&self.epoch.to_le_bytes());
        self.members.iter().for_each(|m| bytes.extend_from_slice(m));
        hash(&bytes)
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

    /// The membership's id (a hash of its scope, epoch and keys in order).
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
        /// The members whose signed requests endorsed it (at least
        /// [`Agreement::endorsements`], checked here).
        endorsers: Vec<usize>,
    },
    /// This agent entered `view` (after a view change).
    ViewChanged {
        /// The new view.
        view: u64,
        /// Its leader.
        leader: usize,
    },
    /// Another member requested a value this agent had not seen requested (so the UI can offer
    /// to endorse it).
    Requested {
        /// The value.
        value: Vec<u8>,
        /// The requesting member.
        by: usize,
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
    /// Endorsements every ordered value must carry (checked on each message).
    endorsements: usize,
    /// Endorsements this agent waits for before it orders a value as leader (at least
    /// `endorsements`): the council's threshold, a local policy.
    order_at: usize,
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
    checkpoints: BTreeMap<u64, BTreeMap<usize, Signed<Checkpoint>>>,
    /// Each agent's latest view change (one per agent bounds what a liar can make us hold).
    view_changes: BTreeMap<usize, Signed<ViewChange>>,
    new_view: Option<Signed<NewView>>,
    deadline: Option<u64>,
    next_retransmit: u64,
    /// When each member was last sent catch-up (decisions, the new view): once per period.
    helped: BTreeMap<usize, u64>,
    verified: HashSet<Digest>,
    stats: AgreementStats,
    out: Output,
}

#[derive(Default)]
struct Slot {
    /// The accepted pre-prepare: (view, digest, message).
    pre_prepare: Option<(u64, Digest, Signed<PrePrepare>)>,
    /// The view of the votes below (votes of other views are dropped).
    votes_view: u64,
    prepares: BTreeMap<usize, Signed<Prepare>>,
    commits: BTreeMap<usize, Signed<Commit>>,
    /// The certificate of the highest view this agent prepared in.
    prepared: Option<PreparedProof>,
    committed_in: Option<u64>,
}

struct Decided {
    value: Vec<u8>,
    endorsements: Vec<Endorsement>,
    commits: Vec<Signed<Commit>>,
}

struct Pending {
    value: Vec<u8>,
    /// Each requesting member's signature (this agent's own among them if it proposed).
    requests: BTreeMap<usize, Signature>,
}

#[derive(Default, Clone)]
struct Stable {
    seq: u64,
    state: Digest,
    proof: Vec<Signed<Checkpoint>>,
}

// ---- the wire: flat bodies, each signed as `DOMAIN ‖ membership id ‖ sender ‖ kind ‖ body` ----

/// A body and its sender's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Signed<B> {
    sender: u16,
    body: B,
    signature: Signature,
}

/// A message body: its kind byte, and how it encodes.
trait Part: Serialize + DeserializeOwned + Clone {
    const KIND: u8;
}

/// `REQUEST`: a member asks for `value` to be ordered (and so endorses it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Request {
    value: Vec<u8>,
}

/// A member's request signature, carried with the value it signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Endorsement {
    sender: u16,
    signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PrePrepare {
    view: u64,
    seq: u64,
    value: Vec<u8>,
    endorsements: Vec<Endorsement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Prepare {
    view: u64,
    seq: u64,
    digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Commit {
    view: u64,
    seq: u64,
    digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    seq: u64,
    state: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PreparedProof {
    pre_prepare: Signed<PrePrepare>,
    prepares: Vec<Signed<Prepare>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ViewChange {
    view: u64,
    stable: u64,
    state: Digest,
    checkpoint_proof: Vec<Signed<Checkpoint>>,
    prepared: Vec<PreparedProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NewView {
    view: u64,
    view_changes: Vec<Signed<ViewChange>>,
    pre_prepares: Vec<Signed<PrePrepare>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Decision {
    seq: u64,
    value: Vec<u8>,
    endorsements: Vec<Endorsement>,
    commits: Vec<Signed<Commit>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Status {
    view: u64,
    executed: u64,
}

/// Gives each body its kind byte (the order is the wire format).
macro_rules! kinds {
    ($($part:ty = $kind:literal),* $(,)?) => {
        $(impl Part for $part {
            const KIND: u8 = $kind;
        })*
    };
}

kinds!(
    Request = 0,
    PrePrepare = 1,
    Prepare = 2,
    Commit = 3,
    Checkpoint = 4,
    ViewChange = 5,
    NewView = 6,
    Decision = 7,
    Status = 8,
);

/// A decoded message (its signature already checked over the raw bytes).
enum Message {
    Request(Signed<Request>),
    PrePrepare(Signed<PrePrepare>),
    Prepare(Signed<Prepare>),
    Commit(Signed<Commit>),
    Checkpoint(Signed<Checkpoint>),
    ViewChange(Signed<ViewChange>),
    NewView(Signed<NewView>),
    Decision(Signed<Decision>),
    Status(Signed<Status>),
}

type Verdict = Result<(), &'static str>;

/// A prepare or a commit: `(view, seq, digest)`, kept one per member in a slot's view.
trait VotePart: Part + Copy {
    fn fields(&self) -> (u64, u64, Digest);
    fn votes(slot: &mut Slot) -> &mut BTreeMap<usize, Signed<Self>>;
}

impl VotePart for Prepare {
    fn fields(&self) -> (u64, u64, Digest) {
        (self.view, self.seq, self.digest)
    }
    fn votes(slot: &mut Slot) -> &mut BTreeMap<usize, Signed<Self>> {
        &mut slot.prepares
    }
}

impl VotePart for Commit {
    fn fields(&self) -> (u64, u64, Digest) {
        (self.view, self.seq, self.digest)
    }
    fn votes(slot: &mut Slot) -> &mut BTreeMap<usize, Signed<Self>> {
        &mut slot.commits
    }
}

fn digest_of(value: &[u8]) -> Digest {
    hash(value)
}

/// What prepares, commits and the log's hash chain vote for in a slot: the value and the set of
/// members who endorsed it. Binding the endorsers makes every honest agent that decides a slot
/// decide the same endorsers (the council counts them), whoever relays the certificate.
fn slot_digest(value: &[u8], endorsements: &[Endorsement]) -> Digest {
    let mut senders: Vec<u16> = endorsements.iter().map(|e| e.sender).collect();
    senders.sort_unstable();
    let mut bytes = digest_of(value).to_vec();
    for sender in senders {
        bytes.extend_from_slice(&sender.to_le_bytes());
    }
    hash(&bytes)
}

fn hash(bytes: &[u8]) -> Digest {
    blake3::hash(bytes).into()
}

fn encode_part<B: Part>(body: &B) -> Vec<u8> {
    postcard::to_allocvec(body).expect("bodies encode")
}

/// Decodes a body that must be canonical (re-encode to the same bytes), so that what was
/// verified over the raw bytes is what a certificate carrying it verifies again elsewhere.
fn decode_part<B: Part>(bytes: &[u8]) -> Result<B, &'static str> {
    let body: B = postcard::from_bytes(bytes).map_err(|_| "DECODE")?;
    if encode_part(&body) != bytes {
        return Err("NON_CANONICAL");
    }
    Ok(body)
}

/// `body` framed and signed as a message of `kind` from `key` in `members`: what a member (or a
/// fuzzer, or a test playing a hostile member) puts on the wire. Honest agents never need it.
pub fn sign_raw(
    members: &Membership,
    key: &SigningKey,
    kind: u8,
    body: &[u8],
) -> Result<Vec<u8>, MemoryError> {
    let sender = members
        .index_of(&key.public_key())
        .ok_or_else(|| MemoryError::NotMember("the signing key".into()))? as u16;
    let mut signed = DOMAIN.to_vec();
    signed.extend_from_slice(members.id());
    signed.extend_from_slice(&sender.to_le_bytes());
    signed.push(kind);
    signed.extend_from_slice(body);
    let mut bytes = vec![WIRE_VERSION, kind];
    bytes.extend_from_slice(&sender.to_le_bytes());
    bytes.extend_from_slice(&key.sign(&signed));
    bytes.extend_from_slice(body);
    Ok(bytes)
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
        let endorsements = config
            .endorsements
            .max(members.faults() + 1)
            .min(members.len());
        Ok(Agreement {
            me,
            key,
            next_retransmit: now + config.retransmit_ms,
            config,
            endorsements,
            order_at: endorsements,
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
            helped: BTreeMap::new(),
            verified: HashSet::new(),
            stats: AgreementStats::default(),
            out: Output::default(),
        })
    }

    /// Proposes `value` (1 byte to [`MAX_VALUE_LEN`]) for ordering: this member's signed
    /// request, which counts as one endorsement. The value is ordered once
    /// [`Agreement::endorsements`] members requested it. Proposing a value that is already
    /// decided, or that this member already requested, changes nothing.
    pub fn propose(&mut self, now: u64, value: Vec<u8>) -> Result<Output, MemoryError> {
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err(MemoryError::bad_input(
                "value",
                format!("{} bytes; 1 to {MAX_VALUE_LEN} are allowed", value.len()),
            ));
        }
        let digest = digest_of(&value);
        let mine = self
            .pending
            .get(&digest)
            .is_some_and(|p| p.requests.contains_key(&self.me));
        if !self.executed_digests.contains(&digest) && !mine {
            if self.requests_of(self.me) >= MAX_PENDING_PER_MEMBER {
                return Err(MemoryError::bad_input(
                    "value",
                    format!("{MAX_PENDING_PER_MEMBER} requests of this member are still pending"),
                ));
            }
            let request = self.sign(Request { value });
            self.broadcast(&request);
            let _ = self.on_request(now, request);
        }
        Ok(self.finish())
    }

    /// Handles a message from a peer. Anything oversized, unsigned, malformed or inconsistent
    /// is counted under [`AgreementStats::rejected`] and otherwise ignored.
    pub fn handle_message(&mut self, now: u64, bytes: &[u8]) -> Output {
        self.stats.received += 1;
        let verdict = self.receive(now, bytes);
        if let Err(reason) = verdict {
            *self.stats.rejected.entry(reason).or_default() += 1;
        }
        self.finish()
    }

    /// Fires timers: a view change when an endorsed request waited too long, retransmission
    /// and a status broadcast each retransmit period.
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

    /// Distinct members whose requests every ordered value must carry (`f + 1` at least):
    /// every agent checks it on every message, whatever the leader's policy.
    pub fn endorsements(&self) -> usize {
        self.endorsements
    }

    /// Distinct members whose requests this agent waits for before it orders a value as a
    /// leader (and before it suspects a leader of stalling one).
    pub fn order_at(&self) -> usize {
        self.order_at
    }

    /// Sets [`Agreement::order_at`] to `count`, kept between [`Agreement::endorsements`] and
    /// `n − f` (so that `f` silent members never block ordering): a council raises it to its
    /// threshold `k`, so that an honest leader orders only what `k` members asked for. Values
    /// already endorsed enough are ordered at once.
    pub fn set_order_at(&mut self, now: u64, count: usize) -> Output {
        let most = (self.members.len() - self.members.faults()).max(self.endorsements);
        self.order_at = count.clamp(self.endorsements, most);
        self.arm_timer(now);
        self.assign();
        self.finish()
    }

    /// Requests known here and not yet decided (endorsed or not).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The members that requested `value` so far, while it is pending.
    pub fn requesters(&self, value: &[u8]) -> Vec<usize> {
        self.pending
            .get(&digest_of(value))
            .map_or_else(Vec::new, |p| p.requests.keys().copied().collect())
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

    fn signed_bytes(&self, sender: u16, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(DOMAIN.len() + 35 + body.len());
        bytes.extend_from_slice(DOMAIN);
        bytes.extend_from_slice(self.members.id());
        bytes.extend_from_slice(&sender.to_le_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(body);
        bytes
    }

    fn sign<B: Part>(&self, body: B) -> Signed<B> {
        let sender = self.me as u16;
        let bytes = self.signed_bytes(sender, B::KIND, &encode_part(&body));
        Signed {
            sender,
            body,
            signature: Signature(self.key.sign(&bytes)),
        }
    }

    /// Checks a signature over `DOMAIN ‖ id ‖ sender ‖ kind ‖ body` (each distinct message
    /// once: certificates repeat them).
    fn verify_raw(&mut self, sender: u16, kind: u8, body: &[u8], signature: &Signature) -> Verdict {
        let key = *self
            .members
            .members
            .get(sender as usize)
            .ok_or("UNKNOWN_SENDER")?;
        let bytes = self.signed_bytes(sender, kind, body);
        let mut cache_key = bytes.clone();
        cache_key.extend_from_slice(&signature.0);
        let cache_key = hash(&cache_key);
        if self.verified.contains(&cache_key) {
            return Ok(());
        }
        if !ed25519_verify(&key, &bytes, &signature.0) {
            return Err("BAD_SIGNATURE");
        }
        if self.verified.len() >= 1 << 16 {
            self.verified.clear();
        }
        self.verified.insert(cache_key);
        Ok(())
    }

    /// Checks a signed part carried inside another message (a certificate's member).
    fn verify<B: Part>(&mut self, message: &Signed<B>) -> Verdict {
        let body = encode_part(&message.body);
        self.verify_raw(message.sender, B::KIND, &body, &message.signature)
    }

    /// Checks that `endorsements` are at least [`Agreement::endorsements`] distinct members'
    /// requests of `value`; returns the endorsers.
    fn check_endorsed(
        &mut self,
        value: &[u8],
        endorsements: &[Endorsement],
    ) -> Result<Vec<usize>, &'static str> {
        if endorsements.len() > self.members.len() {
            return Err("BAD_ENDORSEMENT");
        }
        let body = encode_part(&Request {
            value: value.to_vec(),
        });
        let mut endorsers = BTreeSet::new();
        for e in endorsements {
            if !endorsers.insert(e.sender as usize) {
                return Err("BAD_ENDORSEMENT");
            }
            self.verify_raw(e.sender, Request::KIND, &body, &e.signature)?;
        }
        if endorsers.len() < self.endorsements {
            return Err("NOT_ENDORSED");
        }
        Ok(endorsers.into_iter().collect())
    }

    fn encode<B: Part>(message: &Signed<B>) -> Vec<u8> {
        let body = encode_part(&message.body);
        let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
        bytes.push(WIRE_VERSION);
        bytes.push(B::KIND);
        bytes.extend_from_slice(&message.sender.to_le_bytes());
        bytes.extend_from_slice(&message.signature.0);
        bytes.extend_from_slice(&body);
        bytes
    }

    fn broadcast<B: Part>(&mut self, message: &Signed<B>) {
        self.stats.sent += self.members.len() as u64 - 1;
        self.out.transmits.push(Transmit {
            to: Recipient::Everyone,
            bytes: Self::encode(message),
        });
    }

    fn send_to<B: Part>(&mut self, member: usize, message: &Signed<B>) {
        self.stats.sent += 1;
        self.out.transmits.push(Transmit {
            to: Recipient::Member(member),
            bytes: Self::encode(message),
        });
    }

    /// Size, then version and sender, then the signature over the raw body, then a flat
    /// decode of a body that must be canonical.
    fn receive(&mut self, now: u64, bytes: &[u8]) -> Verdict {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err("OVERSIZED");
        }
        if bytes.len() < HEADER_LEN {
            return Err("DECODE");
        }
        if bytes[0] != WIRE_VERSION {
            return Err("VERSION");
        }
        let kind = bytes[1];
        let sender = u16::from_le_bytes([bytes[2], bytes[3]]);
        let signature = Signature(bytes[4..HEADER_LEN].try_into().expect("64 bytes"));
        let body = &bytes[HEADER_LEN..];
        if sender as usize == self.me {
            return Err("OWN_MESSAGE");
        }
        if kind > Status::KIND {
            return Err("DECODE");
        }
        self.verify_raw(sender, kind, body, &signature)?;
        fn signed<B: Part>(
            sender: u16,
            body: &[u8],
            signature: Signature,
        ) -> Result<Signed<B>, &'static str> {
            Ok(Signed {
                sender,
                body: decode_part(body)?,
                signature,
            })
        }
        let message = match kind {
            Request::KIND => Message::Request(signed(sender, body, signature)?),
            PrePrepare::KIND => Message::PrePrepare(signed(sender, body, signature)?),
            Prepare::KIND => Message::Prepare(signed(sender, body, signature)?),
            Commit::KIND => Message::Commit(signed(sender, body, signature)?),
            Checkpoint::KIND => Message::Checkpoint(signed(sender, body, signature)?),
            ViewChange::KIND => Message::ViewChange(signed(sender, body, signature)?),
            NewView::KIND => Message::NewView(signed(sender, body, signature)?),
            Decision::KIND => Message::Decision(signed(sender, body, signature)?),
            _ => Message::Status(signed(sender, body, signature)?),
        };
        self.dispatch(now, message)
    }

    fn dispatch(&mut self, now: u64, message: Message) -> Verdict {
        match message {
            Message::Request(m) => self.on_request(now, m),
            Message::PrePrepare(m) => {
                if m.sender as usize != self.members.leader(m.body.view) {
                    return Err("NOT_LEADER");
                }
                if m.body.view != self.view || self.changing.is_some() {
                    return Err("OTHER_VIEW");
                }
                self.accept_pre_prepare(now, m)
            }
            Message::Prepare(m) => {
                let seq = self.record_vote(m)?;
                self.check_prepared(now, seq);
                Ok(())
            }
            Message::Commit(m) => {
                let seq = self.record_vote(m)?;
                self.check_committed(now, seq);
                Ok(())
            }
            Message::Checkpoint(m) => self.on_checkpoint(m),
            Message::ViewChange(m) => self.on_view_change(now, m),
            Message::NewView(m) => self.on_new_view(now, m),
            Message::Decision(m) => self.on_decision(now, m.body),
            Message::Status(m) => {
                self.on_status(now, m.sender as usize, m.body);
                Ok(())
            }
        }
    }

    /// Keeps a prepare or commit of this view: one per sender and kind in a slot's view (a
    /// second one for another digest is an equivocation and is refused). Returns its slot.
    fn record_vote<V: VotePart>(&mut self, message: Signed<V>) -> Result<u64, &'static str> {
        let (view, seq, digest) = message.body.fields();
        self.in_window(seq)?;
        if view != self.view {
            return Err("OTHER_VIEW");
        }
        let slot = self.slots.entry(seq).or_default();
        if slot.votes_view != view {
            slot.votes_view = view;
            slot.prepares.clear();
            slot.commits.clear();
        }
        let votes = V::votes(slot);
        match votes.get(&(message.sender as usize)) {
            Some(earlier) if earlier.body.fields().2 != digest => Err("EQUIVOCATION"),
            Some(_) => Ok(seq),
            None => {
                votes.insert(message.sender as usize, message);
                Ok(seq)
            }
        }
    }

    fn in_window(&self, seq: u64) -> Verdict {
        if seq <= self.stable.seq || seq > self.stable.seq + self.config.window {
            Err("OUT_OF_WINDOW")
        } else {
            Ok(())
        }
    }

    // ---- normal case ----

    /// How many pending requests `member` has made.
    fn requests_of(&self, member: usize) -> usize {
        self.pending
            .values()
            .filter(|p| p.requests.contains_key(&member))
            .count()
    }

    fn on_request(&mut self, now: u64, request: Signed<Request>) -> Verdict {
        let Signed {
            sender,
            body: Request { value },
            signature,
        } = request;
        let sender = sender as usize;
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err("BAD_VALUE");
        }
        let digest = digest_of(&value);
        if self.executed_digests.contains(&digest) {
            return Ok(());
        }
        if self
            .pending
            .get(&digest)
            .is_some_and(|p| p.requests.contains_key(&sender))
        {
            return Ok(());
        }
        if self.requests_of(sender) >= MAX_PENDING_PER_MEMBER {
            return Err("TOO_MANY_PENDING");
        }
        let pending = self.pending.entry(digest).or_insert_with(|| Pending {
            value: value.clone(),
            requests: BTreeMap::new(),
        });
        let first = pending.requests.is_empty();
        pending.requests.insert(sender, signature);
        if first && sender != self.me {
            self.out
                .events
                .push(AgreementEvent::Requested { value, by: sender });
        }
        self.arm_timer(now);
        self.assign();
        Ok(())
    }

    /// Whether a pending value has enough endorsements to be ordered.
    fn endorsed(&self, pending: &Pending) -> bool {
        pending.requests.len() >= self.order_at
    }

    /// The leader orders every endorsed pending request it has not ordered in this view.
    fn assign(&mut self) {
        if self.members.leader(self.view) != self.me || self.changing.is_some() {
            return;
        }
        let mut todo: Vec<(Digest, Vec<u8>, Vec<Endorsement>)> = self
            .pending
            .iter()
            .filter(|(d, p)| !self.assigned.contains(*d) && self.endorsed(p))
            .map(|(d, p)| {
                // Every endorsement held (one per member at most): a threshold raised before
                // this slot executes may need more than `order_at`.
                let endorsements = p
                    .requests
                    .iter()
                    .map(|(m, s)| Endorsement {
                        sender: *m as u16,
                        signature: *s,
                    })
                    .collect();
                (*d, p.value.clone(), endorsements)
            })
            .collect();
        todo.truncate(
            (self.stable.seq + self.config.window + 1).saturating_sub(self.next_seq) as usize,
        );
        for (digest, value, endorsements) in todo {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.assigned.insert(digest);
            let message = self.sign(PrePrepare {
                view: self.view,
                seq,
                value,
                endorsements,
            });
            self.broadcast(&message);
            // `now` only matters for timers, which the request already armed.
            let _ = self.accept_pre_prepare(0, message);
        }
    }

    fn accept_pre_prepare(&mut self, now: u64, message: Signed<PrePrepare>) -> Verdict {
        let seq = message.body.seq;
        self.in_window(seq)?;
        let value = &message.body.value;
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err("BAD_VALUE");
        }
        let digest = slot_digest(value, &message.body.endorsements);
        let view = self.view;
        match &self.slots.get(&seq).and_then(|s| s.pre_prepare.as_ref()) {
            Some((v, d, _)) if *v == view && *d == digest => return Ok(()),
            Some((v, _, _)) if *v == view => return Err("EQUIVOCATION"),
            _ => {}
        }
        // Below this agent's own ordering policy (the council's `k`), an honest agent does not
        // prepare: a faulty leader cannot burn a value by ordering it before `k` members asked
        // for it. Only the normal case checks this; certificates and decisions need `f + 1`.
        if message.body.endorsements.len() < self.order_at {
            return Err("UNDER_ENDORSED");
        }
        let (value, endorsements) = (
            message.body.value.clone(),
            message.body.endorsements.clone(),
        );
        self.check_endorsed(&value, &endorsements)?;
        self.install_pre_prepare(now, view, digest, message);
        Ok(())
    }

    /// Records a checked pre-prepare of `view` and prepares it.
    fn install_pre_prepare(
        &mut self,
        now: u64,
        view: u64,
        digest: Digest,
        message: Signed<PrePrepare>,
    ) {
        let seq = message.body.seq;
        self.slots.entry(seq).or_default().pre_prepare = Some((view, digest, message));
        self.arm_timer(now);
        let prepare = self.sign(Prepare { view, seq, digest });
        self.broadcast(&prepare);
        let _ = self.dispatch(now, Message::Prepare(prepare));
        self.check_committed(now, seq);
    }

    fn check_prepared(&mut self, now: u64, seq: u64) {
        let quorum = self.members.quorum();
        let view = self.view;
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some((v, digest, pre_prepare)) = &slot.pre_prepare else {
            return;
        };
        // An agent that asked for a new view has promised to vote no more in this one.
        if *v != view
            || slot.votes_view != view
            || slot.committed_in == Some(view)
            || self.changing.is_some()
        {
            return;
        }
        let digest = *digest;
        let prepares: Vec<Signed<Prepare>> = slot
            .prepares
            .values()
            .filter(|p| p.body.digest == digest)
            .take(quorum)
            .cloned()
            .collect();
        if prepares.len() < quorum {
            return;
        }
        slot.prepared = Some(PreparedProof {
            pre_prepare: pre_prepare.clone(),
            prepares,
        });
        slot.committed_in = Some(view);
        let commit = self.sign(Commit { view, seq, digest });
        self.broadcast(&commit);
        let _ = self.dispatch(now, Message::Commit(commit));
    }

    fn check_committed(&mut self, now: u64, seq: u64) {
        let quorum = self.members.quorum();
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        let Some((v, digest, pre_prepare)) = &slot.pre_prepare else {
            return;
        };
        if slot.votes_view != *v {
            return;
        }
        let commits: Vec<Signed<Commit>> = slot
            .commits
            .values()
            .filter(|c| c.body.digest == *digest)
            .take(quorum)
            .cloned()
            .collect();
        if commits.len() >= quorum {
            let (value, endorsements) = (
                pre_prepare.body.value.clone(),
                pre_prepare.body.endorsements.clone(),
            );
            self.decide(now, seq, value, endorsements, commits);
        }
    }

    fn decide(
        &mut self,
        now: u64,
        seq: u64,
        value: Vec<u8>,
        endorsements: Vec<Endorsement>,
        commits: Vec<Signed<Commit>>,
    ) {
        if seq <= self.executed || self.decided.contains_key(&seq) {
            return;
        }
        // The slot stays until a checkpoint is stable: its prepared certificate must reach the
        // next view change, or a new leader could fill the slot with something else.
        self.decided.insert(
            seq,
            Decided {
                value,
                endorsements,
                commits,
            },
        );
        self.execute(now);
    }

    fn execute(&mut self, now: u64) {
        let mut progressed = false;
        while let Some(decided) = self.decided.get(&(self.executed + 1)) {
            let seq = self.executed + 1;
            let digest = digest_of(&decided.value);
            let mut link = self.chain.to_vec();
            link.extend_from_slice(&seq.to_le_bytes());
            link.extend_from_slice(&slot_digest(&decided.value, &decided.endorsements));
            self.chain = hash(&link);
            self.executed = seq;
            self.stats.executed += 1;
            progressed = true;
            if !decided.value.is_empty() && self.executed_digests.insert(digest) {
                self.out.events.push(AgreementEvent::Decided {
                    seq,
                    value: decided.value.clone(),
                    endorsers: decided
                        .endorsements
                        .iter()
                        .map(|e| e.sender as usize)
                        .collect(),
                });
                self.pending.remove(&digest);
            }
            if seq.is_multiple_of(self.config.checkpoint_interval) {
                let state = self.chain;
                let checkpoint = self.sign(Checkpoint { seq, state });
                self.broadcast(&checkpoint);
                let _ = self.on_checkpoint(checkpoint);
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

    /// Starts the view-change timer, if none runs, while something waits on the leader: an
    /// endorsed request or a slot ordered in this view and not executed (a request too few
    /// members asked for waits on them, not on the leader). During a view change the timer
    /// starts only once a quorum asks for the same view (PBFT's liveness rule): an agent cut
    /// off from the others never runs ahead by more than one view.
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
                        .filter(|vc| vc.body.view == target);
                    votes.count() >= self.members.quorum()
                }
                None => self.pending.values().any(|p| self.endorsed(p))
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

    fn on_checkpoint(&mut self, message: Signed<Checkpoint>) -> Verdict {
        let Checkpoint { seq, state } = message.body;
        if seq <= self.stable.seq {
            return Ok(());
        }
        if seq % self.config.checkpoint_interval != 0
            || seq > self.stable.seq + 4 * self.config.window
        {
            return Err("OUT_OF_WINDOW");
        }
        let votes = self.checkpoints.entry(seq).or_default();
        votes.entry(message.sender as usize).or_insert(message);
        let proof: Vec<Signed<Checkpoint>> = votes
            .values()
            .filter(|m| m.body.state == state)
            .cloned()
            .collect();
        if proof.len() >= self.members.quorum() {
            self.make_stable(seq, state, proof);
        }
        Ok(())
    }

    fn make_stable(&mut self, seq: u64, state: Digest, proof: Vec<Signed<Checkpoint>>) {
        self.stable = Stable { seq, state, proof };
        self.slots = self.slots.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
    }

    /// Whether `member` may be sent catch-up now (once per retransmit period), and if so
    /// records it: a replayed status or view change costs its sender, not the room.
    fn may_help(&mut self, now: u64, member: usize) -> bool {
        let period = self.config.retransmit_ms;
        match self.helped.get(&member) {
            Some(&at) if now < at.saturating_add(period) && now >= at => false,
            _ => {
                self.helped.insert(member, now);
                true
            }
        }
    }

    fn on_status(&mut self, now: u64, sender: usize, status: Status) {
        let behind = status.executed < self.executed;
        let stale_view = status.view < self.view && self.new_view.is_some();
        if !(behind || stale_view) || !self.may_help(now, sender) {
            return;
        }
        if behind {
            let last = self.executed.min(status.executed + 32);
            for seq in status.executed + 1..=last {
                if let Some(decided) = self.decided.get(&seq) {
                    let message = self.sign(Decision {
                        seq,
                        value: decided.value.clone(),
                        endorsements: decided.endorsements.clone(),
                        commits: decided.commits.clone(),
                    });
                    self.send_to(sender, &message);
                }
            }
        }
        if stale_view && let Some(new_view) = self.new_view.clone() {
            self.send_to(sender, &new_view);
        }
    }

    fn on_decision(&mut self, now: u64, decision: Decision) -> Verdict {
        let Decision {
            seq,
            value,
            endorsements,
            commits,
        } = decision;
        if seq <= self.executed || self.decided.contains_key(&seq) {
            return Ok(());
        }
        if seq > self.executed + 4 * self.config.window {
            return Err("OUT_OF_WINDOW");
        }
        if value.len() > MAX_VALUE_LEN || commits.len() > self.members.len() {
            return Err("BAD_PROOF");
        }
        let digest = slot_digest(&value, &endorsements);
        let mut view = None;
        let mut senders = BTreeSet::new();
        for commit in &commits {
            let Commit {
                view: v,
                seq: s,
                digest: d,
            } = commit.body;
            if s != seq || d != digest || *view.get_or_insert(v) != v {
                return Err("BAD_PROOF");
            }
            self.verify(commit)?;
            senders.insert(commit.sender);
        }
        if senders.len() < self.members.quorum() {
            return Err("BAD_PROOF");
        }
        // A no-op fills a gap of a new view; anything else must carry its endorsements.
        if !value.is_empty() {
            self.check_endorsed(&value, &endorsements)?;
        }
        self.decide(now, seq, value, endorsements, commits);
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
        let view_change = self.sign(ViewChange {
            view: target,
            stable: self.stable.seq,
            state: self.stable.state,
            checkpoint_proof: self.stable.proof.clone(),
            prepared,
        });
        self.broadcast(&view_change);
        let _ = self.on_view_change(now, view_change);
        self.arm_timer(now);
    }

    /// Checks a view change's checkpoint proof and prepared certificates.
    fn check_view_change(&mut self, message: &Signed<ViewChange>) -> Verdict {
        let ViewChange {
            view,
            stable,
            state,
            checkpoint_proof,
            prepared,
        } = &message.body;
        let n = self.members.len();
        if checkpoint_proof.len() > n || prepared.len() as u64 > self.config.window {
            return Err("BAD_PROOF");
        }
        if *stable > 0 {
            let mut senders = BTreeSet::new();
            for checkpoint in checkpoint_proof {
                if checkpoint.body.seq != *stable || checkpoint.body.state != *state {
                    return Err("BAD_PROOF");
                }
                self.verify(checkpoint)?;
                senders.insert(checkpoint.sender);
            }
            if senders.len() < self.members.quorum() {
                return Err("BAD_PROOF");
            }
        }
        for proof in prepared {
            let PrePrepare {
                view: v,
                seq,
                value,
                endorsements,
            } = &proof.pre_prepare.body;
            if *v >= *view
                || seq <= stable
                || proof.pre_prepare.sender as usize != self.members.leader(*v)
                || proof.prepares.len() > n
            {
                return Err("BAD_PROOF");
            }
            self.verify(&proof.pre_prepare)?;
            // A no-op (a gap a new view filled) carries no endorsements.
            if !value.is_empty() {
                self.check_endorsed(value, endorsements)?;
            }
            let digest = slot_digest(value, endorsements);
            let mut senders = BTreeSet::new();
            for prepare in &proof.prepares {
                let p = prepare.body;
                if p.view != *v || p.seq != *seq || p.digest != digest {
                    return Err("BAD_PROOF");
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

    fn on_view_change(&mut self, now: u64, message: Signed<ViewChange>) -> Verdict {
        let sender = message.sender as usize;
        let view = message.body.view;
        if view <= self.view {
            // A peer still asking for a view this agent has passed: show it the way.
            if sender != self.me
                && self.new_view.is_some()
                && self.may_help(now, sender)
                && let Some(new_view) = self.new_view.clone()
            {
                self.send_to(sender, &new_view);
            }
            return Ok(());
        }
        if self
            .view_changes
            .get(&sender)
            .is_some_and(|vc| vc.body.view >= view)
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
            .map(|vc| vc.body.view)
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
            let quorum: Vec<Signed<ViewChange>> = self
                .view_changes
                .values()
                .filter(|vc| vc.body.view == target)
                .take(self.members.quorum())
                .cloned()
                .collect();
            if quorum.len() == self.members.quorum() {
                let pre_prepares = new_view_plan(&quorum)
                    .slots
                    .into_iter()
                    .map(|(seq, value, endorsements)| {
                        self.sign(PrePrepare {
                            view: target,
                            seq,
                            value,
                            endorsements,
                        })
                    })
                    .collect();
                let new_view = self.sign(NewView {
                    view: target,
                    view_changes: quorum,
                    pre_prepares,
                });
                self.broadcast(&new_view);
                let _ = self.on_new_view(now, new_view);
            }
        }
        Ok(())
    }

    fn on_new_view(&mut self, now: u64, message: Signed<NewView>) -> Verdict {
        let view = message.body.view;
        if message.sender as usize != self.members.leader(view) {
            return Err("NOT_LEADER");
        }
        if view < self.changing.unwrap_or(self.view)
            || (view == self.view && self.changing.is_none())
        {
            return Ok(());
        }
        let NewView {
            view_changes,
            pre_prepares,
            ..
        } = &message.body;
        if view_changes.len() > self.members.len() {
            return Err("BAD_PROOF");
        }
        let mut senders = BTreeSet::new();
        for vc in view_changes {
            if vc.body.view != view {
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
        for ((seq, value, endorsements), pp) in plan.slots.iter().zip(pre_prepares) {
            let b = &pp.body;
            if b.view != view
                || b.seq != *seq
                || b.value != *value
                || b.endorsements != *endorsements
                || pp.sender != message.sender
            {
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
        self.view_changes.retain(|_, vc| vc.body.view > view);
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
            let seq = pp.body.seq;
            self.assigned.insert(digest_of(&pp.body.value));
            let digest = slot_digest(&pp.body.value, &pp.body.endorsements);
            if seq > self.executed && self.in_window(seq).is_ok() {
                // Checked above as part of the plan (a no-op carries no endorsements).
                self.install_pre_prepare(now, view, digest, pp);
            }
        }
        self.assign();
        Ok(())
    }

    // ---- retransmission ----

    /// Resends this agent's own requests and its votes in flight, and its status.
    fn retransmit(&mut self) {
        let me = self.me;
        let requests: Vec<Signed<Request>> = self
            .pending
            .values()
            .filter_map(|p| {
                p.requests.get(&me).map(|signature| Signed {
                    sender: me as u16,
                    body: Request {
                        value: p.value.clone(),
                    },
                    signature: *signature,
                })
            })
            .collect();
        for request in &requests {
            self.broadcast(request);
        }
        if let Some(target) = self.changing {
            if let Some(vc) = self.view_changes.get(&me).cloned()
                && vc.body.view == target
            {
                self.broadcast(&vc);
            }
        } else {
            let mut pre_prepares = Vec::new();
            let mut prepares = Vec::new();
            let mut commits = Vec::new();
            for slot in self.slots.range(self.executed + 1..).map(|(_, s)| s) {
                if let Some((v, _, pp)) = &slot.pre_prepare
                    && *v == self.view
                {
                    if pp.sender as usize == me {
                        pre_prepares.push(pp.clone());
                    }
                    if slot.votes_view == self.view {
                        prepares.extend(slot.prepares.get(&me).cloned());
                        commits.extend(slot.commits.get(&me).cloned());
                    }
                }
            }
            pre_prepares.iter().for_each(|m| self.broadcast(m));
            prepares.iter().for_each(|m| self.broadcast(m));
            commits.iter().for_each(|m| self.broadcast(m));
        }
        let status = self.sign(Status {
            view: self.view,
            executed: self.executed,
        });
        self.broadcast(&status);
    }
}

struct NewViewPlan {
    /// The slots the new leader re-proposes, in order: the value prepared in the highest view
    /// with its endorsements, or a no-op (empty, unendorsed) for a gap.
    slots: Vec<(u64, Vec<u8>, Vec<Endorsement>)>,
    /// The last slot covered (the highest stable checkpoint when nothing was prepared above it).
    last: u64,
}

/// What a new view must re-propose, derived the same way by the leader and every agent that
/// checks its `NEW-VIEW`.
fn new_view_plan(view_changes: &[Signed<ViewChange>]) -> NewViewPlan {
    let mut low = 0;
    let mut best: BTreeMap<u64, (u64, Digest, &PrePrepare)> = BTreeMap::new();
    for vc in view_changes {
        low = low.max(vc.body.stable);
        for proof in &vc.body.prepared {
            let pp = &proof.pre_prepare.body;
            let candidate = (pp.view, slot_digest(&pp.value, &pp.endorsements), pp);
            let entry = best.entry(pp.seq).or_insert(candidate);
            if (candidate.0, candidate.1) > (entry.0, entry.1) {
                *entry = candidate;
            }
        }
    }
    let last = best.keys().next_back().copied().unwrap_or(low).max(low);
    let slots = (low + 1..=last)
        .map(|seq| match best.get(&seq) {
            Some((_, _, pp)) => (seq, pp.value.clone(), pp.endorsements.clone()),
            None => (seq, Vec::new(), Vec::new()),
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

    fn council(n: usize, scope: &str) -> Vec<Agreement> {
        let ks = keys(n);
        let m = Membership::new(ks.iter().map(|k| k.public_key()).collect())
            .unwrap()
            .within(scope);
        ks.into_iter()
            .map(|k| Agreement::new(k, m.clone(), AgreementConfig::default(), 0).unwrap())
            .collect()
    }

    /// Delivers every message until none is left (no drops); returns each agent's decided
    /// values with their endorsers.
    #[allow(clippy::type_complexity)]
    fn pump(agents: &mut [Agreement], from: usize, out: Output) -> Vec<Vec<(Vec<u8>, Vec<usize>)>> {
        let mut decided = vec![Vec::new(); agents.len()];
        let mut queue: Vec<(usize, Output)> = vec![(from, out)];
        while let Some((sender, out)) = queue.pop() {
            for event in out.events {
                if let AgreementEvent::Decided {
                    value, endorsers, ..
                } = event
                {
                    decided[sender].push((value, endorsers));
                }
            }
            for t in out.transmits {
                for (to, agent) in agents.iter_mut().enumerate() {
                    let wanted = match t.to {
                        Recipient::Everyone => to != sender,
                        Recipient::Member(m) => m == to,
                    };
                    if wanted {
                        queue.push((to, agent.handle_message(1, &t.bytes)));
                    }
                }
            }
        }
        decided
    }

    /// Regression: a `DECISION` nested thousands of times inside itself (30 KB) exhausted the
    /// stack of the page that decoded it, and a 120 KB one broke its memory for good. Bytes
    /// are now checked (version, sender, signature over the raw body) before any decoding,
    /// and no body type contains itself.
    #[test]
    fn nested_messages_are_refused_before_decoding() {
        let mut agents = council(4, "room/doc");
        // The old encoding: sender, DECISION tag, seq, empty value, one commit — nested.
        let nested: Vec<u8> = [0u8, 7, 1, 0, 1].repeat(24_000);
        let out = agents[1].handle_message(1, &nested);
        assert!(out.transmits.is_empty());
        // A member's valid signature over a deep body: decoded only after the check, as flat
        // types, and refused.
        let key = SigningKey::from_seed(&[1; 32]).unwrap();
        let body = [1u8, 0, 1, 1].repeat(30_000);
        let signed = agents[1].signed_bytes(0, Decision::KIND, &body);
        let mut bytes = vec![WIRE_VERSION, Decision::KIND, 0, 0];
        bytes.extend_from_slice(&key.sign(&signed));
        bytes.extend_from_slice(&body);
        agents[1].handle_message(1, &bytes);
        let rejected = &agents[1].stats().rejected;
        assert_eq!(rejected.get("VERSION"), Some(&1));
        assert_eq!(rejected.get("DECODE"), Some(&1), "{rejected:?}");
        // The agent still works.
        let out = agents[0].propose(2, b"after".to_vec()).unwrap();
        pump(&mut agents, 0, out);
        let out = agents[2].propose(3, b"after".to_vec()).unwrap();
        let decided = pump(&mut agents, 2, out);
        assert!(
            decided
                .iter()
                .all(|d| d == &[(b"after".to_vec(), vec![0, 2])]),
            "{decided:?}"
        );
    }

    /// Regression: one member alone set the threshold and admitted keys of its own. A value
    /// is ordered only once `f + 1` members requested it, and the decision names them.
    #[test]
    fn one_member_alone_decides_nothing() {
        let mut agents = council(4, "room/doc");
        assert_eq!(agents[0].endorsements(), 2);
        let out = agents[3].propose(1, b"threshold 1".to_vec()).unwrap();
        let decided = pump(&mut agents, 3, out);
        assert!(decided.iter().all(Vec::is_empty));
        assert!(agents.iter().all(|a| !a.is_decided(b"threshold 1")));
        assert_eq!(agents[0].requesters(b"threshold 1"), vec![3]);
        // No view change for a value too few members asked for.
        let out = agents[0].handle_tick(60_000);
        assert_eq!(agents[0].changing_to(), None);
        pump(&mut agents, 0, out);
        // A second member's request endorses it.
        let out = agents[1].propose(2, b"threshold 1".to_vec()).unwrap();
        let decided = pump(&mut agents, 1, out);
        let expected = vec![(b"threshold 1".to_vec(), vec![1, 3])];
        assert!(decided.iter().all(|d| d == &expected), "{decided:?}");
    }

    /// Regression: a pre-prepare without enough valid endorsements is not prepared, even from
    /// the leader.
    #[test]
    fn a_leader_cannot_order_an_unendorsed_value() {
        let mut agents = council(4, "room/doc");
        let pre_prepare = agents[0].sign(PrePrepare {
            view: 0,
            seq: 1,
            value: b"leader's own".to_vec(),
            endorsements: vec![Endorsement {
                sender: 0,
                signature: agents[0]
                    .sign(Request {
                        value: b"leader's own".to_vec(),
                    })
                    .signature,
            }],
        });
        let out = agents[1].handle_message(1, &Agreement::encode(&pre_prepare));
        assert!(out.transmits.is_empty());
        assert_eq!(agents[1].stats().rejected.get("UNDER_ENDORSED"), Some(&1));
        // Forged endorsements: another member's index with the leader's signature.
        let mut forged = pre_prepare.body.clone();
        forged.endorsements.push(Endorsement {
            sender: 2,
            signature: forged.endorsements[0].signature,
        });
        let forged = Agreement::encode(&agents[0].sign(forged));
        let out = agents[1].handle_message(1, &forged);
        assert!(out.transmits.is_empty());
        assert_eq!(agents[1].stats().rejected.get("BAD_SIGNATURE"), Some(&1));
    }

    /// Regression (one member ruled the council): a leader may order at the `f + 1` floor, but
    /// an agent whose council needs `k` endorsements does not prepare below it, and a leader
    /// that raised its own policy waits for `k` requests.
    #[test]
    fn an_agent_prepares_only_what_k_members_asked_for() {
        let mut agents = council(4, "room/doc");
        let value = b"set threshold".to_vec();
        let request = |a: &Agreement| Endorsement {
            sender: a.index() as u16,
            signature: a
                .sign(Request {
                    value: value.clone(),
                })
                .signature,
        };
        let two = vec![request(&agents[0]), request(&agents[2])];
        let pre_prepare = |endorsements| {
            Agreement::encode(&agents[0].sign(PrePrepare {
                view: 0,
                seq: 1,
                value: value.clone(),
                endorsements,
            }))
        };
        let (short, full) = (
            pre_prepare(two.clone()),
            pre_prepare([two, vec![request(&agents[3])]].concat()),
        );
        assert_eq!(agents[1].set_order_at(1, 3).transmits, vec![]);
        assert_eq!(agents[1].order_at(), 3);
        assert!(agents[1].handle_message(1, &short).transmits.is_empty());
        assert_eq!(agents[1].stats().rejected.get("UNDER_ENDORSED"), Some(&1));
        assert_eq!(
            agents[1].handle_message(1, &full).transmits.len(),
            1,
            "a prepare"
        );
        // Policy stays within [f + 1, n − f]: one silent member of four never blocks ordering
        // (a 4-of-4 council's motions need 3).
        assert_eq!(agents[2].set_order_at(1, 0).transmits, vec![]);
        assert_eq!(agents[2].order_at(), 2);
        agents[2].set_order_at(1, 4);
        assert_eq!(agents[2].order_at(), 3);
        // A leader at k = 3 orders only at the third request.
        agents[0].set_order_at(1, 3);
        agents[0].propose(1, value.clone()).unwrap();
        for (i, pre_prepares) in [(1, 0), (2, 1)] {
            let request = Agreement::encode(&agents[i].sign(Request {
                value: value.clone(),
            }));
            let out = agents[0].handle_message(2, &request);
            let sent = out
                .transmits
                .iter()
                .filter(|t| t.bytes[1] == PrePrepare::KIND)
                .count();
            assert_eq!(sent, pre_prepares, "after member {i}'s request");
        }
    }

    /// Regression: the membership id hashed only epoch and keys, so a council's messages
    /// counted in another council of the same members (another room or document).
    #[test]
    fn messages_of_another_council_never_count() {
        let mut here = council(4, "room A/memory");
        let mut there = council(4, "room B/memory");
        let request = there[0].propose(0, b"motion".to_vec()).unwrap().transmits;
        here[1].handle_message(1, &request[0].bytes);
        assert_eq!(here[1].stats().rejected.get("BAD_SIGNATURE"), Some(&1));
        assert_eq!(here[1].pending(), 0);
    }

    /// Regression: pending requests were unbounded and all resent every period (3,000 ×
    /// 64 KiB held and resent). One member's requests are capped, and an agent resends only
    /// its own.
    #[test]
    fn a_flooding_member_fills_only_its_own_share() {
        let mut agents = council(4, "room/doc");
        for i in 0..100u32 {
            let request = agents[3].sign(Request {
                value: vec![i as u8; 4 + i as usize],
            });
            agents[0].handle_message(1, &Agreement::encode(&request));
        }
        assert_eq!(agents[0].pending(), MAX_PENDING_PER_MEMBER);
        assert_eq!(
            agents[0].stats().rejected.get("TOO_MANY_PENDING"),
            Some(&(100 - MAX_PENDING_PER_MEMBER as u64))
        );
        let out = agents[0].handle_tick(10_000);
        assert_eq!(
            out.transmits.len(),
            1,
            "only a status: the flood is not resent"
        );
        // The member's own proposals are refused past the same cap.
        for i in 0..MAX_PENDING_PER_MEMBER {
            agents[2].propose(1, vec![i as u8 + 1]).unwrap();
        }
        assert!(agents[2].propose(1, vec![255]).is_err());
    }

    /// Regression: one replayed 69-byte STATUS made a member sign and send thousands of
    /// catch-up messages. Catch-up goes to a member at most once per retransmit period.
    #[test]
    fn a_replayed_status_costs_one_reply_per_period() {
        let mut agents = council(4, "room/doc");
        let stale = Agreement::encode(&agents[3].sign(Status {
            view: 0,
            executed: 0,
        }));
        for i in 0..40u8 {
            let out = agents[0].propose(1, vec![i + 1]).unwrap();
            pump(&mut agents, 0, out);
            let out = agents[1].propose(1, vec![i + 1]).unwrap();
            pump(&mut agents, 1, out);
        }
        assert_eq!(agents[0].executed(), 40);
        let mut sent = 0;
        for _ in 0..1_000 {
            sent += agents[0].handle_message(5, &stale).transmits.len();
        }
        assert_eq!(sent, 32, "one batch of at most 32 decisions");
        sent = agents[0].handle_message(5 + 1_000, &stale).transmits.len();
        assert_eq!(sent, 32, "and again one period later");
    }

    /// Regression: vote maps grew with every digest a member voted for. One prepare and one
    /// commit per member, slot and view are kept; another digest is an equivocation.
    #[test]
    fn votes_are_one_per_member_slot_and_view() {
        let mut agents = council(4, "room/doc");
        for i in 0..500u32 {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&i.to_le_bytes());
            let prepare = agents[3].sign(Prepare {
                view: 0,
                seq: 1,
                digest,
            });
            agents[0].handle_message(1, &Agreement::encode(&prepare));
        }
        assert_eq!(agents[0].slots[&1].prepares.len(), 1);
        assert_eq!(agents[0].stats().rejected.get("EQUIVOCATION"), Some(&499));
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
