//! Registers: last-writer-wins by hybrid logical clock, and multi-value (keeps concurrent writes).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    CausalContext, Crdt, CrdtError, DeltaCrdt, Dot, Element, Hlc, ReplicaId, VersionVector,
    encoding::{self, Encode},
};

/// A register whose latest write wins, ordered by [`Hlc`] (then replica id, then value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LWWRegister<T> {
    value: Option<(Hlc, T)>,
    /// Writes seen per replica, so anti-entropy can tell whether a peer is behind.
    writes: VersionVector,
}

impl<T: Element> Default for LWWRegister<T> {
    fn default() -> Self {
        LWWRegister {
            value: None,
            writes: VersionVector::new(),
        }
    }
}

impl<T: Element> LWWRegister<T> {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at wall-clock `now_millis`; the timestamp is after every one seen so
    /// far, even if the local clock is behind. Returns the delta.
    pub fn set(&mut self, replica: ReplicaId, value: T, now_millis: u64) -> LWWRegister<T> {
        let latest = self.value.as_ref().map(|(hlc, _)| *hlc).unwrap_or_default();
        let at = latest.tick(replica, now_millis);
        self.writes.increment(replica);
        self.value = Some((at, value));
        self.clone()
    }

    /// The current value.
    pub fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    /// The timestamp of the current value.
    pub fn timestamp(&self) -> Option<Hlc> {
        self.value.as_ref().map(|(hlc, _)| *hlc)
    }
}

impl<T: Element> Crdt for LWWRegister<T> {
    fn merge(&mut self, other: &Self) {
        let theirs_newer = match (&self.value, &other.value) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some((a, va)), Some((b, vb))) => (b, vb) > (a, va),
        };
        if theirs_newer {
            self.value = other.value.clone();
        }
        self.writes.merge(&other.writes);
    }
}

impl<T: Element> DeltaCrdt for LWWRegister<T> {
    type Delta = LWWRegister<T>;

    fn version_vector(&self) -> VersionVector {
        self.writes.clone()
    }

    fn delta_since(&self, since: &VersionVector) -> LWWRegister<T> {
        match self.writes.compare(since) {
            crate::Causality::Before | crate::Causality::Equal => LWWRegister::new(),
            _ => self.clone(),
        }
    }

    fn apply_delta(&mut self, delta: &LWWRegister<T>) {
        self.merge(delta);
    }
}

impl<T: Element> Encode for LWWRegister<T> {
    const TAG: u8 = 0x05;
    const NAME: &'static str = "LWWRegister";

    fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(Self::TAG, self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CrdtError> {
        let register: Self = encoding::decode(Self::TAG, Self::NAME, bytes)?;
        if let Some((hlc, _)) = &register.value
            && register.writes.get(hlc.replica) == 0
        {
            return Err(CrdtError::bad_format(
                Self::NAME,
                "a value whose writer made no writes",
            ));
        }
        Ok(register)
    }
}

/// A multi-value register: concurrent writes are all kept (siblings) until a later write,
/// which has seen them, replaces them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MVRegister<T: Ord> {
    values: BTreeMap<Dot, T>,
    ctx: CausalContext,
}

impl<T: Element> Default for MVRegister<T> {
    fn default() -> Self {
        MVRegister {
            values: BTreeMap::new(),
            ctx: CausalContext::default(),
        }
    }
}

impl<T: Element> MVRegister<T> {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value`, replacing every value seen so far; returns the delta.
    pub fn set(&mut self, replica: ReplicaId, value: T) -> MVRegister<T> {
        let dot = self.ctx.next_dot(replica);
        let mut delta_ctx = CausalContext::default();
        for old in std::mem::take(&mut self.values).into_keys() {
            delta_ctx.insert(old);
        }
        delta_ctx.insert(dot);
        self.values.insert(dot, value.clone());
        MVRegister {
            values: BTreeMap::from([(dot, value)]),
            ctx: delta_ctx,
        }
    }

    /// The current values: one, or several after concurrent writes (ordered by writer dot).
    pub fn values(&self) -> Vec<&T> {
        self.values.values().collect()
    }

    /// The current values with the dots that wrote them.
    pub fn siblings(&self) -> impl Iterator<Item = (Dot, &T)> {
        self.values.iter().map(|(d, v)| (*d, v))
    }
}

impl<T: Element> Crdt for MVRegister<T> {
    fn merge(&mut self, other: &Self) {
        self.values
            .retain(|dot, _| other.values.contains_key(dot) || !other.ctx.contains(*dot));
        for (dot, value) in &other.values {
            if !self.ctx.contains(*dot) {
                self.values.insert(*dot, value.clone());
            }
        }
        self.ctx.merge(&other.ctx);
    }
}

impl<T: Element> DeltaCrdt for MVRegister<T> {
    type Delta = MVRegister<T>;

    fn version_vector(&self) -> VersionVector {
        self.ctx.version_vector().clone()
    }

    /// Empty when `since` has seen everything here, else the whole (small) register.
    fn delta_since(&self, since: &VersionVector) -> MVRegister<T> {
        if self.ctx.covered_by(since) {
            MVRegister::new()
        } else {
            self.clone()
        }
    }

    fn apply_delta(&mut self, delta: &MVRegister<T>) {
        self.merge(delta);
    }
}

impl<T: Element> Encode for MVRegister<T> {
    const TAG: u8 = 0x06;
    const NAME: &'static str = "MVRegister";

    fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(Self::TAG, self)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CrdtError> {
        let register: Self = encoding::decode(Self::TAG, Self::NAME, bytes)?;
        let dots: BTreeSet<&Dot> = register.values.keys().collect();
        if !register.ctx.is_canonical() || dots.iter().any(|d| !register.ctx.contains(**d)) {
            return Err(CrdtError::bad_format(
                Self::NAME,
                "a value outside the causal context",
            ));
        }
        Ok(register)
    }
}
