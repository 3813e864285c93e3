//! `WorkerPool`: which worker runs which chunk of texts, without I/O.
//!
//! The local model can run in a pool of workers (Web Workers in a page, `worker_threads` in
//! Node.js) so that embedding never blocks the caller's thread. The pool decides; its host
//! moves bytes: it starts and stops workers, posts chunks to them and reports what they answer
//! or that one died, and carries out the [`PoolAction`]s that [`WorkerPool::poll`] returns.
//! A worker runs one chunk at a time; a chunk whose worker died is run once more on another; a
//! worker that dies is replaced. A worker that fails or dies while loading the model fails the
//! pool: the model will not load in another one either.

use std::collections::{BTreeMap, VecDeque};

use crate::EmbeddingError;

/// A worker, unique over the pool's life (a replacement gets a new id, so a late message of a
/// dead worker is never taken for its replacement's).
pub type WorkerId = u64;
/// A chunk of texts submitted to the pool.
pub type ChunkId = u64;

/// How many times a chunk is run at most: once, and once more if its worker died.
pub const MAX_RUNS: u32 = 2;

/// What the host must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolAction {
    /// Start a worker and load the model in it; report [`WorkerPool::started`] or
    /// [`WorkerPool::start_failed`].
    Spawn {
        /// The new worker.
        worker: WorkerId,
    },
    /// Post `texts` to `worker`; report [`WorkerPool::completed`] or [`WorkerPool::failed`].
    Send {
        /// An idle, started worker.
        worker: WorkerId,
        /// The chunk.
        chunk: ChunkId,
        /// Its texts.
        texts: Vec<String>,
    },
    /// Stop `worker` (it died, or the pool failed or closed).
    Terminate {
        /// The worker.
        worker: WorkerId,
    },
    /// A chunk is done: its vectors (in order) and the tokens they took, or why not.
    Finished {
        /// The chunk.
        chunk: ChunkId,
        /// Its result.
        result: Result<(Vec<Vec<f32>>, u64), EmbeddingError>,
    },
}

/// Whether the pool can take chunks.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// Some workers are still loading the model.
    Starting,
    /// Every worker has loaded the model (with vectors of `dims` dimensions).
    Ready {
        /// Dimensions of the model's vectors.
        dims: usize,
    },
    /// A worker could not load the model, or the pool was closed.
    Failed(EmbeddingError),
}

#[derive(Debug)]
enum Worker {
    Starting,
    Idle,
    Busy(Chunk),
}

#[derive(Debug)]
struct Chunk {
    id: ChunkId,
    texts: Vec<String>,
    runs: u32,
}

/// The pool's state: its workers, the chunks waiting for one, and the actions for its host.
#[derive(Debug)]
pub struct WorkerPool {
    workers: BTreeMap<WorkerId, Worker>,
    queue: VecDeque<Chunk>,
    actions: VecDeque<PoolAction>,
    next_worker: WorkerId,
    next_chunk: ChunkId,
    dims: Option<usize>,
    failure: Option<EmbeddingError>,
    replaced: u64,
}

impl WorkerPool {
    /// A pool of `size` workers (at least one), all to be spawned.
    pub fn new(size: usize) -> Self {
        let mut pool = WorkerPool {
            workers: BTreeMap::new(),
            queue: VecDeque::new(),
            actions: VecDeque::new(),
            next_worker: 0,
            next_chunk: 0,
            dims: None,
            failure: None,
            replaced: 0,
        };
        for _ in 0..size.max(1) {
            pool.spawn();
        }
        pool
    }

    /// The next action for the host, if any.
    pub fn poll(&mut self) -> Option<PoolAction> {
        self.actions.pop_front()
    }

    /// Whether the pool can take chunks.
    pub fn readiness(&self) -> Readiness {
        match (&self.failure, self.dims) {
            (Some(error), _) => Readiness::Failed(error.clone()),
            (None, Some(dims))
                if self
                    .workers
                    .values()
                    .all(|w| !matches!(w, Worker::Starting)) =>
            {
                Readiness::Ready { dims }
            }
            _ => Readiness::Starting,
        }
    }

    /// Dimensions of the model's vectors, once a worker has loaded it.
    pub fn dims(&self) -> Option<usize> {
        self.dims
    }

    /// Workers in the pool (started or starting).
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Workers replaced after dying.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Queues `texts` as one chunk for the next idle worker.
    pub fn submit(&mut self, texts: Vec<String>) -> ChunkId {
        let id = self.next_chunk;
        self.next_chunk += 1;
        match &self.failure {
            Some(error) => self.actions.push_back(PoolAction::Finished {
                chunk: id,
                result: Err(error.clone()),
            }),
            None => {
                self.queue.push_back(Chunk { id, texts, runs: 0 });
                self.dispatch();
            }
        }
        id
    }

    /// `worker` loaded the model; its vectors have `dims` dimensions.
    pub fn started(&mut self, worker: WorkerId, dims: usize) {
        let Some(state @ Worker::Starting) = self.workers.get_mut(&worker) else {
            return;
        };
        if self.dims.is_some_and(|d| d != dims) {
            return self.fail(EmbeddingError::Model(format!(
                "workers disagree on the model's dimensions: {dims} and {}",
                self.dims.unwrap_or(0)
            )));
        }
        *state = Worker::Idle;
        self.dims = Some(dims);
        self.dispatch();
    }

    /// `worker` could not load the model: the pool fails with `error`.
    pub fn start_failed(&mut self, worker: WorkerId, error: EmbeddingError) {
        if matches!(self.workers.get(&worker), Some(Worker::Starting)) {
            self.fail(error);
        }
    }

    /// `worker` embedded `chunk`: `vectors` in order, and the tokens they took.
    pub fn completed(
        &mut self,
        worker: WorkerId,
        chunk: ChunkId,
        vectors: Vec<Vec<f32>>,
        tokens: u64,
    ) {
        let Some(done) = self.take_running(worker, chunk) else {
            return;
        };
        let dims = self.dims.unwrap_or(0);
        let result = if vectors.len() != done.texts.len() || vectors.iter().any(|v| v.len() != dims)
        {
            Err(EmbeddingError::Model(format!(
                "a worker answered {} vectors for {} texts",
                vectors.len(),
                done.texts.len()
            )))
        } else {
            Ok((vectors, tokens))
        };
        self.finish(done.id, result);
    }

    /// `worker` could not embed `chunk` (the model or tokenizer refused it): a second run would
    /// fail the same way.
    pub fn failed(&mut self, worker: WorkerId, chunk: ChunkId, error: EmbeddingError) {
        if let Some(done) = self.take_running(worker, chunk) {
            self.finish(done.id, Err(error));
        }
    }

    /// `worker` died (crashed, ran out of memory, was terminated): it is replaced, and its
    /// chunk runs once more on another worker if it has run only once.
    pub fn died(&mut self, worker: WorkerId) {
        let Some(state) = self.workers.remove(&worker) else {
            return;
        };
        self.actions.push_back(PoolAction::Terminate { worker });
        match state {
            Worker::Starting => {
                return self.fail(EmbeddingError::Model(
                    "a worker died while loading the model".into(),
                ));
            }
            Worker::Busy(chunk) if chunk.runs >= MAX_RUNS => self.finish(
                chunk.id,
                Err(EmbeddingError::Model(format!(
                    "workers died twice on the same {} texts",
                    chunk.texts.len()
                ))),
            ),
            Worker::Busy(chunk) => self.queue.push_front(chunk),
            Worker::Idle => {}
        }
        if self.failure.is_none() {
            self.replaced += 1;
            self.spawn();
        }
    }

    /// Stops every worker; chunks not finished fail with `Aborted`.
    pub fn close(&mut self) {
        self.fail(EmbeddingError::Aborted);
    }

    fn spawn(&mut self) {
        let worker = self.next_worker;
        self.next_worker += 1;
        self.workers.insert(worker, Worker::Starting);
        self.actions.push_back(PoolAction::Spawn { worker });
    }

    fn take_running(&mut self, worker: WorkerId, chunk: ChunkId) -> Option<Chunk> {
        let state = self.workers.get_mut(&worker)?;
        if !matches!(state, Worker::Busy(running) if running.id == chunk) {
            return None;
        }
        match std::mem::replace(state, Worker::Idle) {
            Worker::Busy(running) => Some(running),
            _ => None,
        }
    }

    fn finish(&mut self, chunk: ChunkId, result: Result<(Vec<Vec<f32>>, u64), EmbeddingError>) {
        self.actions
            .push_back(PoolAction::Finished { chunk, result });
        self.dispatch();
    }

    /// Gives queued chunks to idle workers, oldest first.
    fn dispatch(&mut self) {
        for (&worker, state) in self.workers.iter_mut() {
            if !matches!(state, Worker::Idle) {
                continue;
            }
            let Some(mut chunk) = self.queue.pop_front() else {
                return;
            };
            chunk.runs += 1;
            self.actions.push_back(PoolAction::Send {
                worker,
                chunk: chunk.id,
                texts: chunk.texts.clone(),
            });
            *state = Worker::Busy(chunk);
        }
    }

    fn fail(&mut self, error: EmbeddingError) {
        if self.failure.is_some() {
            return;
        }
        self.failure = Some(error.clone());
        for (worker, state) in std::mem::take(&mut self.workers) {
            self.actions.push_back(PoolAction::Terminate { worker });
            if let Worker::Busy(chunk) = state {
                self.queue.push_back(chunk);
            }
        }
        let mut failed: Vec<Chunk> = self.queue.drain(..).collect();
        failed.sort_by_key(|c| c.id);
        for chunk in failed {
            self.actions.push_back(PoolAction::Finished {
                chunk: chunk.id,
                result: Err(error.clone()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(pool: &mut WorkerPool) -> Vec<PoolAction> {
        std::iter::from_fn(|| pool.poll()).collect()
    }

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("text {i}")).collect()
    }

    #[test]
    fn chunks_wait_for_started_workers_and_go_one_per_worker() {
        let mut pool = WorkerPool::new(2);
        assert_eq!(
            drain(&mut pool),
            [
                PoolAction::Spawn { worker: 0 },
                PoolAction::Spawn { worker: 1 }
            ]
        );
        let (a, b, c) = (
            pool.submit(texts(2)),
            pool.submit(texts(1)),
            pool.submit(texts(3)),
        );
        assert!(drain(&mut pool).is_empty());
        pool.started(1, 4);
        assert_eq!(pool.readiness(), Readiness::Starting);
        pool.started(0, 4);
        assert_eq!(pool.readiness(), Readiness::Ready { dims: 4 });
        let sent = drain(&mut pool);
        assert_eq!(
            sent,
            [
                PoolAction::Send {
                    worker: 1,
                    chunk: a,
                    texts: texts(2)
                },
                PoolAction::Send {
                    worker: 0,
                    chunk: b,
                    texts: texts(1)
                },
            ]
        );
        pool.completed(0, b, vec![vec![0.0; 4]], 3);
        assert_eq!(
            drain(&mut pool),
            [
                PoolAction::Finished {
                    chunk: b,
                    result: Ok((vec![vec![0.0; 4]], 3))
                },
                PoolAction::Send {
                    worker: 0,
                    chunk: c,
                    texts: texts(3)
                },
            ]
        );
        // A late or foreign answer changes nothing.
        pool.completed(0, b, vec![vec![0.0; 4]], 3);
        pool.completed(7, c, vec![], 0);
        assert!(drain(&mut pool).is_empty());
    }

    #[test]
    fn a_dead_workers_chunk_runs_once_more_then_fails() {
        let mut pool = WorkerPool::new(1);
        drain(&mut pool);
        pool.started(0, 2);
        let chunk = pool.submit(texts(1));
        drain(&mut pool);
        pool.died(0);
        assert_eq!(
            drain(&mut pool),
            [
                PoolAction::Terminate { worker: 0 },
                PoolAction::Spawn { worker: 1 }
            ]
        );
        pool.started(1, 2);
        assert_eq!(
            drain(&mut pool),
            [PoolAction::Send {
                worker: 1,
                chunk,
                texts: texts(1)
            }]
        );
        pool.died(1);
        let actions = drain(&mut pool);
        assert!(matches!(
            &actions[..],
            [
                PoolAction::Terminate { worker: 1 },
                PoolAction::Finished { chunk: c, result: Err(EmbeddingError::Model(_)) },
                PoolAction::Spawn { worker: 2 },
            ] if *c == chunk
        ));
        assert_eq!(pool.replaced(), 2);
    }

    #[test]
    fn a_worker_that_cannot_load_the_model_fails_the_pool_and_its_chunks() {
        let mut pool = WorkerPool::new(2);
        drain(&mut pool);
        pool.started(0, 2);
        let chunk = pool.submit(texts(1));
        let waiting = pool.submit(texts(1));
        drain(&mut pool);
        pool.start_failed(1, EmbeddingError::Model("bad bytes".into()));
        let error = Err(EmbeddingError::Model("bad bytes".into()));
        assert_eq!(
            drain(&mut pool),
            [
                PoolAction::Terminate { worker: 0 },
                PoolAction::Terminate { worker: 1 },
                PoolAction::Finished {
                    chunk,
                    result: error.clone()
                },
                PoolAction::Finished {
                    chunk: waiting,
                    result: error.clone()
                },
            ]
        );
        assert!(matches!(pool.readiness(), Readiness::Failed(_)));
        let later = pool.submit(texts(1));
        assert_eq!(
            drain(&mut pool),
            [PoolAction::Finished {
                chunk: later,
                result: error
            }]
        );
    }

    #[test]
    fn a_short_answer_is_an_error_not_a_misaligned_batch() {
        let mut pool = WorkerPool::new(1);
        drain(&mut pool);
        pool.started(0, 2);
        let chunk = pool.submit(texts(2));
        drain(&mut pool);
        pool.completed(0, chunk, vec![vec![1.0, 0.0]], 1);
        assert!(matches!(
            &drain(&mut pool)[..],
            [PoolAction::Finished {
                result: Err(EmbeddingError::Model(_)),
                ..
            }]
        ));
    }

    /// What a simulated host knows of the pool's workers and chunks.
    #[derive(Default)]
    struct Host {
        starting: Vec<WorkerId>,
        running: BTreeMap<WorkerId, (ChunkId, usize)>,
        finished: BTreeMap<ChunkId, bool>,
        runs: BTreeMap<ChunkId, u32>,
    }

    impl Host {
        /// Carries out every action; checks that no worker gets two chunks, that a chunk
        /// finishes once, and fails only after its last run.
        fn carry_out(&mut self, pool: &mut WorkerPool, seed: u64) {
            while let Some(action) = pool.poll() {
                match action {
                    PoolAction::Spawn { worker } => self.starting.push(worker),
                    PoolAction::Send {
                        worker,
                        chunk,
                        texts,
                    } => {
                        assert!(!self.running.contains_key(&worker), "seed {seed}");
                        *self.runs.entry(chunk).or_default() += 1;
                        self.running.insert(worker, (chunk, texts.len()));
                    }
                    PoolAction::Terminate { worker } => {
                        self.running.remove(&worker);
                        self.starting.retain(|w| *w != worker);
                    }
                    PoolAction::Finished { chunk, result } => {
                        let first = self.finished.insert(chunk, result.is_ok()).is_none();
                        assert!(first, "seed {seed}");
                        assert!(
                            result.is_ok() || self.runs[&chunk] == MAX_RUNS,
                            "seed {seed}"
                        );
                    }
                }
            }
        }

        /// `worker` answers its chunk.
        fn answer(&mut self, pool: &mut WorkerPool, worker: WorkerId) {
            let (chunk, texts) = self.running.remove(&worker).unwrap();
            pool.completed(worker, chunk, vec![vec![0.5; 3]; texts], 1);
        }
    }

    /// Seeded runs with workers dying and answering in any order: every chunk finishes exactly
    /// once, with its own vectors or an error after two runs; no worker holds two chunks; the
    /// pool keeps its size.
    #[test]
    fn seeded_pools_with_dying_workers_finish_every_chunk_once() {
        for seed in 1..=2_000u64 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut random = move |n: u64| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % n
            };
            let size = 1 + random(4) as usize;
            let mut pool = WorkerPool::new(size);
            let mut host = Host::default();
            let mut submitted = 0;
            for step in 0..200 {
                if step < 60 && random(3) == 0 {
                    pool.submit(texts(1 + random(3) as usize));
                    submitted += 1;
                }
                host.carry_out(&mut pool, seed);
                assert_eq!(pool.size(), size, "seed {seed}");
                match random(6) {
                    1 | 2 if !host.running.is_empty() => {
                        let pick = random(host.running.len() as u64) as usize;
                        let worker = *host.running.keys().nth(pick).unwrap();
                        host.answer(&mut pool, worker);
                    }
                    3 if !host.running.is_empty() && random(4) == 0 => {
                        let worker = *host.running.keys().next().unwrap();
                        pool.died(worker);
                    }
                    _ if !host.starting.is_empty() => {
                        let pick = random(host.starting.len() as u64) as usize;
                        let worker = host.starting.remove(pick);
                        pool.started(worker, 3);
                    }
                    _ => {}
                }
            }
            // Calm: every worker starts and answers until nothing is left.
            loop {
                host.carry_out(&mut pool, seed);
                if let Some(worker) = host.starting.pop() {
                    pool.started(worker, 3);
                } else if let Some(&worker) = host.running.keys().next() {
                    host.answer(&mut pool, worker);
                } else {
                    break;
                }
            }
            assert_eq!(host.finished.len(), submitted, "seed {seed}");
            assert!(host.runs.values().all(|&r| r <= MAX_RUNS), "seed {seed}");
        }
    }
}
