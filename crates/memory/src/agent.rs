//! [`Memory`]: one agent's memory as one value — the replicated store, the search index derived
//! from it, the council and the beads it accepted — and the [`Document`] a sync node shares.
//!
//! Durability is the host's (a Room writes the journal this value collects), but one rule of
//! it lives here: this agent's own writes are served to peers only once the host says they are
//! durable ([`Memory::durable_through`]). A replica that restarted without an unsaved write
//! would number its next write the same; had a peer received the lost one, the two replicas
//! would each believe they have the other's event and never converge.

use std::collections::BTreeSet;

use chrysalis_crdt::VersionVector;
use chrysalis_sync::Document;

use crate::bead::{Bead, BeadDraft, BeadId};
use crate::identity::{Identity, PublicKey, replica_of};
use crate::index::{Hit, MemoryIndex, Query};
use crate::store::{MemoryStore, StoreChange};
use crate::threshold::{Acceptance, Council, Motion};
use crate::{HnswConfig, MemoryError};

/// How a [`Memory`] starts.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// The founding council (empty: this agent alone).
    pub members: Vec<PublicKey>,
    /// Approvals that accept a bead.
    pub threshold: usize,
    /// The vector index's tuning.
    pub hnsw: HnswConfig,
    /// The embedding model to index (else the first one this agent uses).
    pub model: Option<(String, usize)>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            members: Vec::new(),
            threshold: 1,
            hnsw: HnswConfig::default(),
            model: None,
        }
    }
}

/// What changed in a memory, local or replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryChange {
    /// A bead arrived.
    Added(BeadId),
    /// A bead was forgotten.
    Removed(BeadId),
    /// A bead's metadata or approvals changed.
    Updated(BeadId),
    /// The council accepted a bead.
    Accepted(BeadId),
}

impl MemoryChange {
    /// The bead it is about.
    pub fn id(&self) -> BeadId {
        match self {
            MemoryChange::Added(id)
            | MemoryChange::Removed(id)
            | MemoryChange::Updated(id)
            | MemoryChange::Accepted(id) => *id,
        }
    }

    /// `added`, `removed`, `updated` or `accepted`.
    pub fn kind(&self) -> &'static str {
        match self {
            MemoryChange::Added(_) => "added",
            MemoryChange::Removed(_) => "removed",
            MemoryChange::Updated(_) => "updated",
            MemoryChange::Accepted(_) => "accepted",
        }
    }
}

/// One agent's memory. See the module docs.
pub struct Memory {
    me: Identity,
    store: MemoryStore,
    index: MemoryIndex,
    council: Council,
    accepted: BTreeSet<BeadId>,
    journal: Vec<Vec<u8>>,
    changes: Vec<MemoryChange>,
    durable: u64,
}

impl Memory {
    /// The memory of `me`, from `snapshot` ([`Memory::to_bytes`], every record checked again)
    /// or empty.
    pub fn new(
        me: Identity,
        config: MemoryConfig,
        snapshot: Option<&[u8]>,
    ) -> Result<Self, MemoryError> {
        let key = me.public_key();
        let store = match snapshot {
            Some(bytes) if !bytes.is_empty() => MemoryStore::from_bytes(&key, bytes)?,
            _ => MemoryStore::new(&key),
        };
        let members = if config.members.is_empty() {
            vec![key]
        } else {
            config.members
        };
        let council = Council::new(members, config.threshold)?;
        let index = MemoryIndex::build(&store, config.hnsw, config.model);
        let mut memory = Memory {
            me,
            store,
            index,
            council,
            accepted: BTreeSet::new(),
            journal: Vec::new(),
            changes: Vec::new(),
            durable: 0,
        };
        memory.durable = memory.own_seq();
        memory.store.take_changes();
        memory.recheck_acceptance();
        memory.changes.clear();
        Ok(memory)
    }

    /// This agent's identity.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The replicated store.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The search index.
    pub fn index(&self) -> &MemoryIndex {
        &self.index
    }

    /// The council as decided so far.
    pub fn council(&self) -> &Council {
        &self.council
    }

    /// Signs and stores a bead made from `draft`; returns it (its delta joins the journal).
    pub fn remember(&mut self, draft: BeadDraft, now: u64) -> Result<Bead, MemoryError> {
        let (bead, delta) = self.store.remember(&self.me, draft, now)?;
        if let Some(e) = &bead.embedding {
            self.choose_model(&e.model, e.vector.len());
        }
        self.journal.push(delta);
        self.absorb();
        Ok(bead)
    }

    /// Forgets a bead this agent wrote, everywhere and for good; whether it was here.
    pub fn forget(&mut self, id: &BeadId, now: u64) -> Result<bool, MemoryError> {
        if self.store.bead(id).is_none() {
            return Ok(false);
        }
        let delta = self.store.forget(&self.me, id, now)?;
        self.journal.push(delta);
        self.absorb();
        Ok(true)
    }

    /// Signs this agent's approval of a bead; whether it was new.
    pub fn approve(&mut self, id: &BeadId, now: u64) -> Result<bool, MemoryError> {
        let delta = self.store.approve(&self.me, id, now)?;
        let fresh = delta.is_some();
        self.journal.extend(delta);
        self.absorb();
        Ok(fresh)
    }

    /// The council's verdict on a bead.
    pub fn acceptance(&self, id: &BeadId) -> Acceptance {
        self.council.acceptance(&self.store, id)
    }

    /// The best beads for `query` (a query vector's model becomes the index's when it has none).
    pub fn recall(&mut self, query: &Query<'_>) -> Result<Vec<Hit>, MemoryError> {
        if let Some((model, vector)) = query.embedding {
            self.choose_model(model, vector.len());
        }
        self.index.search(query)
    }

    /// Applies a decided motion endorsed by `endorsers` (see [`Council::apply`]); acceptance
    /// is recomputed for every bead.
    pub fn apply_motion(
        &mut self,
        motion: &Motion,
        endorsers: &[PublicKey],
    ) -> Result<(), MemoryError> {
        self.council.apply(motion, endorsers)?;
        self.recheck_acceptance();
        Ok(())
    }

    /// What changed since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<MemoryChange> {
        std::mem::take(&mut self.changes)
    }

    /// The deltas applied since the last call, local and from peers, oldest first: what the
    /// host appends to durable storage.
    pub fn take_journal(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.journal)
    }

    /// The whole store as bytes (a snapshot).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.store.to_bytes()
    }

    /// The number of this agent's latest write (0 before the first).
    pub fn own_seq(&self) -> u64 {
        self.store
            .version_vector()
            .get(replica_of(&self.me.public_key()))
    }

    /// This agent's writes up to `seq` are durable: peers may now receive them.
    pub fn durable_through(&mut self, seq: u64) {
        self.durable = self.durable.max(seq);
    }

    fn choose_model(&mut self, model: &str, dims: usize) {
        if self.index.model().is_none() {
            self.index.choose_model(&self.store, model, dims);
        }
    }

    /// Brings the index and the accepted set up to date with the store's changes.
    fn absorb(&mut self) {
        let changes = self.store.take_changes();
        self.index.update(&self.store, &changes);
        for change in changes {
            let (change, id) = match change {
                StoreChange::Added(id) => (MemoryChange::Added(id), id),
                StoreChange::Removed(id) => (MemoryChange::Removed(id), id),
                StoreChange::Updated(id) => (MemoryChange::Updated(id), id),
            };
            self.changes.push(change);
            self.note_acceptance(id);
        }
    }

    fn recheck_acceptance(&mut self) {
        let ids: Vec<BeadId> = self.store.beads().map(|b| b.id).collect();
        for id in ids {
            self.note_acceptance(id);
        }
    }

    /// Updates the accepted set for bead `id`, reporting a newly accepted bead.
    fn note_acceptance(&mut self, id: BeadId) {
        let here = self.store.bead(&id).is_some();
        let accepted = here && matches!(self.acceptance(&id), Acceptance::Accepted { .. });
        if accepted && self.accepted.insert(id) {
            self.changes.push(MemoryChange::Accepted(id));
        }
        if !accepted {
            self.accepted.remove(&id);
        }
    }
}

impl Document for Memory {
    fn version(&self) -> Result<VersionVector, String> {
        Ok(self.store.version_vector())
    }

    /// What a replica at `since` lacks, holding back this agent's writes not yet durable.
    fn delta_since(&self, since: &VersionVector) -> Option<Vec<u8>> {
        self.store.delta_since_durable(since, self.durable)
    }

    /// Joins a peer's delta after the store checked every record in it; a delta that made the
    /// store grow joins the journal.
    fn apply(&mut self, delta: &[u8]) -> Result<bool, String> {
        let grew = self.store.apply(delta)?;
        if grew {
            self.journal.push(delta.to_vec());
        }
        self.absorb();
        Ok(grew)
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("agent", &self.me.id())
            .field("beads", &self.store.len())
            .finish_non_exhaustive()
    }
}
