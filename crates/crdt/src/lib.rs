//! Delta-state CRDTs for Chrysalis.
//!
//! Every type is a join-semilattice: [`Crdt::merge`] is commutative, associative and
//! idempotent. Mutators return a small delta to ship; [`DeltaCrdt::delta_since`] answers a peer's
//! version vector with what it lacks, for anti-entropy. Each type has a compact, versioned binary
//! encoding ([`Encode`]) whose decoder returns typed errors on any input. Pure Rust: it builds for
//! `wasm32-unknown-unknown` and the host; its JS face lives in `chrysalis-wasm`.

mod clock;
mod counter;
mod dag;
mod encoding;
mod error;
mod experience;
mod orset;
mod register;
mod resolver;

pub use clock::{CausalContext, Causality, Dot, Hlc, ReplicaId, VersionVector};
pub use counter::{GCounter, PNCounter};
pub use dag::{DagNode, DagNodes, MAX_PARENTS, MerkleDag, NodeHash};
pub use encoding::{ENCODING_VERSION, Encode, MAX_ENCODED_LEN};
pub use error::CrdtError;
pub use experience::{Episode, EpisodeMemory, Skill, SkillAccumulator};
pub use orset::{Element, ORSet, ORSetDelta};
pub use register::{LWWRegister, MVRegister};
pub use resolver::{
    Claim, Conflict, ConflictResolver, ConflictType, Resolution, ResolutionStrategy,
};

/// A delta two of which join into one: applying the join has the effect of applying both, in
/// either order (a node sends the changes of one task as one delta).
pub trait DeltaJoin: Sized {
    /// Joins `other` into `self`.
    fn join_delta(&mut self, other: Self);

    /// Joins all of `deltas` into one (`None` for none): the same as joining them one by one,
    /// which a type may do in one pass (the OR-Set's pairwise join costs the size of what it
    /// joined so far, so a fold over n deltas costs n²).
    fn join_all(deltas: Vec<Self>) -> Option<Self> {
        let mut deltas = deltas.into_iter();
        let mut joined = deltas.next()?;
        deltas.for_each(|delta| joined.join_delta(delta));
        Some(joined)
    }
}

/// A state is its own delta for every type but the OR-Set: the join is the merge.
impl<T: Crdt> DeltaJoin for T {
    fn join_delta(&mut self, other: Self) {
        self.merge(&other);
    }
}

/// A state-based CRDT: `merge` is a join (commutative, associative, idempotent).
pub trait Crdt: Clone + PartialEq + std::fmt::Debug {
    /// Joins `other` into `self`.
    fn merge(&mut self, other: &Self);
}

/// A CRDT with delta-state anti-entropy.
pub trait DeltaCrdt: Crdt {
    /// What mutators return and peers exchange.
    type Delta;

    /// A summary of the events this replica has seen.
    fn version_vector(&self) -> VersionVector;

    /// What a replica that has seen `since` lacks: applying it there has the effect of merging
    /// this whole state.
    fn delta_since(&self, since: &VersionVector) -> Self::Delta;

    /// Joins a delta (from a mutator or from `delta_since`) into `self`.
    fn apply_delta(&mut self, delta: &Self::Delta);

    /// [`apply_delta`](Self::apply_delta) of a delta the caller no longer needs: a CRDT may move
    /// what it adds out of it instead of copying (a received delta, decoded for this join).
    fn apply_owned_delta(&mut self, delta: Self::Delta)
    where
        Self::Delta: Sized,
    {
        self.apply_delta(&delta);
    }
}
