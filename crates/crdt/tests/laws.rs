//! Property tests: merge laws, delta convergence, N-replica convergence, and reference models
//! for OR-Set add-wins and MV-register siblings.

use std::collections::{BTreeMap, BTreeSet};

use chrysalis_crdt::{
    Crdt, DeltaCrdt, DeltaJoin, Encode, EpisodeMemory, GCounter, LWWRegister, MVRegister, ORSet,
    PNCounter, ReplicaId, SkillAccumulator,
};
use proptest::prelude::*;

const REPLICAS: u64 = 3;

/// One operation by one replica, or a merge of one replica's state into another's.
#[derive(Debug, Clone)]
enum Step {
    Op { replica: u64, arg: u8 },
    Merge { from: u64, into: u64 },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0..REPLICAS, any::<u8>()).prop_map(|(replica, arg)| Step::Op { replica, arg }),
            1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, into)| Step::Merge { from, into }),
        ],
        0..40,
    )
}

/// A CRDT under test: how a random byte becomes an operation.
trait Subject:
    DeltaCrdt<Delta: DeltaJoin + Clone + PartialEq + std::fmt::Debug> + Default + Encode
{
    fn op(&mut self, replica: ReplicaId, arg: u8, clock: &mut u64) -> Self::Delta;
}

impl Subject for GCounter {
    fn op(&mut self, replica: ReplicaId, arg: u8, _: &mut u64) -> GCounter {
        self.increment(replica, u64::from(arg % 7))
    }
}

impl Subject for PNCounter {
    fn op(&mut self, replica: ReplicaId, arg: u8, _: &mut u64) -> PNCounter {
        self.add(replica, i64::from(arg % 9) - 4)
    }
}

impl Subject for ORSet<u8> {
    fn op(&mut self, replica: ReplicaId, arg: u8, _: &mut u64) -> Self::Delta {
        let element = arg % 6;
        if arg >= 128
            && let Some(delta) = self.remove(replica, &element)
        {
            return delta;
        }
        self.add(replica, element)
    }
}

impl Subject for LWWRegister<u8> {
    fn op(&mut self, replica: ReplicaId, arg: u8, clock: &mut u64) -> Self {
        *clock += u64::from(arg % 3); // sometimes the same millisecond
        self.set(replica, arg, *clock)
    }
}

impl Subject for MVRegister<u8> {
    fn op(&mut self, replica: ReplicaId, arg: u8, _: &mut u64) -> Self {
        self.set(replica, arg)
    }
}

impl Subject for SkillAccumulator {
    fn op(&mut self, replica: ReplicaId, arg: u8, _: &mut u64) -> Self {
        let skill = ["rust", "search", "planning"][usize::from(arg % 3)];
        self.raise(replica, skill, f64::from(arg / 3) / 4.0)
            .unwrap()
    }
}

impl Subject for EpisodeMemory {
    fn op(&mut self, replica: ReplicaId, arg: u8, clock: &mut u64) -> Self {
        *clock += u64::from(arg % 2);
        let id = format!("e{}", arg % 20);
        let links = (!arg.is_multiple_of(20)).then(|| format!("e{}", arg % 20 - 1));
        self.record(replica, &id, &format!("episode {arg}"), links, *clock)
    }
}

/// Runs `steps` on `REPLICAS` replicas; returns the replicas and every delta made.
fn run<T: Subject>(steps: &[Step]) -> (Vec<T>, Vec<T::Delta>) {
    let mut replicas: Vec<T> = (0..REPLICAS).map(|_| T::default()).collect();
    let mut deltas = Vec::new();
    let mut clock = 1_700_000_000_000;
    for step in steps {
        match *step {
            Step::Op { replica, arg } => {
                deltas.push(replicas[replica as usize].op(ReplicaId(replica + 1), arg, &mut clock));
            }
            Step::Merge { from, into } => {
                let source = replicas[from as usize].clone();
                replicas[into as usize].merge(&source);
            }
        }
    }
    (replicas, deltas)
}

fn join_all<T: Crdt + Default>(states: &[T]) -> T {
    let mut out = T::default();
    for s in states {
        out.merge(s);
    }
    out
}

fn laws<T: Subject>(steps: &[Step], order: &[usize]) -> Result<(), TestCaseError> {
    let (replicas, deltas) = run::<T>(steps);
    let [a, b, c] = [&replicas[0], &replicas[1], &replicas[2]];
    let merged = |x: &T, y: &T| {
        let mut out = x.clone();
        out.merge(y);
        out
    };
    // Commutative, associative, idempotent.
    prop_assert_eq!(merged(a, b), merged(b, a));
    prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
    prop_assert_eq!(merged(a, a), a.clone());

    // Deltas in any order, each twice, give the join of the states.
    let full = join_all(&replicas);
    let mut from_deltas = T::default();
    for &i in order.iter().chain(order.iter().rev()) {
        if let Some(delta) = deltas.get(i % deltas.len().max(1)) {
            from_deltas.apply_delta(delta);
        }
    }
    for delta in &deltas {
        from_deltas.apply_delta(delta);
    }
    prop_assert_eq!(&from_deltas, &full);

    // delta_since brings a replica to the join, like a full-state merge.
    for (x, y) in [(a, b), (b, c), (c, a)] {
        let mut caught_up = y.clone();
        caught_up.apply_delta(&x.delta_since(&y.version_vector()));
        prop_assert_eq!(&caught_up, &merged(y, x));
    }
    // Deltas joined into one apply as each in turn, to any replica (one a delta_since).
    for (x, y) in [(a, b), (b, c), (c, a)] {
        let mut batch = deltas.clone();
        let at = order.first().map_or(0, |i| i % (batch.len() + 1));
        batch.insert(at, x.delta_since(&y.version_vector()));
        let mut each = y.clone();
        batch.iter().for_each(|d| each.apply_delta(d));
        let mut joined = batch[0].clone();
        batch[1..].iter().for_each(|d| joined.join_delta(d.clone()));
        let mut once = y.clone();
        once.apply_delta(&joined);
        prop_assert_eq!(&once, &each);
        // And in one pass, the same delta.
        let all = T::Delta::join_all(batch);
        prop_assert_eq!(all.as_ref(), Some(&joined));
    }
    // Nothing new: an empty delta.
    let mut same = full.clone();
    same.apply_delta(&full.delta_since(&full.version_vector()));
    prop_assert_eq!(&same, &full);

    // All replicas converge after exchanging states in a random order.
    let mut converged = replicas.clone();
    for &i in order {
        let from = converged[i % 3].clone();
        converged[(i / 3) % 3].merge(&from);
    }
    for i in 0..3 {
        for j in 0..3 {
            let from = converged[j].clone();
            converged[i].merge(&from);
        }
    }
    prop_assert!(converged.iter().all(|r| *r == full));

    // Encoding round-trips.
    prop_assert_eq!(T::from_bytes(&full.to_bytes()).unwrap(), full);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn gcounter_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<GCounter>(&steps, &order)?;
    }

    #[test]
    fn pncounter_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<PNCounter>(&steps, &order)?;
    }

    #[test]
    fn orset_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<ORSet<u8>>(&steps, &order)?;
    }

    #[test]
    fn lww_register_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<LWWRegister<u8>>(&steps, &order)?;
    }

    #[test]
    fn mv_register_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<MVRegister<u8>>(&steps, &order)?;
    }

    #[test]
    fn skill_accumulator_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<SkillAccumulator>(&steps, &order)?;
    }

    #[test]
    fn episode_memory_laws(steps in steps(), order in proptest::collection::vec(0usize..100, 0..30)) {
        laws::<EpisodeMemory>(&steps, &order)?;
    }

    /// Skill levels are the maximum ever raised; episode order respects links everywhere.
    #[test]
    fn experience_semantics(steps in steps()) {
        let (skills, _) = run::<SkillAccumulator>(&steps);
        let joined = join_all(&skills);
        for (i, skill) in ["rust", "search", "planning"].iter().enumerate() {
            let expected = steps.iter().filter_map(|s| match s {
                Step::Op { arg, .. } if usize::from(arg % 3) == i => Some(f64::from(arg / 3) / 4.0),
                _ => None,
            }).fold(0.0, f64::max);
            prop_assert_eq!(joined.level(skill), expected);
        }
        let (episodes, _) = run::<EpisodeMemory>(&steps);
        let joined = join_all(&episodes);
        let order = joined.ordered();
        prop_assert_eq!(order.len(), joined.len());
        let position: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        for id in &order {
            for link in &joined.get(id).unwrap().links {
                if let Some(p) = position.get(link.as_str()) {
                    prop_assert!(*p < position[id], "{} comes after its link {}", id, link);
                }
            }
        }
        let mut other_order = episodes.clone();
        other_order.reverse();
        let rejoined = join_all(&other_order);
        prop_assert_eq!(rejoined.ordered(), order, "same order on every replica");
    }

    /// The counters' values equal the sum of the operations once everything is merged.
    #[test]
    fn counter_values(steps in steps()) {
        let (replicas, _) = run::<PNCounter>(&steps);
        let expected: i128 = steps.iter().map(|s| match s {
            Step::Op { arg, .. } => i128::from(*arg % 9) - 4,
            Step::Merge { .. } => 0,
        }).sum();
        prop_assert_eq!(join_all(&replicas).value(), expected);
    }

    /// OR-Set against the textbook model: each add has a unique tag; a remove removes the tags
    /// it has observed; an element is present while one of its tags is not removed.
    #[test]
    fn orset_matches_reference_model(steps in steps()) {
        #[derive(Clone, Default)]
        struct Model { adds: BTreeSet<(u8, u64)>, removed: BTreeSet<(u8, u64)> }
        impl Model {
            fn present(&self) -> BTreeSet<u8> {
                self.adds.difference(&self.removed).map(|(e, _)| *e).collect()
            }
        }
        let mut sets: Vec<ORSet<u8>> = (0..REPLICAS).map(|_| ORSet::new()).collect();
        let mut models: Vec<Model> = (0..REPLICAS).map(|_| Model::default()).collect();
        for (tag, step) in steps.iter().enumerate() {
            match *step {
                Step::Op { replica, arg } => {
                    let (r, element) = (replica as usize, arg % 6);
                    if arg >= 128 && sets[r].contains(&element) {
                        sets[r].remove(ReplicaId(replica + 1), &element);
                        let observed: Vec<_> = models[r].adds.iter().filter(|(e, _)| *e == element).copied().collect();
                        models[r].removed.extend(observed);
                    } else {
                        sets[r].add(ReplicaId(replica + 1), element);
                        models[r].adds.insert((element, tag as u64));
                    }
                }
                Step::Merge { from, into } => {
                    let source = sets[from as usize].clone();
                    sets[into as usize].merge(&source);
                    let model = models[from as usize].clone();
                    models[into as usize].adds.extend(model.adds);
                    models[into as usize].removed.extend(model.removed);
                }
            }
            for r in 0..REPLICAS as usize {
                let actual: BTreeSet<u8> = sets[r].iter().copied().collect();
                prop_assert_eq!(actual, models[r].present(), "replica {} after step {}", r, tag);
            }
        }
    }

    /// MV-register against a model with explicit causal histories: the values are the writes
    /// not seen by any other write that the replica knows.
    #[test]
    fn mv_register_matches_reference_model(steps in steps()) {
        // A write: (id, value, the ids of the writes it had seen).
        #[derive(Clone, Default)]
        struct Model { writes: BTreeMap<u64, (u8, BTreeSet<u64>)> }
        impl Model {
            fn values(&self) -> BTreeSet<u8> {
                let seen: BTreeSet<u64> = self.writes.values().flat_map(|(_, s)| s.iter().copied()).collect();
                self.writes.iter().filter(|(id, _)| !seen.contains(id)).map(|(_, (v, _))| *v).collect()
            }
        }
        let mut registers: Vec<MVRegister<u8>> = (0..REPLICAS).map(|_| MVRegister::new()).collect();
        let mut models: Vec<Model> = (0..REPLICAS).map(|_| Model::default()).collect();
        for (id, step) in steps.iter().enumerate() {
            match *step {
                Step::Op { replica, arg } => {
                    let r = replica as usize;
                    registers[r].set(ReplicaId(replica + 1), arg);
                    let seen: BTreeSet<u64> = models[r].writes.keys().copied().collect();
                    models[r].writes.insert(id as u64, (arg, seen));
                }
                Step::Merge { from, into } => {
                    let source = registers[from as usize].clone();
                    registers[into as usize].merge(&source);
                    let model = models[from as usize].clone();
                    models[into as usize].writes.extend(model.writes);
                }
            }
            for r in 0..REPLICAS as usize {
                let actual: BTreeSet<u8> = registers[r].values().into_iter().copied().collect();
                prop_assert_eq!(actual, models[r].values(), "replica {} after step {}", r, id);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// An OR-Set catching up in parts of at most `per_part` elements ends where one whole
    /// `delta_since` ends, and every part grows the receiver.
    #[test]
    fn orset_catches_up_in_parts(steps in steps(), per_part in 1usize..4) {
        let (replicas, _) = run::<ORSet<u8>>(&steps);
        for (x, y) in [(0, 1), (1, 2), (2, 0)] {
            let (x, y) = (&replicas[x], &replicas[y]);
            let mut whole = y.clone();
            whole.apply_delta(&x.delta_since(&y.version_vector()));
            let mut parts = y.clone();
            for round in 0.. {
                prop_assert!(round <= 40, "no end after {} parts", round);
                let mut asked = 0;
                let (delta, complete) = x.delta_since_within(&parts.version_vector(), |_| {
                    asked += 1;
                    asked <= per_part
                });
                let before = parts.clone();
                parts.apply_delta(&delta);
                prop_assert!(complete || parts != before, "a part that changes nothing");
                if complete {
                    break;
                }
            }
            prop_assert_eq!(&parts, &whole);
        }
    }

    /// `removed_by` names exactly the elements applying the delta removes; a delta whose
    /// context is limited to what the receiver knows contiguously still brings every addition,
    /// and makes the receiver count as seen only the dots the delta carries.
    #[test]
    fn orset_removed_by_and_limit_context(steps in steps()) {
        let (replicas, _) = run::<ORSet<u8>>(&steps);
        for (x, y) in [(0, 1), (1, 2), (2, 0)] {
            let (x, y) = (&replicas[x], &replicas[y]);
            let delta = x.delta_since(&y.version_vector());
            let named: BTreeSet<u8> = y.removed_by(&delta).into_iter().map(|(e, _)| *e).collect();
            let mut after = y.clone();
            after.apply_delta(&delta);
            let gone: BTreeSet<u8> = y.iter().filter(|e| !after.contains(e)).copied().collect();
            prop_assert_eq!(&named, &gone);
            let mut limited = delta.clone();
            let known = y.version_vector();
            limited.limit_context(|r| known.get(r), &BTreeSet::new());
            let mut kept = y.clone();
            kept.apply_delta(&limited);
            let shown: BTreeSet<chrysalis_crdt::Dot> =
                delta.entries().flat_map(|(_, dots)| dots.iter().copied()).collect();
            // What the receiver counts as seen grows only by the dots the delta carries.
            for (r, c) in kept.version_vector().iter() {
                let top = shown.iter().filter(|d| d.replica == r).map(|d| d.counter).max().unwrap_or(0);
                prop_assert!(c <= known.get(r).max(top));
            }
            for d in kept.context().cloud() {
                prop_assert!(d.counter <= known.get(d.replica) || shown.contains(d) || y.context().contains(*d));
            }
            // Every addition still arrives.
            for (e, dots) in delta.entries() {
                if dots.iter().any(|d| !y.context().contains(*d)) {
                    prop_assert!(kept.contains(e), "an added element is missing");
                }
            }
        }
    }

    /// `replace` is the removals and the addition in one event: its delta, applied to the
    /// replica as it was, gives the replica as it is, and to any other replica what a merge
    /// gives.
    #[test]
    fn orset_replace_is_one_event(steps in steps(), element in any::<u8>()) {
        let (mut replicas, _) = run::<ORSet<u8>>(&steps);
        let before = replicas[0].clone();
        let removed: Vec<u8> = before.iter().copied().take(2).collect();
        let delta = replicas[0].replace(ReplicaId(0), &removed, element);
        let counter = |s: &ORSet<u8>| s.version_vector().get(ReplicaId(0));
        prop_assert_eq!(counter(&replicas[0]), counter(&before) + 1);
        let mut again = before.clone();
        again.apply_delta(&delta);
        prop_assert_eq!(&again, &replicas[0]);
        prop_assert!(replicas[0].contains(&element));
        for e in removed.iter().filter(|e| **e != element) {
            prop_assert!(!replicas[0].contains(e));
        }
        let mut merged = replicas[1].clone();
        merged.merge(&replicas[0]);
        let mut applied = replicas[1].clone();
        applied.merge(&before);
        applied.apply_delta(&delta);
        prop_assert_eq!(&applied, &merged);
    }
}

proptest! {
    /// `compare` agrees with the pointwise order, and merge is the least upper bound.
    #[test]
    fn version_vector_compare_and_merge(
        a in proptest::collection::btree_map(0u64..5, 1u64..6, 0..5),
        b in proptest::collection::btree_map(0u64..5, 1u64..6, 0..5),
    ) {
        use chrysalis_crdt::{Causality, VersionVector};
        let vv = |m: &BTreeMap<u64, u64>| m.iter().map(|(r, c)| (ReplicaId(*r), *c)).collect::<VersionVector>();
        let (x, y) = (vv(&a), vv(&b));
        let le = |p: &VersionVector, q: &VersionVector| (0..5).all(|r| p.get(ReplicaId(r)) <= q.get(ReplicaId(r)));
        let expected = match (le(&x, &y), le(&y, &x)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(x.compare(&y), expected);
        let mut joined = x.clone();
        joined.merge(&y);
        prop_assert!(le(&x, &joined) && le(&y, &joined));
        prop_assert!((0..5).all(|r| joined.get(ReplicaId(r)) == x.get(ReplicaId(r)).max(y.get(ReplicaId(r)))));
        prop_assert_eq!(VersionVector::from_bytes(&x.to_bytes()).unwrap(), x);
    }
}
