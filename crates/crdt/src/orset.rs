//! Add-wins observed-remove set with a dot-based causal context: removing an element forgets
//! its dots, and the causal context (a version vector plus a small cloud) remembers that they
//! were seen, so removes leave no per-element tombstones.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{CausalContext, Crdt, CrdtError, DeltaCrdt, Dot, ReplicaId, VersionVector, encoding};

/// An element type an [`ORSet`] can hold.
pub trait Element: Ord + Clone + std::fmt::Debug + Serialize + DeserializeOwned {}
impl<T: Ord + Clone + std::fmt::Debug + Serialize + DeserializeOwned> Element for T {}

/// An add-wins observed-remove set. A concurrent add and remove of the same element keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ORSet<T: Element> {
    /// Each present element with its live dots (usually one). An element is held once, shared
    /// with the dot index: a delta giving one element thousands of dots costs a pointer per dot,
    /// not a copy of the element.
    entries: BTreeMap<Arc<T>, BTreeSet<Dot>>,
    /// Live dot → element, for merges that touch only the dots they must.
    dots: BTreeMap<Dot, Arc<T>>,
    ctx: CausalContext,
}

/// What an [`ORSet`] ships: new elements, the dots of live elements the receiver already
/// knows (`keep`, dots only), and the sender's causal context. A receiver drops its live dots
/// that the sender has seen but no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ORSetDelta<T: Ord> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    keep: BTreeSet<Dot>,
    ctx: CausalContext,
}

impl<T: Ord> Default for ORSetDelta<T> {
    fn default() -> Self {
        ORSetDelta {
            entries: BTreeMap::new(),
            keep: BTreeSet::new(),
            ctx: CausalContext::default(),
        }
    }
}

impl<T: Element> Default for ORSet<T> {
    fn default() -> Self {
        ORSet {
            entries: BTreeMap::new(),
            dots: BTreeMap::new(),
            ctx: CausalContext::default(),
        }
    }
}

impl<T: Element> ORSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` (replacing its earlier dots with one new dot); returns the delta.
    pub fn add(&mut self, replica: ReplicaId, element: T) -> ORSetDelta<T> {
        let dot = self.ctx.next_dot(replica);
        let mut delta_ctx = CausalContext::default();
        delta_ctx.insert(dot);
        for old in self.entries.remove(&element).into_iter().flatten() {
            self.dots.remove(&old);
            delta_ctx.insert(old);
        }
        let shared = Arc::new(element.clone());
        self.entries
            .insert(Arc::clone(&shared), BTreeSet::from([dot]));
        self.dots.insert(dot, shared);
        ORSetDelta {
            entries: BTreeMap::from([(element, BTreeSet::from([dot]))]),
            keep: BTreeSet::new(),
            ctx: delta_ctx,
        }
    }

    /// Adds `element` and removes the `removed` elements in one event of `replica`; returns
    /// the delta (a receiver sees the removals only through the one new dot's context).
    pub fn replace(&mut self, replica: ReplicaId, removed: &[T], element: T) -> ORSetDelta<T> {
        let mut gone = CausalContext::default();
        for old in removed {
            for dot in self.entries.remove(old).into_iter().flatten() {
                self.dots.remove(&dot);
                gone.insert(dot);
            }
        }
        let mut delta = self.add(replica, element);
        delta.ctx.merge(&gone);
        delta
    }

    /// Removes `element` (the removal is an event of `replica`); returns the delta, or `None`
    /// when the element is absent.
    pub fn remove(&mut self, replica: ReplicaId, element: &T) -> Option<ORSetDelta<T>> {
        let old = self.entries.remove(element)?;
        let mut delta_ctx = CausalContext::default();
        for dot in old {
            self.dots.remove(&dot);
            delta_ctx.insert(dot);
        }
        delta_ctx.insert(self.ctx.next_dot(replica));
        Some(ORSetDelta {
            entries: BTreeMap::new(),
            keep: BTreeSet::new(),
            ctx: delta_ctx,
        })
    }

    /// Whether `element` is present.
    pub fn contains(&self, element: &T) -> bool {
        self.entries.contains_key(element)
    }

    /// The present elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.keys().map(|e| &**e)
    }

    /// The number of present elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The causal context (what this replica has seen).
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    fn full_delta(&self) -> ORSetDelta<T> {
        ORSetDelta {
            entries: self
                .entries
                .iter()
                .map(|(e, dots)| (T::clone(e), dots.clone()))
                .collect(),
            keep: BTreeSet::new(),
            ctx: self.ctx.clone(),
        }
    }

    fn drop_dot(&mut self, dot: Dot) {
        if let Some(element) = self.dots.remove(&dot) {
            let dots = self
                .entries
                .get_mut(&*element)
                .expect("the index mirrors the entries");
            dots.remove(&dot);
            if dots.is_empty() {
                self.entries.remove(&*element);
            }
        }
    }
}

impl<T: Element> Crdt for ORSet<T> {
    fn merge(&mut self, other: &Self) {
        // The other state's own dot index answers "does it hold this dot" without a copy.
        let entries = other
            .entries
            .iter()
            .map(|(e, d)| (Incoming::Shared(e), Cow::Borrowed(d)));
        self.join(entries, |dot| other.dots.contains_key(dot), &other.ctx);
    }
}

impl<T: Element> DeltaCrdt for ORSet<T> {
    type Delta = ORSetDelta<T>;

    fn version_vector(&self) -> VersionVector {
        self.ctx.version_vector().clone()
    }

    /// Empty when `since` has seen every event here; otherwise the elements `since` lacks,
    /// the dots of the others (to keep) and the whole causal context.
    fn delta_since(&self, since: &VersionVector) -> ORSetDelta<T> {
        self.delta_since_within(since, |_| true).0
    }

    fn apply_delta(&mut self, delta: &ORSetDelta<T>) {
        let held = delta.held();
        let entries = delta
            .entries
            .iter()
            .map(|(e, d)| (Incoming::Borrowed(e), Cow::Borrowed(d)));
        self.join(entries, |dot| held.contains(dot), &delta.ctx);
    }

    fn apply_owned_delta(&mut self, delta: ORSetDelta<T>) {
        let held = delta.held();
        let ORSetDelta { entries, ctx, .. } = delta;
        let entries = entries
            .into_iter()
            .map(|(e, d)| (Incoming::Owned(e), Cow::Owned(d)));
        self.join(entries, |dot| held.contains(dot), &ctx);
    }
}

/// An element as a join receives it: from a delta it may take (`Owned`) or only read
/// (`Borrowed`), or another state's shared copy. Copied only when new here and borrowed.
enum Incoming<'a, T> {
    Owned(T),
    Borrowed(&'a T),
    Shared(&'a Arc<T>),
}

impl<T: Clone> Incoming<'_, T> {
    fn get(&self) -> &T {
        match self {
            Incoming::Owned(e) => e,
            Incoming::Borrowed(e) => e,
            Incoming::Shared(e) => e,
        }
    }

    fn into_shared(self) -> Arc<T> {
        match self {
            Incoming::Owned(e) => Arc::new(e),
            Incoming::Borrowed(e) => Arc::new(e.clone()),
            Incoming::Shared(e) => Arc::clone(e),
        }
    }
}

impl<T: Element> ORSet<T> {
    /// A part of [`delta_since`](DeltaCrdt::delta_since) that a receiver can apply on its own,
    /// for states too big for one message: the elements `since` lacks, oldest events first,
    /// while `fits(element)` says yes (it is asked once per element, and the first refusal ends
    /// the part). The part's causal context stops below the first element left out of each
    /// replica, so nothing left out looks removed; the receiver's version vector grows to there
    /// and a later `delta_since` of it sends the rest. Also returns whether the part is all of
    /// it. `fits` that always says yes gives exactly `delta_since`.
    pub fn delta_since_within(
        &self,
        since: &VersionVector,
        mut fits: impl FnMut(&T) -> bool,
    ) -> (ORSetDelta<T>, bool) {
        if self.ctx.covered_by(since) {
            return (ORSetDelta::default(), true);
        }
        // The live events `since` lacks, oldest first across replicas.
        let mut fresh: Vec<Dot> = self
            .dots
            .keys()
            .filter(|d| !since.contains(**d))
            .copied()
            .collect();
        fresh.sort_by_key(|d| (d.counter, d.replica));
        let mut taken: BTreeSet<&T> = BTreeSet::new();
        let mut complete = true;
        for dot in &fresh {
            let element: &T = &self.dots[dot];
            if taken.contains(element) {
                continue;
            }
            if !fits(element) {
                complete = false;
                break;
            }
            taken.insert(element);
        }
        // Per replica, the events known up to just below its first fresh event left out.
        let mut bound: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        for dot in fresh.iter().filter(|d| !taken.contains(&*self.dots[d])) {
            bound
                .entry(dot.replica)
                .or_insert(since.get(dot.replica).max(dot.counter - 1));
        }
        let cap = |r: ReplicaId| bound.get(&r).copied().unwrap_or(u64::MAX);
        let within = |d: &Dot| d.counter <= cap(d.replica);
        let mut ctx = if complete {
            self.ctx.clone()
        } else {
            self.ctx.capped(cap)
        };
        let mut delta = ORSetDelta::default();
        for (element, dots) in &self.entries {
            if taken.contains(&**element) {
                // An element taken for one event carries all of them.
                dots.iter().for_each(|d| ctx.insert(*d));
                delta.entries.insert(T::clone(element), dots.clone());
            } else {
                delta
                    .keep
                    .extend(dots.iter().filter(|d| within(d)).copied());
            }
        }
        delta.ctx = ctx;
        (delta, complete)
    }

    /// The live elements that applying `delta` would remove here (each element every dot of
    /// which the sender has seen and does not hold, and that the delta does not add again),
    /// with their dots: what a receiver that
    /// must authorise removals looks at before it applies a delta.
    pub fn removed_by<'a>(&'a self, delta: &ORSetDelta<T>) -> Vec<(&'a T, &'a BTreeSet<Dot>)> {
        let held = delta.held();
        let dropped = |d: &Dot| delta.ctx.contains(*d) && !held.contains(d);
        let mut touched: BTreeSet<&T> = BTreeSet::new();
        for (replica, counter) in delta.ctx.version_vector().iter() {
            let range = Dot {
                replica,
                counter: 1,
            }..=Dot { replica, counter };
            touched.extend(self.dots.range(range).map(|(_, e)| &**e));
        }
        touched.extend(
            delta
                .ctx
                .cloud()
                .iter()
                .filter_map(|d| self.dots.get(d).map(|e| &**e)),
        );
        touched
            .into_iter()
            .filter(|e| !delta.entries.contains_key(*e))
            .filter_map(|e| self.entries.get_key_value(e))
            .filter(|(_, dots)| dots.iter().all(dropped))
            .map(|(e, dots)| (&**e, dots))
            .collect()
    }

    /// Joins what a sender holds (`entries`, plus dots `holds` says it keeps) and has seen (`ctx`).
    fn join<'a>(
        &mut self,
        entries: impl Iterator<Item = (Incoming<'a, T>, Cow<'a, BTreeSet<Dot>>)>,
        holds: impl Fn(&Dot) -> bool,
        ctx: &CausalContext,
    ) where
        T: 'a,
    {
        // 1. Drop live dots the sender has seen but does not hold.
        let mut dropped = Vec::new();
        for (replica, counter) in ctx.version_vector().iter() {
            let range = Dot {
                replica,
                counter: 1,
            }..=Dot { replica, counter };
            dropped.extend(
                self.dots
                    .range(range)
                    .map(|(d, _)| *d)
                    .filter(|d| !holds(d)),
            );
        }
        dropped.extend(
            ctx.cloud()
                .iter()
                .filter(|d| self.dots.contains_key(d) && !holds(d)),
        );
        for dot in dropped {
            self.drop_dot(dot);
        }
        // 2. Take the sender's live dots this replica has not seen: an element new here is
        //    held once (moved in when the caller gives it up), shared by its dots.
        for (element, dots) in entries {
            let new: Vec<Dot> = dots
                .iter()
                .filter(|d| !self.ctx.contains(**d))
                .copied()
                .collect();
            if new.is_empty() {
                continue;
            }
            let element = match self.entries.get_key_value(element.get()) {
                Some((held, _)) => Arc::clone(held),
                None => element.into_shared(),
            };
            for dot in &new {
                self.dots.insert(*dot, Arc::clone(&element));
            }
            self.entries.entry(element).or_default().extend(new);
        }
        // 3. Learn what the sender has seen.
        self.ctx.merge(ctx);
    }
}

/// The dot-kernel join: a dot stays live when both deltas hold it, or one holds it and the other
/// has not seen it; the contexts unite. So a delta that removes an element joined after the one
/// that added it leaves neither the element nor its dot, only the context that removes it.
impl<T: Element> crate::DeltaJoin for ORSetDelta<T> {
    fn join_delta(&mut self, other: Self) {
        let mine = self.held();
        let theirs = other.held();
        let (my_ctx, their_ctx) = (&self.ctx, &other.ctx);
        let keep_mine = |d: &Dot| theirs.contains(d) || !their_ctx.contains(*d);
        let keep_theirs = |d: &Dot| mine.contains(d) || !my_ctx.contains(*d);
        let mut entries = std::mem::take(&mut self.entries);
        entries.values_mut().for_each(|dots| dots.retain(keep_mine));
        for (element, dots) in other.entries {
            entries
                .entry(element)
                .or_default()
                .extend(dots.into_iter().filter(keep_theirs));
        }
        entries.retain(|_, dots| !dots.is_empty());
        let in_entries: BTreeSet<Dot> = entries.values().flatten().copied().collect();
        let mut keep = std::mem::take(&mut self.keep);
        keep.retain(keep_mine);
        keep.extend(other.keep.into_iter().filter(keep_theirs));
        keep.retain(|d| !in_entries.contains(d));
        self.entries = entries;
        self.keep = keep;
        self.ctx.merge(&other.ctx);
    }

    /// The pairwise rule over all of them at once: a dot stays when every delta that has seen
    /// it holds it (a delta holds only dots it has seen, so: as many hold it as have seen it).
    fn join_all(deltas: Vec<Self>) -> Option<Self> {
        if deltas.len() < 2 {
            return deltas.into_iter().next();
        }
        let mut holders: BTreeMap<Dot, usize> = BTreeMap::new();
        for delta in &deltas {
            for dot in delta.entries.values().flatten().chain(&delta.keep) {
                *holders.entry(*dot).or_default() += 1;
            }
        }
        let ctx = CausalContext::union(deltas.iter().map(|d| &d.ctx));
        let seen = CausalContext::count_seen(deltas.iter().map(|d| &d.ctx), holders.keys());
        let live = |dot: &Dot| seen.get(dot) == holders.get(dot);
        let mut entries: BTreeMap<T, BTreeSet<Dot>> = BTreeMap::new();
        let mut keep = BTreeSet::new();
        for delta in deltas {
            for (element, dots) in delta.entries {
                let dots: Vec<Dot> = dots.into_iter().filter(live).collect();
                if !dots.is_empty() {
                    entries.entry(element).or_default().extend(dots);
                }
            }
            keep.extend(delta.keep.into_iter().filter(live));
        }
        for dot in entries.values().flatten() {
            keep.remove(dot);
        }
        Some(ORSetDelta { entries, keep, ctx })
    }
}

impl<T: Element> ORSetDelta<T> {
    /// Whether merging this delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.keep.is_empty() && self.ctx == CausalContext::default()
    }

    /// The elements this delta adds (for a receiver to check before it joins them).
    pub fn elements(&self) -> impl Iterator<Item = &T> {
        self.entries.keys()
    }

    /// A delta from its parts, checked like a decoded one (canonical context, every dot in it,
    /// no dot twice): for tests and fuzzers that play a hostile peer.
    pub fn from_parts(
        entries: BTreeMap<T, BTreeSet<Dot>>,
        keep: BTreeSet<Dot>,
        ctx: CausalContext,
    ) -> Result<Self, CrdtError> {
        let delta = ORSetDelta { entries, keep, ctx };
        delta
            .check(false)
            .map_err(|reason| CrdtError::bad_format("ORSetDelta", reason))?;
        Ok(delta)
    }

    /// The elements this delta adds, each with its dots.
    pub fn entries(&self) -> impl Iterator<Item = (&T, &BTreeSet<Dot>)> {
        self.entries.iter()
    }

    /// What the sender has seen.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// The dots the sender holds (its elements' and the ones it keeps).
    fn held(&self) -> BTreeSet<Dot> {
        self.entries
            .values()
            .flatten()
            .chain(&self.keep)
            .copied()
            .collect()
    }

    /// Believes less of what the sender claims to have seen: the events of each replica up to
    /// `cap(replica)`, the dots the delta itself carries, and the dots of `also` it claims. A
    /// receiver that cannot check a context claim (it is not signed) limits it, and so removes
    /// less and counts less seen.
    pub fn limit_context(&mut self, cap: impl Fn(ReplicaId) -> u64, also: &BTreeSet<Dot>) {
        let mut ctx = self.ctx.capped(cap);
        for dot in self.held() {
            ctx.insert(dot);
        }
        for dot in also.iter().filter(|d| self.ctx.contains(**d)) {
            ctx.insert(*dot);
        }
        self.ctx = ctx;
    }

    fn check(&self, is_state: bool) -> Result<(), String> {
        if !self.ctx.is_canonical() {
            return Err("causal context is not canonical".into());
        }
        if is_state && !self.keep.is_empty() {
            return Err("a state with keep dots".into());
        }
        if self.entries.values().any(BTreeSet::is_empty) {
            return Err("element without dots".into());
        }
        let mut seen = BTreeSet::new();
        for dot in self.entries.values().flatten().chain(&self.keep) {
            if !self.ctx.contains(*dot) {
                return Err("a live dot outside the causal context".into());
            }
            if !seen.insert(*dot) {
                return Err("a dot held twice".into());
            }
        }
        Ok(())
    }
}

/// The wire form of an OR-Set state or delta: every replica id once in a sorted table, and each
/// dot as (table index, counter), so a 64-bit id costs a byte per dot instead of ten.
#[derive(Serialize, Deserialize)]
struct Wire<T> {
    replicas: Vec<ReplicaId>,
    entries: Vec<(T, Vec<(u32, u64)>)>,
    keep: Vec<(u32, u64)>,
    compact: Vec<(u32, u64)>,
    cloud: Vec<(u32, u64)>,
}

impl<T: Element> Wire<T> {
    fn from_delta(delta: &ORSetDelta<T>) -> Self {
        let mut table: BTreeSet<ReplicaId> =
            delta.ctx.version_vector().iter().map(|(r, _)| r).collect();
        table.extend(delta.ctx.cloud().iter().map(|d| d.replica));
        table.extend(delta.keep.iter().map(|d| d.replica));
        table.extend(delta.entries.values().flatten().map(|d| d.replica));
        let replicas: Vec<ReplicaId> = table.into_iter().collect();
        let index = |r: ReplicaId| {
            replicas
                .binary_search(&r)
                .expect("every replica is in the table") as u32
        };
        let dot = |d: &Dot| (index(d.replica), d.counter);
        Wire {
            entries: delta
                .entries
                .iter()
                .map(|(e, dots)| (e.clone(), dots.iter().map(dot).collect()))
                .collect(),
            keep: delta.keep.iter().map(dot).collect(),
            compact: delta
                .ctx
                .version_vector()
                .iter()
                .map(|(r, c)| (index(r), c))
                .collect(),
            cloud: delta.ctx.cloud().iter().map(dot).collect(),
            replicas,
        }
    }

    fn into_delta(self) -> Result<ORSetDelta<T>, String> {
        if !self.replicas.windows(2).all(|w| w[0] < w[1]) {
            return Err("replica table is not sorted and unique".into());
        }
        let replicas = &self.replicas;
        let dot = |(i, counter): (u32, u64)| -> Result<Dot, String> {
            let replica = *replicas
                .get(i as usize)
                .ok_or_else(|| format!("replica index {i} outside the table"))?;
            if counter == 0 {
                return Err("a dot with counter 0".into());
            }
            Ok(Dot { replica, counter })
        };
        let mut entries = BTreeMap::new();
        for (element, dots) in self.entries {
            let dots = dots
                .into_iter()
                .map(dot)
                .collect::<Result<BTreeSet<_>, _>>()?;
            if entries.insert(element, dots).is_some() {
                return Err("an element listed twice".into());
            }
        }
        let keep = self
            .keep
            .into_iter()
            .map(dot)
            .collect::<Result<BTreeSet<_>, _>>()?;
        let mut compact = VersionVector::new();
        for (i, counter) in self.compact {
            let d = dot((i, counter))?;
            if compact.get(d.replica) != 0 {
                return Err("a replica twice in the context".into());
            }
            compact.observe(d.replica, d.counter);
        }
        let cloud = self
            .cloud
            .into_iter()
            .map(dot)
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(ORSetDelta {
            entries,
            keep,
            ctx: CausalContext::from_parts(compact, cloud),
        })
    }
}

fn decode_delta<T: Element>(
    tag: u8,
    what: &'static str,
    bytes: &[u8],
    is_state: bool,
) -> Result<ORSetDelta<T>, CrdtError> {
    let wire: Wire<T> = encoding::decode(tag, what, bytes)?;
    let delta = wire
        .into_delta()
        .map_err(|reason| CrdtError::bad_format(what, reason))?;
    delta
        .check(is_state)
        .map_err(|reason| CrdtError::bad_format(what, reason))?;
    Ok(delta)
}

impl<T: Element> encoding::Encode for ORSetDelta<T> {
    const TAG: u8 = 0x04;
    const NAME: &'static str = "ORSetDelta";

    fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(Self::TAG, &Wire::from_delta(self))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CrdtError> {
        decode_delta(Self::TAG, Self::NAME, bytes, false)
    }
}

impl<T: Element> encoding::Encode for ORSet<T> {
    const TAG: u8 = 0x03;
    const NAME: &'static str = "ORSet";

    fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(Self::TAG, &Wire::from_delta(&self.full_delta()))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CrdtError> {
        let state = decode_delta(Self::TAG, Self::NAME, bytes, true)?;
        let mut set = ORSet::new();
        set.apply_owned_delta(state);
        Ok(set)
    }
}
