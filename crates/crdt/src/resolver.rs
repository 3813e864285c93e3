//! Conflict detection and resolution, deterministic on every replica.

use std::collections::BTreeMap;

use crate::{Causality, Element, Hlc, MVRegister, VersionVector};

/// The kinds of conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConflictType {
    /// Concurrent claims with different values for the same key.
    DirectContradiction,
    /// Claims that are causally ordered: the later one supersedes the others.
    CausalOrdering,
    /// Values that a user-supplied check finds inconsistent with each other.
    SemanticInconsistency,
    /// A resolution strategy could not produce a value (e.g. a semantic merge gave up).
    MergeFailure,
}

/// How to settle a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResolutionStrategy {
    /// The claim with the latest timestamp.
    LastWriterWins,
    /// The claim with the earliest timestamp.
    FirstWriterWins,
    /// The most frequent value (ties: the smallest value).
    MajorityVote,
    /// A user-supplied function of all candidate values.
    SemanticMerge,
    /// Nothing automatic: the conflict waits in the review queue.
    ManualReview,
}

/// One replica's claim about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<T> {
    /// The claimed value.
    pub value: T,
    /// When it was claimed.
    pub at: Hlc,
    /// What the claimer had seen, when known (enables causal-ordering detection).
    pub clock: Option<VersionVector>,
}

/// A detected conflict over one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict<T> {
    /// The key (fact name, register name, …).
    pub key: String,
    /// What kind of conflict.
    pub kind: ConflictType,
    /// The claims, in canonical order (timestamp, then value).
    pub claims: Vec<Claim<T>>,
}

/// The outcome of resolving a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<T> {
    /// Settled to this value.
    Resolved(T),
    /// Queued for manual review (index in the queue).
    Queued(usize),
}

type MergeFn<T> = Box<dyn Fn(&[&T]) -> Option<T>>;
type CheckFn<T> = Box<dyn Fn(&T, &T) -> bool>;

/// Detects conflicts and resolves them with a strategy per conflict type.
pub struct ConflictResolver<T: Element> {
    strategies: BTreeMap<ConflictType, ResolutionStrategy>,
    semantic_merge: Option<MergeFn<T>>,
    consistent: Option<CheckFn<T>>,
    review_queue: Vec<Conflict<T>>,
}

impl<T: Element> Default for ConflictResolver<T> {
    fn default() -> Self {
        Self::new(ResolutionStrategy::LastWriterWins)
    }
}

impl<T: Element> ConflictResolver<T> {
    /// A resolver that uses `strategy` for every conflict type.
    pub fn new(strategy: ResolutionStrategy) -> Self {
        ConflictResolver {
            strategies: BTreeMap::new(),
            semantic_merge: None,
            consistent: None,
            review_queue: Vec::new(),
        }
        .with_default(strategy)
    }

    fn with_default(mut self, strategy: ResolutionStrategy) -> Self {
        for kind in [
            ConflictType::DirectContradiction,
            ConflictType::CausalOrdering,
            ConflictType::SemanticInconsistency,
            ConflictType::MergeFailure,
        ] {
            self.strategies.insert(kind, strategy);
        }
        self
    }

    /// Uses `strategy` for conflicts of `kind`.
    pub fn set_strategy(&mut self, kind: ConflictType, strategy: ResolutionStrategy) {
        self.strategies.insert(kind, strategy);
    }

    /// The function `SemanticMerge` calls with the candidate values (canonical order).
    pub fn set_semantic_merge(&mut self, merge: impl Fn(&[&T]) -> Option<T> + 'static) {
        self.semantic_merge = Some(Box::new(merge));
    }

    /// A check of whether two different values can both hold; when it says no, the conflict is
    /// a `SemanticInconsistency`. Without it, different values are a `DirectContradiction`.
    pub fn set_consistency_check(&mut self, consistent: impl Fn(&T, &T) -> bool + 'static) {
        self.consistent = Some(Box::new(consistent));
    }

    /// The conflicts waiting for manual review.
    pub fn review_queue(&self) -> &[Conflict<T>] {
        &self.review_queue
    }

    /// Takes a conflict off the review queue once a person has settled it.
    pub fn take_reviewed(&mut self, index: usize) -> Option<Conflict<T>> {
        (index < self.review_queue.len()).then(|| self.review_queue.remove(index))
    }

    /// Classifies the claims about `key`; `None` when they agree.
    pub fn detect(&self, key: &str, mut claims: Vec<Claim<T>>) -> Option<Conflict<T>> {
        claims.sort_by(|a, b| (a.at, &a.value).cmp(&(b.at, &b.value)));
        claims.dedup();
        let first = &claims.first()?.value;
        if claims.iter().all(|c| &c.value == first) {
            return None;
        }
        let ordered = claims.windows(2).all(|w| match (&w[0].clock, &w[1].clock) {
            (Some(a), Some(b)) => a.compare(b) == Causality::Before,
            _ => false,
        });
        let kind = if ordered {
            ConflictType::CausalOrdering
        } else if let Some(consistent) = &self.consistent
            && claims.iter().any(|a| {
                claims
                    .iter()
                    .any(|b| a.value != b.value && !consistent(&a.value, &b.value))
            })
        {
            ConflictType::SemanticInconsistency
        } else {
            ConflictType::DirectContradiction
        };
        Some(Conflict {
            key: key.to_owned(),
            kind,
            claims,
        })
    }

    /// The conflict among an MV-register's siblings (they are concurrent by construction).
    pub fn detect_in_register(&self, key: &str, register: &MVRegister<T>) -> Option<Conflict<T>> {
        let claims = register
            .siblings()
            .map(|(dot, value)| Claim {
                value: value.clone(),
                at: Hlc {
                    millis: 0,
                    logical: 0,
                    replica: dot.replica,
                },
                clock: None,
            })
            .collect();
        self.detect(key, claims)
    }

    /// Settles `conflict` with the strategy for its kind; returns the kind it was settled as
    /// and the outcome. A causal ordering always resolves to the latest claim; a failed semantic
    /// merge becomes a `MergeFailure`, settled with that kind's strategy (or queued).
    pub fn resolve(&mut self, conflict: Conflict<T>) -> (ConflictType, Resolution<T>) {
        let kind = conflict.kind;
        if kind == ConflictType::CausalOrdering {
            let latest = conflict
                .claims
                .last()
                .expect("a conflict has claims")
                .value
                .clone();
            return (kind, Resolution::Resolved(latest));
        }
        let strategy = self.strategies[&kind];
        match self.apply(strategy, &conflict) {
            Some(value) => (kind, Resolution::Resolved(value)),
            None if strategy == ResolutionStrategy::SemanticMerge
                && kind != ConflictType::MergeFailure =>
            {
                self.resolve(Conflict {
                    kind: ConflictType::MergeFailure,
                    ..conflict
                })
            }
            None => {
                self.review_queue.push(conflict);
                (kind, Resolution::Queued(self.review_queue.len() - 1))
            }
        }
    }

    fn apply(&self, strategy: ResolutionStrategy, conflict: &Conflict<T>) -> Option<T> {
        let claims = &conflict.claims;
        match strategy {
            ResolutionStrategy::LastWriterWins => claims.last().map(|c| c.value.clone()),
            ResolutionStrategy::FirstWriterWins => claims.first().map(|c| c.value.clone()),
            ResolutionStrategy::MajorityVote => {
                let mut votes: BTreeMap<&T, usize> = BTreeMap::new();
                for claim in claims {
                    *votes.entry(&claim.value).or_default() += 1;
                }
                let best = votes.values().copied().max()?;
                votes
                    .into_iter()
                    .find(|(_, n)| *n == best)
                    .map(|(v, _)| v.clone())
            }
            ResolutionStrategy::SemanticMerge => {
                let values: Vec<&T> = claims.iter().map(|c| &c.value).collect();
                self.semantic_merge
                    .as_ref()
                    .and_then(|merge| merge(&values))
            }
            ResolutionStrategy::ManualReview => None,
        }
    }
}
