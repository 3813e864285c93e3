//! What a [`SyncNode`](crate::SyncNode) replicates: any delta-state CRDT, behind one small trait.

use chrysalis_crdt::{DeltaCrdt, DeltaJoin, Encode, VersionVector};

/// A replicated document as the protocol sees it: a version vector to compare, deltas out as
/// bytes, deltas in as bytes. Every delta-state CRDT of `chrysalis-crdt` is one (blanket impl
/// below); the JS face implements it over the JS CRDT classes.
pub trait Document: std::any::Any {
    /// A summary of the events this replica has seen (what digests carry). A document that
    /// cannot say (a JS document whose method threw) is an error, never an empty version.
    fn version(&self) -> Result<VersionVector, String>;

    /// The encoded delta a replica that has seen `since` lacks, or `None` when it lacks nothing.
    fn delta_since(&self, since: &VersionVector) -> Option<Vec<u8>>;

    /// Decodes and joins a delta from a peer; returns whether the version grew. A delta that
    /// does not decode is an error that names what was wrong, and leaves the state unchanged.
    fn apply(&mut self, delta: &[u8]) -> Result<bool, String>;

    /// The encoded deltas of local changes made together, as fewer deltas with the same effect
    /// (one, for every CRDT of `chrysalis-crdt`), to send in one frame. The default keeps them.
    fn join_deltas(&self, deltas: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        deltas
    }
}

impl<T> Document for T
where
    T: DeltaCrdt + Encode + 'static,
    T::Delta: Encode + Default + PartialEq + DeltaJoin,
{
    fn version(&self) -> Result<VersionVector, String> {
        Ok(self.version_vector())
    }

    fn delta_since(&self, since: &VersionVector) -> Option<Vec<u8>> {
        let delta = DeltaCrdt::delta_since(self, since);
        (delta != T::Delta::default()).then(|| delta.to_bytes())
    }

    fn apply(&mut self, delta: &[u8]) -> Result<bool, String> {
        let delta = T::Delta::from_bytes(delta).map_err(|e| e.to_string())?;
        let before = self.version_vector();
        self.apply_owned_delta(delta);
        Ok(self.version_vector() != before)
    }

    fn join_deltas(&self, deltas: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if deltas.len() < 2 {
            return deltas;
        }
        let decoded: Result<Vec<T::Delta>, _> =
            deltas.iter().map(|d| T::Delta::from_bytes(d)).collect();
        match decoded.map(T::Delta::join_all) {
            Ok(Some(joined)) => vec![joined.to_bytes()],
            _ => deltas,
        }
    }
}
