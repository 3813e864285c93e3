//! Native merge throughput (Criterion); `bash scripts/bench.sh` copies the results into
//! docs/benchmarks.md. Criterion is a host-only dependency: on wasm32 this is an empty program.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;

    use chrysalis_crdt::{Crdt, DeltaCrdt, GCounter, ORSet, ReplicaId};
    use criterion::{BatchSize, Criterion, criterion_group};

    fn counters(c: &mut Criterion) {
        // Two counters that each know 8 replicas, half of them shared.
        let mut a = GCounter::new();
        let mut b = GCounter::new();
        for r in 0..8 {
            a.increment(ReplicaId(r), r + 1);
            b.increment(ReplicaId(r + 4), 2 * r + 1);
        }
        c.bench_function("gcounter_merge_8_replicas", |bench| {
            bench.iter_batched_ref(
                || a.clone(),
                |x| x.merge(black_box(&b)),
                BatchSize::SmallInput,
            )
        });
    }

    fn sets(c: &mut Criterion) {
        let mut a = ORSet::new();
        let mut b = ORSet::new();
        for k in 0..5000 {
            a.add(ReplicaId(1), format!("a-{k}"));
            b.add(ReplicaId(2), format!("b-{k}"));
        }
        c.bench_function("orset_merge_5k_into_5k", |bench| {
            bench.iter_batched_ref(
                || a.clone(),
                |x| x.merge(black_box(&b)),
                BatchSize::LargeInput,
            )
        });
        let mut writer = b.clone();
        let delta = writer.add(ReplicaId(2), "one more".to_string());
        let mut big = a.clone();
        big.merge(&b);
        c.bench_function("orset_apply_add_delta_to_10k", |bench| {
            bench.iter_batched_ref(
                || big.clone(),
                |x| x.apply_delta(black_box(&delta)),
                BatchSize::LargeInput,
            )
        });
    }

    criterion_group!(benches, counters, sets);
}
