//! The replicated store of beads: one OR-Set of signed records (beads, last-writer-wins
//! metadata, approvals) that a [`SyncNode`](chrysalis_sync::SyncNode) shares as one document.
//!
//! Every record carries its author's signature. A delta from a peer is checked record by
//! record before anything is joined: one forged or mismatched record refuses the whole delta
//! (the sync layer scores the sender down), and the refusal is counted by reason.

use std::collections::BTreeMap;

use chrysalis_crdt::{DeltaCrdt, Encode, Hlc, ORSet, ORSetDelta, ReplicaId, VersionVector};
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

/// One element of the store's OR-Set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Record {
    /// A memory item.
    Bead(Bead),
    /// Metadata of a bead.
    Meta(MetaRecord),
    /// An approval of a bead.
    Approval(Approval),
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
    fn message(bead: &BeadId, approver: &PublicKey, time: u64) -> Vec<u8> {
        signed_message(
            "chrysalis approval v1",
            &[bead, approver, &time.to_le_bytes()],
        )
    }
}

impl Record {
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
        }
    }

    fn bead_id(&self) -> BeadId {
        match self {
            Record::Bead(b) => b.id,
            Record::Meta(m) => m.bead,
            Record::Approval(a) => a.bead,
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
    set: ORSet<Record>,
    replica: ReplicaId,
    clock: Hlc,
    beads: BTreeMap<BeadId, Bead>,
    meta: BTreeMap<BeadId, MetaRecord>,
    approvals: BTreeMap<BeadId, BTreeMap<PublicKey, Approval>>,
    records: usize,
    changes: Vec<StoreChange>,
    rejected: BTreeMap<&'static str, u64>,
}

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
            records: 0,
            changes: Vec::new(),
            rejected: BTreeMap::new(),
        }
    }

    /// A store from [`MemoryStore::to_bytes`], every record checked again.
    pub fn from_bytes(owner: &PublicKey, bytes: &[u8]) -> Result<Self, MemoryError> {
        let set = ORSet::<Record>::from_bytes(bytes).map_err(|e| MemoryError::Decode {
            what: "memory store",
            reason: e.to_string(),
        })?;
        for record in set.iter() {
            record.verify()?;
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
        let created = self.tick(now);
        let bead = Bead::create(author, draft, created)?;
        let delta = self.add(Record::Bead(bead.clone()));
        Ok((bead, delta))
    }

    /// Forgets a bead with its metadata and approvals; the deltas to ship (none when the bead
    /// is unknown).
    pub fn forget(&mut self, id: &BeadId) -> Vec<Vec<u8>> {
        let doomed: Vec<Record> = self
            .set
            .iter()
            .filter(|r| r.bead_id() == *id)
            .cloned()
            .collect();
        let deltas = doomed
            .iter()
            .filter_map(|r| self.set.remove(self.replica, r))
            .map(|d| d.to_bytes())
            .collect();
        self.refresh(None);
        deltas
    }

    /// Sets a bead's pin and importance (0–100) as `author`; the deltas to ship.
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
        let mut meta = MetaRecord {
            bead: *id,
            pinned,
            importance,
            at: self.tick(now),
            author: author.public_key(),
            signature: Signature([0; 64]),
        };
        meta.signature = author.sign(&meta.message());
        let older: Vec<Record> = self
            .set
            .iter()
            .filter(|r| matches!(r, Record::Meta(m) if m.bead == *id))
            .cloned()
            .collect();
        let mut deltas: Vec<Vec<u8>> = older
            .iter()
            .filter_map(|r| self.set.remove(self.replica, r))
            .map(|d| d.to_bytes())
            .collect();
        deltas.push(self.add(Record::Meta(meta)));
        Ok(deltas)
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
        let key = approver.public_key();
        if self.approvals.get(id).is_some_and(|a| a.contains_key(&key)) {
            return Ok(None);
        }
        let approval = Approval {
            bead: *id,
            approver: key,
            time: now,
            signature: approver.sign(&Approval::message(id, &key, now)),
        };
        Ok(Some(self.add(Record::Approval(approval))))
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

    /// Deltas refused from peers, by reason (`BAD_SIGNATURE`, `ID_MISMATCH`, `DECODE`, …).
    pub fn rejected(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejected
    }

    /// What changed since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<StoreChange> {
        std::mem::take(&mut self.changes)
    }

    fn tick(&mut self, now: u64) -> Hlc {
        self.clock = self.clock.tick(self.replica, now);
        self.clock
    }

    fn add(&mut self, record: Record) -> Vec<u8> {
        let delta = self.set.add(self.replica, record);
        self.refresh(Some(&delta));
        delta.to_bytes()
    }

    /// Brings the derived views up to date after a change. With the delta at hand only its
    /// elements are looked at, unless records also went away (then every view is checked).
    fn refresh(&mut self, delta: Option<&ORSetDelta<Record>>) {
        let added: Vec<Record> = match delta {
            Some(d) => d
                .elements()
                .filter(|r| self.set.contains(r))
                .cloned()
                .collect(),
            None => self.set.iter().cloned().collect(),
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
                self.clock = self.clock.max(bead.created);
                if self.beads.contains_key(&id) {
                    return false;
                }
                self.beads.insert(id, bead);
                self.changes.push(StoreChange::Added(id));
            }
            Record::Meta(meta) => {
                self.clock = self.clock.max(meta.at);
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

    /// Drops from the views what the set no longer holds.
    fn prune(&mut self) {
        let set = &self.set;
        let gone: Vec<BeadId> = self
            .beads
            .values()
            .filter(|b| !set.contains(&Record::Bead((*b).clone())))
            .map(|b| b.id)
            .collect();
        for id in gone {
            self.beads.remove(&id);
            self.changes.push(StoreChange::Removed(id));
        }
        let mut metas: BTreeMap<BeadId, MetaRecord> = BTreeMap::new();
        let mut approvals: BTreeMap<BeadId, BTreeMap<PublicKey, Approval>> = BTreeMap::new();
        for record in self.set.iter() {
            match record {
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
                Record::Bead(_) => {}
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

impl Document for MemoryStore {
    fn version(&self) -> VersionVector {
        self.set.version_vector()
    }

    /// What a replica at `since` lacks, oldest records first, up to [`MAX_DELTA_RECORD_BYTES`]
    /// of records (at least one): a bigger memory reaches a new peer over several anti-entropy
    /// rounds instead of in one delta the sync layer would refuse.
    fn delta_since(&self, since: &VersionVector) -> Option<Vec<u8>> {
        let mut used = 0;
        let (delta, _) = self.set.delta_since_within(since, |record| {
            let first = used == 0;
            used += postcard::to_allocvec(record).map_or(0, |b| b.len());
            first || used <= MAX_DELTA_RECORD_BYTES
        });
        (!delta.is_empty()).then(|| delta.to_bytes())
    }

    /// Checks every record of the delta before joining any: a forged bead, a bead whose id
    /// does not match its content or a record with a bad signature refuses the whole delta.
    fn apply(&mut self, bytes: &[u8]) -> Result<bool, String> {
        let delta = match ORSetDelta::<Record>::from_bytes(bytes) {
            Ok(delta) => delta,
            Err(e) => {
                *self.rejected.entry("DECODE").or_default() += 1;
                return Err(e.to_string());
            }
        };
        for record in delta.elements() {
            if let Err(e) = record.verify() {
                *self.rejected.entry(e.code()).or_default() += 1;
                return Err(format!("refused record: {e}"));
            }
        }
        let before = self.set.version_vector();
        self.set.apply_delta(&delta);
        self.refresh(Some(&delta));
        Ok(self.set.version_vector() != before)
    }
}
