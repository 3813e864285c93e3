//! The replicated store of beads: one OR-Set of signed records (beads, last-writer-wins
//! metadata, approvals) that a [`SyncNode`](chrysalis_sync::SyncNode) shares as one document.
//!
//! Every record carries its author's signature, and the set holds it as an [`Entry`]: the record
//! with the event number (the OR-Set dot) its signer's replica gave it, signed by the signer, so
//! a dot can be neither moved to another replica nor renumbered. A delta from a peer is checked
//! before anything is joined:
//!
//! - one forged, mismatched or unbound entry refuses the whole delta (the sync layer scores
//!   the sender down), and the refusal is counted by reason;
//! - the delta's causal context (what its sender claims to have seen, which nobody signs) is
//!   believed only for events this replica already knows contiguously, events the delta's
//!   signed entries show, and events a signed [`Forget`] lists as removed: a claim on any other
//!   event could make this replica skip that event's record when it arrives;
//! - every removal is explicit: a replica removes only its own entries, and only by a signed
//!   [`Forget`] that lists them (the bead, the author's metadata and approval of it) and stays
//!   as a tombstone, so the bead never comes back. Any other removal a context implies is
//!   ignored. Metadata is never removed: the newest of each author wins.

use std::collections::{BTreeMap, BTreeSet};

use chrysalis_crdt::{DeltaCrdt, Dot, Encode, Hlc, ORSet, ORSetDelta, ReplicaId, VersionVector};
use chrysalis_sync::Document;
use serde::{Deserialize, Serialize};

use crate::MemoryError;
use crate::bead::{Bead, BeadDraft, BeadId};
use crate::identity::{Identity, PublicKey, Signature, check, replica_of, signed_message};

/// Pin and importance of a bead, set by any agent; the latest write (by HLC) wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetaRecord {
    /// The bead described.
    pub bead: BeadId,
    /// Kept out of forgetting and ranked first by the UI.
    pub pinned: bool,
    /// 0–100.
    pub importance: u8,
    /// When it was written.
    pub at: Hlc,
    /// Who wrote it.
    pub author: PublicKey,
    /// The author's signature.
    pub signature: Signature,
}

/// An agent's signed approval of a bead (for k-of-n acceptance).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Approval {
    /// The bead approved.
    pub bead: BeadId,
    /// The approving agent.
    pub approver: PublicKey,
    /// When (ms since the epoch).
    pub time: u64,
    /// The approver's signature.
    pub signature: Signature,
}

/// A bead's author forgetting it: the entries it lists (the bead, the author's metadata and
/// approval of it) are removed everywhere, and this tombstone stays so that the bead never
/// comes back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Forget {
    /// The bead forgotten.
    pub bead: BeadId,
    /// Its author (a forget by anyone else hides nothing).
    pub author: PublicKey,
    /// When (ms since the epoch).
    pub time: u64,
    /// The event numbers of the author's entries it removes.
    pub removes: Vec<u64>,
    /// The author's signature.
    pub signature: Signature,
}

/// A record of the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Record {
    /// A memory item.
    Bead(Bead),
    /// Metadata of a bead.
    Meta(MetaRecord),
    /// An approval of a bead.
    Approval(Approval),
    /// A bead forgotten by its author.
    Forget(Forget),
}

/// One element of the store's OR-Set: a record, the event number (`seq`) its signer's replica
/// gave it, and the signer's signature over both. Its one dot must be
/// `(replica_of(signer), seq)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// The record.
    pub record: Record,
    /// Its event number at the signer's replica.
    pub seq: u64,
    /// The record's signer's signature over the record and `seq`.
    pub signature: Signature,
}

impl MetaRecord {
    fn message(&self) -> Vec<u8> {
        let at = postcard::to_allocvec(&self.at).expect("clocks encode");
        signed_message(
            "chrysalis bead meta v1",
            &[
                &self.bead,
                &[self.pinned as u8, self.importance],
                &at,
                &self.author,
            ],
        )
    }
}

impl Approval {
    /// `approver`'s signed approval of `bead` at `time`.
    pub fn new(approver: &Identity, bead: BeadId, time: u64) -> Approval {
        let key = approver.public_key();
        Approval {
            bead,
            approver: key,
            time,
            signature: approver.sign(&Approval::message(&bead, &key, time)),
        }
    }

    fn message(bead: &BeadId, approver: &PublicKey, time: u64) -> Vec<u8> {
        signed_message(
            "chrysalis approval v1",
            &[bead, approver, &time.to_le_bytes()],
        )
    }
}

impl Forget {
    /// `author`'s signed forget of `bead` at `time`, removing the author's entries `removes`.
    pub fn new(author: &Identity, bead: BeadId, time: u64, removes: Vec<u64>) -> Forget {
        let mut forget = Forget {
            bead,
            author: author.public_key(),
            time,
            removes,
            signature: Signature([0; 64]),
        };
        forget.signature = author.sign(&forget.message());
        forget
    }

    fn message(&self) -> Vec<u8> {
        let removes: Vec<u8> = self.removes.iter().flat_map(|s| s.to_le_bytes()).collect();
        signed_message(
            "chrysalis forget v1",
            &[&self.bead, &self.author, &self.time.to_le_bytes(), &removes],
        )
    }

    /// The dots of the entries it removes.
    fn removed(&self) -> impl Iterator<Item = Dot> + '_ {
        let replica = replica_of(&self.author);
        self.removes
            .iter()
            .map(move |&counter| Dot { replica, counter })
    }
}

impl Entry {
    /// `record` as event `seq` of `signer`'s replica, signed by `signer` (who must be the
    /// record's signer for the entry to verify).
    pub fn new(signer: &Identity, record: Record, seq: u64) -> Entry {
        let signature = signer.sign(&Entry::message(&record, seq));
        Entry {
            record,
            seq,
            signature,
        }
    }

    fn message(record: &Record, seq: u64) -> Vec<u8> {
        let encoded = postcard::to_allocvec(record).expect("records encode");
        let hash = blake3::hash(&encoded);
        signed_message(
            "chrysalis store entry v1",
            &[hash.as_bytes(), &seq.to_le_bytes()],
        )
    }

    /// Checks the record, then the signer's signature over it and `seq`.
    pub fn verify(&self) -> Result<(), MemoryError> {
        self.record.verify()?;
        check(
            self.record.signer(),
            &Entry::message(&self.record, self.seq),
            &self.signature,
            "store entry",
        )
    }

    /// The one dot this entry may have.
    pub fn dot(&self) -> Dot {
        Dot {
            replica: replica_of(self.record.signer()),
            counter: self.seq,
        }
    }
}

impl Record {
    /// Whose signature the record carries (a bead's author, an approver, …).
    pub fn signer(&self) -> &PublicKey {
        match self {
            Record::Bead(b) => &b.author,
            Record::Meta(m) => &m.author,
            Record::Approval(a) => &a.approver,
            Record::Forget(f) => &f.author,
        }
    }

    /// Checks the record's signature (and a bead's id and limits).
    pub fn verify(&self) -> Result<(), MemoryError> {
        match self {
            Record::Bead(bead) => bead.verify(),
            Record::Meta(meta) => {
                if meta.importance > 100 {
                    return Err(MemoryError::bad_input("importance", "0 to 100"));
                }
                check(
                    &meta.author,
                    &meta.message(),
                    &meta.signature,
                    "bead metadata",
                )
            }
            Record::Approval(a) => check(
                &a.approver,
                &Approval::message(&a.bead, &a.approver, a.time),
                &a.signature,
                "approval",
            ),
            Record::Forget(f) => {
                if f.removes.len() > MAX_FORGET_REMOVES {
                    return Err(MemoryError::bad_input(
                        "forget",
                        format!("removes more than {MAX_FORGET_REMOVES} entries"),
                    ));
                }
                check(&f.author, &f.message(), &f.signature, "forget")
            }
        }
    }

    fn bead_id(&self) -> BeadId {
        match self {
            Record::Bead(b) => b.id,
            Record::Meta(m) => m.bead,
            Record::Approval(a) => a.bead,
            Record::Forget(f) => f.bead,
        }
    }
}

/// What changed in the store since the owner last asked ([`MemoryStore::take_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreChange {
    /// A bead arrived (locally or from a peer).
    Added(BeadId),
    /// A bead was forgotten.
    Removed(BeadId),
    /// A bead's metadata or approvals changed.
    Updated(BeadId),
}

/// The store: the OR-Set, and views of it derived on every change.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    set: ORSet<Entry>,
    replica: ReplicaId,
    clock: Hlc,
    beads: BTreeMap<BeadId, Bead>,
    meta: BTreeMap<BeadId, MetaRecord>,
    approvals: BTreeMap<BeadId, BTreeMap<PublicKey, Approval>>,
    /// Who forgot each bead (only its author's forget hides it).
    forgotten: BTreeMap<BeadId, BTreeSet<PublicKey>>,
    /// Every entry a held forget removes (they may be removed, and their events counted seen).
    retired: BTreeSet<Dot>,
    /// The latest wall-clock time a local write gave (ms).
    wall: u64,
    records: usize,
    changes: Vec<StoreChange>,
    rejected: BTreeMap<&'static str, u64>,
}

/// The most entries one forget removes (a bead, and its author's metadata writes and approval).
pub const MAX_FORGET_REMOVES: usize = 4096;

/// How far ahead of the local clock a peer's record may be dated (one day): a bead dated 1e300
/// must not drag the local clock, and every later local write, along with it.
pub const MAX_CLOCK_SKEW_MS: u64 = 24 * 60 * 60 * 1000;

impl MemoryStore {
    /// An empty store written to by `owner`.
    pub fn new(owner: &PublicKey) -> Self {
        MemoryStore {
            set: ORSet::new(),
            replica: replica_of(owner),
            clock: Hlc::default(),
            beads: BTreeMap::new(),
            meta: BTreeMap::new(),
            approvals: BTreeMap::new(),
            forgotten: BTreeMap::new(),
            retired: BTreeSet::new(),
            wall: 0,
            records: 0,
            changes: Vec::new(),
            rejected: BTreeMap::new(),
        }
    }

    /// A store from [`MemoryStore::to_bytes`], every record checked again.
    pub fn from_bytes(owner: &PublicKey, bytes: &[u8]) -> Result<Self, MemoryError> {
        let set = ORSet::<Entry>::from_bytes(bytes).map_err(|e| MemoryError::Decode {
            what: "memory store",
            reason: e.to_string(),
        })?;
        for entry in set.iter() {
            entry.verify()?;
        }
        let mut store = MemoryStore::new(owner);
        store.set = set;
        store.refresh(None);
        Ok(store)
    }

    /// The whole state as bytes (what the page persists).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.set.to_bytes()
    }

    /// Signs and adds a bead made from `draft` at wall-clock `now`; returns it and the delta.
    pub fn remember(
        &mut self,
        author: &Identity,
        draft: BeadDraft,
        now: u64,
    ) -> Result<(Bead, Vec<u8>), MemoryError> {
        self.check_owner(author)?;
        let created = self.tick(now);
        let bead = Bead::create(author, draft, created)?;
        let delta = self.write(author, &[], Record::Bead(bead.clone()));
        Ok((bead, delta))
    }

    /// Forgets a bead as its author: removes it with the author's own metadata and approvals
    /// of it and adds the author's signed [`Forget`]; the delta to ship.
    pub fn forget(
        &mut self,
        author: &Identity,
        id: &BeadId,
        now: u64,
    ) -> Result<Vec<u8>, MemoryError> {
        self.check_owner(author)?;
        let me = author.public_key();
        match self.beads.get(id) {
            None => return Err(MemoryError::bad_input("bead", "not in the store")),
            Some(bead) if bead.author != me => {
                return Err(MemoryError::NotAuthor("only a bead's author forgets it"));
            }
            Some(_) => {}
        }
        let doomed: Vec<Entry> = self
            .set
            .iter()
            .filter(|e| e.record.bead_id() == *id && *e.record.signer() == me)
            .cloned()
            .collect();
        let removes = doomed.iter().map(|e| e.seq).collect();
        let forget = Forget::new(author, *id, now, removes);
        Ok(self.write(author, &doomed, Record::Forget(forget)))
    }

    /// Sets a bead's pin and importance (0–100) as `author` (the newest metadata wins, and
    /// older records stay until the bead is forgotten); the deltas to ship.
    pub fn set_meta(
        &mut self,
        author: &Identity,
        id: &BeadId,
        pinned: bool,
        importance: u8,
        now: u64,
    ) -> Result<Vec<Vec<u8>>, MemoryError> {
        if !self.beads.contains_key(id) {
            return Err(MemoryError::bad_input("bead", "not in the store"));
        }
        if importance > 100 {
            return Err(MemoryError::bad_input("importance", "0 to 100"));
        }
        self.check_owner(author)?;
        let mut meta = MetaRecord {
            bead: *id,
            pinned,
            importance,
            at: self.tick(now),
            author: author.public_key(),
            signature: Signature([0; 64]),
        };
        meta.signature = author.sign(&meta.message());
        Ok(vec![self.write(author, &[], Record::Meta(meta))])
    }

    /// Records `approver`'s approval of a bead; the delta (none if it already approved).
    pub fn approve(
        &mut self,
        approver: &Identity,
        id: &BeadId,
        now: u64,
    ) -> Result<Option<Vec<u8>>, MemoryError> {
        if !self.beads.contains_key(id) {
            return Err(MemoryError::bad_input("bead", "not in the store"));
        }
        self.check_owner(approver)?;
        let key = approver.public_key();
        if self.approvals.get(id).is_some_and(|a| a.contains_key(&key)) {
            return Ok(None);
        }
        let approval = Approval::new(approver, *id, now);
        Ok(Some(self.write(approver, &[], Record::Approval(approval))))
    }

    /// A live bead.
    pub fn bead(&self, id: &BeadId) -> Option<&Bead> {
        self.beads.get(id)
    }

    /// Every live bead, by id.
    pub fn beads(&self) -> impl Iterator<Item = &Bead> {
        self.beads.values()
    }

    /// Live beads.
    pub fn len(&self) -> usize {
        self.beads.len()
    }

    /// Whether the store holds no bead.
    pub fn is_empty(&self) -> bool {
        self.beads.is_empty()
    }

    /// A bead's latest metadata.
    pub fn meta(&self, id: &BeadId) -> Option<&MetaRecord> {
        self.meta.get(id)
    }

    /// The agents that approved a bead.
    pub fn approvers(&self, id: &BeadId) -> impl Iterator<Item = &PublicKey> {
        self.approvals.get(id).into_iter().flat_map(|a| a.keys())
    }

    /// Deltas refused from peers, by reason (`BAD_SIGNATURE`, `ID_MISMATCH`, `DECODE`,
    /// `UNBOUND_DOT`, …), and deltas applied only in part: `UNAUTHORIZED_REMOVE` (a removal no
    /// signed forget lists, ignored) and `UNSHOWN_CONTEXT` (context claims on events nothing
    /// signed shows, not believed).
    pub fn rejected(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejected
    }

    /// What changed since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<StoreChange> {
        std::mem::take(&mut self.changes)
    }

    fn tick(&mut self, now: u64) -> Hlc {
        self.wall = self.wall.max(now);
        self.clock = self.clock.tick(self.replica, now);
        self.clock
    }

    /// Only the owner writes here: every entry's dot is its signer's replica's event.
    fn check_owner(&self, signer: &Identity) -> Result<(), MemoryError> {
        if replica_of(&signer.public_key()) == self.replica {
            Ok(())
        } else {
            Err(MemoryError::NotAuthor(
                "a store writes only its owner's records",
            ))
        }
    }

    /// Signs `record` as the next event of this replica, adds it and removes `removed` (this
    /// replica's own entries) in that one event; the views follow, and the delta is returned.
    fn write(&mut self, signer: &Identity, removed: &[Entry], record: Record) -> Vec<u8> {
        let seq = self.set.version_vector().get(self.replica) + 1;
        let entry = Entry::new(signer, record, seq);
        let delta = self.set.replace(self.replica, removed, entry);
        debug_assert!(
            delta
                .entries()
                .all(|(e, dots)| dots.iter().all(|d| *d == e.dot()))
        );
        self.refresh(Some(&delta));
        delta.to_bytes()
    }

    /// Brings the derived views up to date after a change. With the delta at hand only its
    /// elements are looked at, unless records also went away (then every view is checked).
    fn refresh(&mut self, delta: Option<&ORSetDelta<Entry>>) {
        let added: Vec<Record> = match delta {
            Some(d) => d
                .elements()
                .filter(|e| self.set.contains(e))
                .map(|e| e.record.clone())
                .collect(),
            None => self.set.iter().map(|e| e.record.clone()).collect(),
        };
        let known_before = self.records;
        let mut fresh = 0;
        for record in added {
            fresh += self.observe(record) as usize;
        }
        if delta.is_none() || self.set.len() != known_before + fresh {
            self.prune();
        }
        self.records = self.set.len();
    }

    /// Adds a record to the views; whether it was new to them.
    fn observe(&mut self, record: Record) -> bool {
        let id = record.bead_id();
        match record {
            Record::Bead(bead) => {
                self.observe_clock(bead.created);
                if self.beads.contains_key(&id) || self.is_forgotten(&bead) {
                    return false;
                }
                self.beads.insert(id, bead);
                self.changes.push(StoreChange::Added(id));
            }
            Record::Forget(forget) => {
                self.retired.extend(forget.removed());
                let by = self.forgotten.entry(id).or_default();
                if !by.insert(forget.author) {
                    return false;
                }
                if self
                    .beads
                    .get(&id)
                    .is_some_and(|b| b.author == forget.author)
                {
                    self.beads.remove(&id);
                    self.changes.push(StoreChange::Removed(id));
                }
            }
            Record::Meta(meta) => {
                self.observe_clock(meta.at);
                let current = self.meta.get(&id);
                if current == Some(&meta) {
                    return false;
                }
                if current.is_none_or(|c| (c.at, &c.signature) < (meta.at, &meta.signature)) {
                    self.meta.insert(id, meta);
                    self.changes.push(StoreChange::Updated(id));
                }
            }
            Record::Approval(approval) => {
                let by = self.approvals.entry(id).or_default();
                if by.contains_key(&approval.approver) {
                    return false;
                }
                by.insert(approval.approver, approval);
                self.changes.push(StoreChange::Updated(id));
            }
        }
        true
    }

    /// Moves the local clock to a peer's record's time, unless it is more than
    /// [`MAX_CLOCK_SKEW_MS`] ahead of the local clock and the last local write's wall clock.
    fn observe_clock(&mut self, at: Hlc) {
        let here = self.clock.millis.max(self.wall);
        if at.millis <= here.saturating_add(MAX_CLOCK_SKEW_MS) {
            self.clock = self.clock.max(at);
        }
    }

    fn is_forgotten(&self, bead: &Bead) -> bool {
        self.forgotten
            .get(&bead.id)
            .is_some_and(|by| by.contains(&bead.author))
    }

    /// Drops from the views what the set no longer holds.
    fn prune(&mut self) {
        let live: BTreeSet<(BeadId, Signature)> = self
            .set
            .iter()
            .filter_map(|e| match &e.record {
                Record::Bead(b) => Some((b.id, b.signature)),
                _ => None,
            })
            .collect();
        let gone: Vec<BeadId> = self
            .beads
            .values()
            .filter(|b| !live.contains(&(b.id, b.signature)))
            .map(|b| b.id)
            .collect();
        for id in gone {
            self.beads.remove(&id);
            self.changes.push(StoreChange::Removed(id));
        }
        let mut metas: BTreeMap<BeadId, MetaRecord> = BTreeMap::new();
        let mut approvals: BTreeMap<BeadId, BTreeMap<PublicKey, Approval>> = BTreeMap::new();
        for entry in self.set.iter() {
            match &entry.record {
                Record::Meta(m) => {
                    let keep = metas
                        .get(&m.bead)
                        .is_none_or(|c| (c.at, &c.signature) < (m.at, &m.signature));
                    if keep {
                        metas.insert(m.bead, m.clone());
                    }
                }
                Record::Approval(a) => {
                    approvals
                        .entry(a.bead)
                        .or_default()
                        .insert(a.approver, a.clone());
                }
                Record::Bead(_) | Record::Forget(_) => {}
            }
        }
        for id in self.meta.keys().chain(metas.keys()) {
            if self.meta.get(id) != metas.get(id) && self.beads.contains_key(id) {
                self.changes.push(StoreChange::Updated(*id));
            }
        }
        self.meta = metas;
        self.approvals = approvals;
    }
}

/// The most record bytes one delta from [`Document::delta_since`] carries: half the sync
/// layer's default 1 MiB frame, leaving room for dots and framing.
pub const MAX_DELTA_RECORD_BYTES: usize = 512 * 1024;

impl MemoryStore {
    /// The events this replica has seen.
    pub fn version_vector(&self) -> VersionVector {
        self.set.version_vector()
    }

    /// What a replica at `since` lacks (as [`Document::delta_since`]), stopping before the
    /// owner's entries numbered above `durable`: writes whose storage has not completed, which
    /// must not reach a peer (see [`Memory`](crate::Memory)).
    pub fn delta_since_durable(&self, since: &VersionVector, durable: u64) -> Option<Vec<u8>> {
        let mut used = 0;
        let (delta, _) = self.set.delta_since_within(since, |entry| {
            if entry.dot().replica == self.replica && entry.seq > durable {
                return false;
            }
            let first = used == 0;
            used += postcard::to_allocvec(entry).map_or(0, |b| b.len());
            first || used <= MAX_DELTA_RECORD_BYTES
        });
        (!delta.is_empty()).then(|| delta.to_bytes())
    }
}

impl Document for MemoryStore {
    fn version(&self) -> Result<VersionVector, String> {
        Ok(self.set.version_vector())
    }

    /// What a replica at `since` lacks, oldest records first, up to [`MAX_DELTA_RECORD_BYTES`]
    /// of records (at least one): a bigger memory reaches a new peer over several anti-entropy
    /// rounds instead of in one delta the sync layer would refuse.
    fn delta_since(&self, since: &VersionVector) -> Option<Vec<u8>> {
        self.delta_since_durable(since, u64::MAX)
    }

    /// Checks every entry of the delta before joining any: a forged bead, a bead whose id does
    /// not match its content, a record with a bad signature or an entry whose dot is not its
    /// signer's refuses the whole delta. Then believes the delta's (unsigned) context only as
    /// far as signed entries show, and ignores any removal no signed record authorises.
    fn apply(&mut self, bytes: &[u8]) -> Result<bool, String> {
        let mut delta = match ORSetDelta::<Entry>::from_bytes(bytes) {
            Ok(delta) => delta,
            Err(e) => {
                *self.rejected.entry("DECODE").or_default() += 1;
                return Err(e.to_string());
            }
        };
        for (entry, dots) in delta.entries() {
            let refusal = match entry.verify() {
                Err(e) => Some((e.code(), format!("refused record: {e}"))),
                Ok(()) if dots.len() != 1 || !dots.contains(&entry.dot()) => Some((
                    "UNBOUND_DOT",
                    "an entry's dot is not its signer's event".to_string(),
                )),
                Ok(()) => None,
            };
            if let Some((code, message)) = refusal {
                *self.rejected.entry(code).or_default() += 1;
                return Err(message);
            }
        }
        self.limit_claims(&mut delta);
        let before = self.set.version_vector();
        self.set.apply_delta(&delta);
        self.refresh(Some(&delta));
        Ok(self.set.version_vector() != before)
    }
}

impl MemoryStore {
    /// Limits what `delta`'s context may claim, per replica: the events known here
    /// contiguously, the events its signed entries show, and the ones a signed forget removes
    /// (held here or in the delta); and never a live entry here that no signed forget removes.
    fn limit_claims(&mut self, delta: &mut ORSetDelta<Entry>) {
        let removable: BTreeSet<Dot> = delta
            .elements()
            .filter_map(|e| match &e.record {
                Record::Forget(f) => Some(f.removed()),
                _ => None,
            })
            .flatten()
            .chain(self.retired.iter().copied())
            .filter(|d| delta.context().contains(*d))
            .collect();
        let own = self.set.version_vector();
        let mut caps: BTreeMap<ReplicaId, u64> = delta
            .context()
            .version_vector()
            .iter()
            .map(|(r, _)| (r, own.get(r)))
            .chain(
                delta
                    .context()
                    .cloud()
                    .iter()
                    .map(|d| (d.replica, own.get(d.replica))),
            )
            .collect();
        let claimed: Vec<(ReplicaId, u64)> =
            caps.keys().map(|r| (*r, delta.context().max(*r))).collect();
        delta.limit_context(|r| caps.get(&r).copied().unwrap_or(0), &removable);
        if claimed.iter().any(|(r, c)| delta.context().max(*r) < *c) {
            *self.rejected.entry("UNSHOWN_CONTEXT").or_default() += 1;
        }
        let mut refused_removal = false;
        loop {
            let unauthorised: Vec<Dot> = self
                .set
                .removed_by(delta)
                .into_iter()
                .flat_map(|(_, dots)| dots.iter().copied())
                .filter(|d| !removable.contains(d))
                .collect();
            if unauthorised.is_empty() {
                break;
            }
            refused_removal = true;
            for dot in unauthorised {
                let cap = caps.entry(dot.replica).or_default();
                *cap = (*cap).min(dot.counter - 1);
            }
            delta.limit_context(|r| caps.get(&r).copied().unwrap_or(0), &removable);
        }
        if refused_removal {
            *self.rejected.entry("UNAUTHORIZED_REMOVE").or_default() += 1;
        }
    }
}
