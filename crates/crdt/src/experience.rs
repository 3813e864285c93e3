//! Experience CRDTs of an agent: skills that only grow, and episodes with causal links.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    Crdt, CrdtError, DeltaCrdt, Dot, Hlc, ReplicaId, VersionVector, encoding::impl_encode,
};

/// One skill: its level (only grows) and the version vector of the raise that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    /// The level, finite and non-negative.
    pub level: f64,
    /// What the raising replica had seen when it raised the level.
    pub clock: VersionVector,
}

impl Eq for Skill {}

/// Per-skill levels that only grow; concurrent raises keep the higher level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillAccumulator {
    skills: BTreeMap<String, Skill>,
    /// Raises seen per replica.
    seen: VersionVector,
}

impl SkillAccumulator {
    /// No skills.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises `skill` to `level` if that is higher than its level now; returns the delta
    /// (empty when nothing changed).
    pub fn raise(
        &mut self,
        replica: ReplicaId,
        skill: &str,
        level: f64,
    ) -> Result<SkillAccumulator, CrdtError> {
        if !level.is_finite() || level < 0.0 {
            // No number in the message: formatting floats would pull ~10 KB into the wasm module.
            return Err(CrdtError::BadValue(
                "a skill level must be finite and non-negative".into(),
            ));
        }
        if self.skills.get(skill).is_some_and(|s| s.level >= level) {
            return Ok(SkillAccumulator::new());
        }
        let dot = self.seen.increment(replica);
        let entry = Skill {
            level,
            clock: self.seen.clone(),
        };
        self.skills.insert(skill.to_owned(), entry.clone());
        let mut delta = SkillAccumulator::new();
        delta.skills.insert(skill.to_owned(), entry);
        delta.seen.observe(dot.replica, dot.counter);
        Ok(delta)
    }

    /// The level of `skill` (0 when never raised).
    pub fn level(&self, skill: &str) -> f64 {
        self.skills.get(skill).map_or(0.0, |s| s.level)
    }

    /// Every skill, by name.
    pub fn skills(&self) -> impl Iterator<Item = (&str, &Skill)> {
        self.skills.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Whether `mine` has events that `since` lacks (including superseded ones, whose effects are
/// gone but whose knowledge must still travel).
fn has_unseen(mine: &VersionVector, since: &VersionVector) -> bool {
    mine.iter()
        .any(|(replica, counter)| counter > since.get(replica))
}

/// The higher level wins; equal levels merge their clocks, so the result does not depend on order.
fn join_skill(mine: &mut Skill, theirs: &Skill) {
    if theirs.level > mine.level {
        *mine = theirs.clone();
    } else if theirs.level == mine.level {
        mine.clock.merge(&theirs.clock);
    }
}

impl Crdt for SkillAccumulator {
    fn merge(&mut self, other: &Self) {
        for (name, theirs) in &other.skills {
            match self.skills.get_mut(name) {
                Some(mine) => join_skill(mine, theirs),
                None => {
                    self.skills.insert(name.clone(), theirs.clone());
                }
            }
        }
        self.seen.merge(&other.seen);
    }
}

impl DeltaCrdt for SkillAccumulator {
    type Delta = SkillAccumulator;

    fn version_vector(&self) -> VersionVector {
        self.seen.clone()
    }

    fn delta_since(&self, since: &VersionVector) -> SkillAccumulator {
        let mut delta = SkillAccumulator::new();
        for (name, skill) in &self.skills {
            if skill.clock.iter().any(|(r, c)| c > since.get(r)) {
                delta.skills.insert(name.clone(), skill.clone());
            }
        }
        if has_unseen(&self.seen, since) {
            delta.seen = self.seen.clone();
        }
        delta
    }

    fn apply_delta(&mut self, delta: &SkillAccumulator) {
        self.merge(delta);
    }
}

impl_encode!(SkillAccumulator, 0x08, "SkillAccumulator", |value| {
    if value
        .skills
        .values()
        .any(|s| !s.level.is_finite() || s.level < 0.0)
    {
        return Err("a level that is not finite and non-negative".into());
    }
    Ok(())
});

/// An episode: something the agent lived through, linked to the episodes it follows from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// What happened.
    pub content: String,
    /// Ids of the episodes this one follows (causes, context).
    pub links: BTreeSet<String>,
    /// When it was recorded.
    pub at: Hlc,
    /// The event that recorded it.
    pub dot: Dot,
}

/// A grow-only set of episodes keyed by id; merging keeps every episode once, and
/// [`ordered`](Self::ordered) lists them so that every episode comes after those it links to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeMemory {
    episodes: BTreeMap<String, Episode>,
    seen: VersionVector,
    latest: Hlc,
}

impl EpisodeMemory {
    /// No episodes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an episode `id` at wall-clock `now_millis`; returns the delta. Recording an id
    /// twice keeps the first.
    pub fn record(
        &mut self,
        replica: ReplicaId,
        id: &str,
        content: &str,
        links: impl IntoIterator<Item = String>,
        now_millis: u64,
    ) -> EpisodeMemory {
        if self.episodes.contains_key(id) {
            return EpisodeMemory::new();
        }
        let at = self.latest.tick(replica, now_millis);
        self.latest = at;
        let dot = self.seen.increment(replica);
        let episode = Episode {
            content: content.to_owned(),
            links: links.into_iter().collect(),
            at,
            dot,
        };
        self.episodes.insert(id.to_owned(), episode.clone());
        let mut delta = EpisodeMemory::new();
        delta.episodes.insert(id.to_owned(), episode);
        delta.seen.observe(dot.replica, dot.counter);
        delta.latest = at;
        delta
    }

    /// The episode `id`.
    pub fn get(&self, id: &str) -> Option<&Episode> {
        self.episodes.get(id)
    }

    /// The number of episodes.
    pub fn len(&self) -> usize {
        self.episodes.len()
    }

    /// Whether there are no episodes.
    pub fn is_empty(&self) -> bool {
        self.episodes.is_empty()
    }

    /// Every episode id, each after the episodes it links to (links to unknown episodes are
    /// ignored), ties broken by timestamp then id: the same order on every replica.
    pub fn ordered(&self) -> Vec<&str> {
        let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
        let mut followers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, episode) in &self.episodes {
            let known: Vec<&str> = episode
                .links
                .iter()
                .map(String::as_str)
                .filter(|l| self.episodes.contains_key(*l) && *l != id)
                .collect();
            waiting.insert(id, known.len());
            for link in known {
                followers.entry(link).or_default().push(id);
            }
        }
        let key = |id: &str| (self.episodes[id].at, id.to_owned());
        let mut ready: BTreeSet<(Hlc, String)> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| key(id))
            .collect();
        let mut order = Vec::with_capacity(self.episodes.len());
        while let Some((_, id)) = ready.pop_first() {
            let id = self
                .episodes
                .get_key_value(id.as_str())
                .expect("known id")
                .0
                .as_str();
            order.push(id);
            for follower in followers.get(id).into_iter().flatten() {
                let count = waiting.get_mut(follower).expect("a follower is an episode");
                *count -= 1;
                if *count == 0 {
                    ready.insert(key(follower));
                }
            }
        }
        // Episodes on a cycle of links (only possible with forged data) come last, by key.
        let mut rest: Vec<&str> = waiting
            .iter()
            .filter(|(id, n)| **n > 0 && !order.contains(id))
            .map(|(id, _)| *id)
            .collect();
        rest.sort_by_key(|id| key(id));
        order.extend(rest);
        order
    }
}

impl Crdt for EpisodeMemory {
    fn merge(&mut self, other: &Self) {
        for (id, theirs) in &other.episodes {
            match self.episodes.get_mut(id) {
                // The same id recorded twice concurrently: keep the earlier record everywhere.
                Some(mine) if (theirs.at, theirs.dot) < (mine.at, mine.dot) => {
                    *mine = theirs.clone()
                }
                Some(_) => {}
                None => {
                    self.episodes.insert(id.clone(), theirs.clone());
                }
            }
        }
        self.seen.merge(&other.seen);
        self.latest = self.latest.max(other.latest);
    }
}

impl DeltaCrdt for EpisodeMemory {
    type Delta = EpisodeMemory;

    fn version_vector(&self) -> VersionVector {
        self.seen.clone()
    }

    fn delta_since(&self, since: &VersionVector) -> EpisodeMemory {
        let mut delta = EpisodeMemory::new();
        for (id, episode) in &self.episodes {
            if !since.contains(episode.dot) {
                delta.episodes.insert(id.clone(), episode.clone());
            }
        }
        if has_unseen(&self.seen, since) {
            delta.seen = self.seen.clone();
            delta.latest = self.latest;
        }
        delta
    }

    fn apply_delta(&mut self, delta: &EpisodeMemory) {
        self.merge(delta);
    }
}

impl_encode!(EpisodeMemory, 0x09, "EpisodeMemory", |value| {
    if value
        .episodes
        .values()
        .any(|e| !value.seen.contains(e.dot) || e.at > value.latest)
    {
        return Err("an episode outside the version vector or clock".into());
    }
    Ok(())
});
