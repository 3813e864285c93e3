//! Replica ids, dots, version vectors, causal contexts and hybrid logical clocks.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet},
};

use serde::{Deserialize, Serialize};

/// A replica (agent, tab, device). Any 64-bit value unique among the replicas of a document.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ReplicaId(pub u64);

impl ReplicaId {
    /// A replica id derived from a name (the first 8 bytes of its BLAKE3 hash).
    pub fn from_name(name: &str) -> Self {
        let hash = blake3::hash(name.as_bytes());
        ReplicaId(u64::from_le_bytes(
            hash.as_bytes()[..8].try_into().expect("8 bytes"),
        ))
    }
}

/// One event: the `counter`-th event of `replica` (counters start at 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that made the event.
    pub replica: ReplicaId,
    /// Its sequence number at that replica.
    pub counter: u64,
}

/// How two version vectors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// Every event of the left is in the right, and the right has more.
    Before,
    /// Every event of the right is in the left, and the left has more.
    After,
    /// The same events.
    Equal,
    /// Each has events the other lacks.
    Concurrent,
}

/// A version vector: for each replica, how many of its events are known (all of 1..=n).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    entries: BTreeMap<ReplicaId, u64>,
}

impl VersionVector {
    /// The empty vector (knows nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events of `replica` are known.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.entries.get(&replica).copied().unwrap_or(0)
    }

    /// Records that events 1..=`counter` of `replica` are known (never lowers).
    pub fn observe(&mut self, replica: ReplicaId, counter: u64) {
        if counter > 0 {
            let entry = self.entries.entry(replica).or_default();
            *entry = (*entry).max(counter);
        }
    }

    /// The next event of `replica`, recorded as known.
    pub fn increment(&mut self, replica: ReplicaId) -> Dot {
        let entry = self.entries.entry(replica).or_default();
        // 2^64 events of one replica cannot happen; a forged state saturates instead of wrapping.
        *entry = entry.saturating_add(1);
        Dot {
            replica,
            counter: *entry,
        }
    }

    /// Whether `dot` is known.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.replica)
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (&replica, &counter) in &other.entries {
            self.observe(replica, counter);
        }
    }

    /// How this vector relates to `other`.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut less = false;
        let mut greater = false;
        for replica in self.entries.keys().chain(other.entries.keys()) {
            match self.get(*replica).cmp(&other.get(*replica)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// `(replica, counter)` pairs in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.entries.iter().map(|(r, c)| (*r, *c))
    }

    /// The number of replicas with known events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no event is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(ReplicaId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (replica, counter) in iter {
            vv.observe(replica, counter);
        }
        vv
    }
}

/// A causal context: a version vector (`compact`) plus the known events that are not
/// contiguous with it (`cloud`). Joining contexts and compacting keeps it small: it never holds
/// per-element tombstones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    compact: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// A context from its two parts, as decoded (callers check [`is_canonical`](Self::is_canonical)).
    pub(crate) fn from_parts(compact: VersionVector, cloud: BTreeSet<Dot>) -> Self {
        CausalContext { compact, cloud }
    }

    /// Whether `dot` is known.
    pub fn contains(&self, dot: Dot) -> bool {
        self.compact.contains(dot) || self.cloud.contains(&dot)
    }

    /// The next event of `replica` (assumes this replica's own events are contiguous).
    pub fn next_dot(&mut self, replica: ReplicaId) -> Dot {
        self.compact.increment(replica)
    }

    /// Records `dot` as known.
    pub fn insert(&mut self, dot: Dot) {
        if !self.compact.contains(dot) {
            self.cloud.insert(dot);
            self.compact_cloud();
        }
    }

    /// Union with `other`.
    pub fn merge(&mut self, other: &CausalContext) {
        self.compact.merge(&other.compact);
        self.cloud.extend(other.cloud.iter().copied());
        self.compact_cloud();
    }

    /// The union of `contexts`, compacted once (merging them one by one compacts each time).
    pub(crate) fn union<'a>(
        contexts: impl IntoIterator<Item = &'a CausalContext>,
    ) -> CausalContext {
        let mut union = CausalContext::default();
        for ctx in contexts {
            union.compact.merge(&ctx.compact);
            union.cloud.extend(ctx.cloud.iter().copied());
        }
        union.compact_cloud();
        union
    }

    /// For each of `dots`, how many of `contexts` contain it (dots none contains are left out).
    pub(crate) fn count_seen<'a>(
        contexts: impl IntoIterator<Item = &'a CausalContext>,
        dots: impl IntoIterator<Item = &'a Dot>,
    ) -> BTreeMap<Dot, usize> {
        // Each replica's compact counters, sorted: the contexts whose vector covers a dot are
        // those at or above its counter. Cloud dots a vector covers are not counted twice.
        let mut compacts: BTreeMap<ReplicaId, Vec<u64>> = BTreeMap::new();
        let mut clouds: BTreeMap<Dot, usize> = BTreeMap::new();
        for ctx in contexts {
            for (replica, counter) in ctx.compact.iter() {
                compacts.entry(replica).or_default().push(counter);
            }
            for dot in ctx.cloud.iter().filter(|d| !ctx.compact.contains(**d)) {
                *clouds.entry(*dot).or_default() += 1;
            }
        }
        compacts
            .values_mut()
            .for_each(|counters| counters.sort_unstable());
        let mut seen = BTreeMap::new();
        for dot in dots {
            let by_vector = compacts.get(&dot.replica).map_or(0, |counters| {
                counters.len() - counters.partition_point(|c| *c < dot.counter)
            });
            let count = by_vector + clouds.get(dot).copied().unwrap_or(0);
            if count > 0 {
                seen.insert(*dot, count);
            }
        }
        seen
    }

    /// Moves cloud dots that extend the compact vector into it, and drops covered ones.
    fn compact_cloud(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let known = self.compact.get(dot.replica);
            if Some(dot.counter) == known.checked_add(1) {
                self.compact.observe(dot.replica, dot.counter);
            } else if dot.counter > known {
                self.cloud.insert(dot);
            }
        }
        // A dot that became contiguous may make later cloud dots contiguous too.
        if self
            .cloud
            .iter()
            .any(|d| Some(d.counter) == self.compact.get(d.replica).checked_add(1))
        {
            self.compact_cloud();
        }
    }

    /// The events known up to `cap(replica)` of each replica.
    pub(crate) fn capped(&self, cap: impl Fn(ReplicaId) -> u64) -> CausalContext {
        let compact = self
            .compact
            .iter()
            .map(|(r, c)| (r, c.min(cap(r))))
            .filter(|(_, c)| *c > 0)
            .collect();
        let cloud = self
            .cloud
            .iter()
            .filter(|d| d.counter <= cap(d.replica))
            .copied()
            .collect();
        CausalContext { compact, cloud }
    }

    /// The highest event of `replica` known (0 for none).
    pub fn max(&self, replica: ReplicaId) -> u64 {
        let cloud = self
            .cloud
            .range(
                Dot {
                    replica,
                    counter: 0,
                }..=Dot {
                    replica,
                    counter: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |d| d.counter);
        self.compact.get(replica).max(cloud)
    }

    /// The contiguous part, as a version vector.
    pub fn version_vector(&self) -> &VersionVector {
        &self.compact
    }

    /// The non-contiguous known events.
    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    /// Whether every event of `self` is in `vv`.
    pub fn covered_by(&self, vv: &VersionVector) -> bool {
        self.compact.iter().all(|(r, c)| vv.get(r) >= c)
            && self.cloud.iter().all(|d| vv.contains(*d))
    }

    /// Checks invariants after decoding: no cloud dot is covered by the compact part.
    pub(crate) fn is_canonical(&self) -> bool {
        self.cloud
            .iter()
            .all(|d| d.counter > self.compact.get(d.replica).saturating_add(1))
            && self.compact.entries.values().all(|c| *c > 0)
    }
}

/// A hybrid logical clock timestamp: physical milliseconds, a logical counter for events in the
/// same millisecond, and the replica as the final tie-break, so every write has a total order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (the largest seen, local or remote).
    pub millis: u64,
    /// Events within the same millisecond.
    pub logical: u32,
    /// The writer.
    pub replica: ReplicaId,
}

impl Hlc {
    /// The timestamp of a new local event at `replica`, after `self` (the latest known) at
    /// wall-clock time `now_millis`.
    pub fn tick(&self, replica: ReplicaId, now_millis: u64) -> Hlc {
        if now_millis > self.millis {
            Hlc {
                millis: now_millis,
                logical: 0,
                replica,
            }
        } else {
            Hlc {
                millis: self.millis,
                logical: self.logical.saturating_add(1),
                replica,
            }
        }
    }
}

crate::encoding::impl_encode!(VersionVector, 0x0a, "VersionVector", |vv| {
    if vv.entries.values().any(|c| *c == 0) {
        Err("zero entry".into())
    } else {
        Ok(())
    }
});
