//! Grow-only and positive-negative counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Crdt, DeltaCrdt, ReplicaId, VersionVector, encoding::impl_encode};

/// A grow-only counter: each replica counts its own increments; the value is the sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

impl GCounter {
    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` for `replica`; returns the delta to ship.
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> GCounter {
        if n == 0 {
            return GCounter::new();
        }
        let count = self.counts.entry(replica).or_default();
        *count = count.saturating_add(n);
        GCounter {
            counts: BTreeMap::from([(replica, *count)]),
        }
    }

    /// The sum of every replica's count (saturating).
    pub fn value(&self) -> u64 {
        self.counts
            .values()
            .fold(0u64, |sum, c| sum.saturating_add(*c))
    }

    /// The count of one replica.
    pub fn count_of(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }
}

impl Crdt for GCounter {
    fn merge(&mut self, other: &Self) {
        for (replica, count) in &other.counts {
            if *count > 0 {
                let mine = self.counts.entry(*replica).or_default();
                *mine = (*mine).max(*count);
            }
        }
    }
}

impl DeltaCrdt for GCounter {
    type Delta = GCounter;

    fn version_vector(&self) -> VersionVector {
        self.counts.iter().map(|(r, c)| (*r, *c)).collect()
    }

    fn delta_since(&self, since: &VersionVector) -> GCounter {
        GCounter {
            counts: self
                .counts
                .iter()
                .filter(|(r, c)| **c > since.get(**r))
                .map(|(r, c)| (*r, *c))
                .collect(),
        }
    }

    fn apply_delta(&mut self, delta: &GCounter) {
        self.merge(delta);
    }
}

impl_encode!(GCounter, 0x01, "GCounter", |c| {
    if c.counts.values().any(|n| *n == 0) {
        Err("zero count entry".into())
    } else {
        Ok(())
    }
});

/// One replica's increments and decrements, with a version that grows with each of its writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PnEntry {
    version: u64,
    up: u64,
    down: u64,
}

/// A counter that goes up and down: per replica, the totals of its increments and decrements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    entries: BTreeMap<ReplicaId, PnEntry>,
}

impl PNCounter {
    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` (negative to decrement) for `replica`; returns the delta to ship.
    pub fn add(&mut self, replica: ReplicaId, n: i64) -> PNCounter {
        let entry = self.entries.entry(replica).or_default();
        entry.version = entry.version.saturating_add(1);
        if n >= 0 {
            entry.up = entry.up.saturating_add(n as u64);
        } else {
            entry.down = entry.down.saturating_add(n.unsigned_abs());
        }
        PNCounter {
            entries: BTreeMap::from([(replica, *entry)]),
        }
    }

    /// Increments minus decrements over every replica.
    pub fn value(&self) -> i128 {
        self.entries
            .values()
            .map(|e| i128::from(e.up) - i128::from(e.down))
            .sum()
    }
}

impl Crdt for PNCounter {
    fn merge(&mut self, other: &Self) {
        for (replica, theirs) in &other.entries {
            // A replica's own entry only grows: the later version has both totals at least as high.
            if theirs.version > self.entries.get(replica).map_or(0, |e| e.version) {
                self.entries.insert(*replica, *theirs);
            }
        }
    }
}

impl DeltaCrdt for PNCounter {
    type Delta = PNCounter;

    fn version_vector(&self) -> VersionVector {
        self.entries.iter().map(|(r, e)| (*r, e.version)).collect()
    }

    fn delta_since(&self, since: &VersionVector) -> PNCounter {
        PNCounter {
            entries: self
                .entries
                .iter()
                .filter(|(r, e)| e.version > since.get(**r))
                .map(|(r, e)| (*r, *e))
                .collect(),
        }
    }

    fn apply_delta(&mut self, delta: &PNCounter) {
        self.merge(delta);
    }
}

impl_encode!(PNCounter, 0x02, "PNCounter", |c| {
    if c.entries.values().any(|e| e.version == 0) {
        Err("entry with version 0".into())
    } else {
        Ok(())
    }
});
