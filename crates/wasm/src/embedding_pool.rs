//! The local model in a pool of workers: the main thread's driver of the sans-IO
//! [`WorkerPool`], and `EmbeddingWorker`, what each worker runs.
//!
//! The package's `embedding-workers.js` (the host) starts Web Workers or `worker_threads`,
//! posts what the driver gives it and hands back what they answer; `embedding-worker.js`
//! initialises this module in the worker from the compiled module it is sent first, then passes
//! every message to `EmbeddingWorker.handle` and posts the reply. Which worker runs which texts,
//! retries and replacements are the pool's decisions; the messages' shapes are defined here, on
//! both sides:
//!
//! - to a worker: `{ type: "load", model, tokenizer }` (each a `Blob`, which the worker's script
//!   reads into bytes: posting a `Blob` to every worker copies nothing on the main thread),
//!   `{ type: "embed", chunk, texts }`;
//! - from a worker: `{ type: "ready", dims }`, `{ type: "load-failed", code, message }`,
//!   `{ type: "done", chunk, vectors, tokens }` (`vectors` one flat `Float32Array`),
//!   `{ type: "failed", chunk, code, message }`; and `null` from the host when a worker died.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use chrysalis_embedding::{
    ChunkId, EmbeddingError, LocalModel, PoolAction, Readiness, WorkerId, WorkerPool,
};
use js_sys::{Array, Float32Array, Function, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};

use crate::error::{CodedError, js};
use crate::input::object;

/// Workers in a pool at most, whatever the machine's core count.
pub(crate) const MAX_WORKERS: usize = 8;
/// Workers in a pool by default: one per core, at most this many.
pub(crate) const DEFAULT_WORKERS: usize = 4;

/// A value set once and awaited once.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

type Shared<T> = Rc<RefCell<Slot<T>>>;

fn slot<T>() -> Shared<T> {
    Rc::new(RefCell::new(Slot {
        value: None,
        waker: None,
    }))
}

fn fill<T>(slot: &Shared<T>, value: T) {
    let mut slot = slot.borrow_mut();
    slot.value = Some(value);
    if let Some(waker) = slot.waker.take() {
        waker.wake();
    }
}

/// Resolves with the slot's value.
struct Wait<T>(Shared<T>);

impl<T> Future for Wait<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.borrow_mut();
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

type ChunkResult = Result<(Vec<Vec<f32>>, u64), EmbeddingError>;
/// What the host calls with a worker's id and its message (`null`: it died).
type Listener = Closure<dyn FnMut(f64, JsValue)>;

/// The main thread's side of a pool: carries out the pool's actions through the host and feeds
/// it what the workers answer.
pub(crate) struct PoolDriver {
    pool: RefCell<WorkerPool>,
    host: JsValue,
    /// The checked files, as `Blob`s made once: a worker's load posts them without a copy.
    model: JsValue,
    tokenizer: JsValue,
    workers: RefCell<BTreeMap<WorkerId, JsValue>>,
    /// Each live worker's wasm memory, in bytes, as it last reported.
    memory: RefCell<BTreeMap<WorkerId, f64>>,
    chunks: RefCell<BTreeMap<ChunkId, Shared<ChunkResult>>>,
    ready: RefCell<Vec<Shared<()>>>,
    listener: RefCell<Option<Listener>>,
}

fn call(host: &JsValue, method: &str, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(host, &method.into())?.dyn_into()?;
    function.apply(host, &args.iter().copied().collect::<Array>())
}

/// The machine's logical cores as the host reports them (1 if it cannot say).
pub(crate) fn host_cores(host: &JsValue) -> usize {
    call(host, "cores", &[])
        .ok()
        .and_then(|n| n.as_f64())
        .filter(|n| n.is_finite() && *n >= 1.0)
        .map_or(1, |n| n as usize)
}

impl PoolDriver {
    /// Starts `size` workers loading `model` and `tokenizer` (checked bytes) and waits until
    /// all have loaded it: the pool and its vectors' dimensions, or why not.
    pub(crate) async fn start(
        host: JsValue,
        size: usize,
        model: Uint8Array,
        tokenizer: Uint8Array,
    ) -> Result<(Rc<PoolDriver>, usize), EmbeddingError> {
        let blob = |bytes: &Uint8Array| {
            web_sys::Blob::new_with_u8_array_sequence(&Array::of1(bytes))
                .map(JsValue::from)
                .map_err(|error| {
                    EmbeddingError::Model(format!("could not hold the model files: {error:?}"))
                })
        };
        let driver = Rc::new(PoolDriver {
            pool: RefCell::new(WorkerPool::new(size)),
            host,
            model: blob(&model)?,
            tokenizer: blob(&tokenizer)?,
            workers: RefCell::new(BTreeMap::new()),
            memory: RefCell::new(BTreeMap::new()),
            chunks: RefCell::new(BTreeMap::new()),
            ready: RefCell::new(Vec::new()),
            listener: RefCell::new(None),
        });
        let weak: Weak<PoolDriver> = Rc::downgrade(&driver);
        let listener = Listener::new(move |worker: f64, message| {
            if let Some(driver) = weak.upgrade() {
                driver.receive(worker as WorkerId, &message);
            }
        });
        *driver.listener.borrow_mut() = Some(listener);
        loop {
            driver.pump();
            let readiness = driver.pool.borrow().readiness();
            match readiness {
                Readiness::Ready { dims } => return Ok((driver, dims)),
                Readiness::Failed(error) => return Err(error),
                Readiness::Starting => {
                    let waiting = slot();
                    driver.ready.borrow_mut().push(Rc::clone(&waiting));
                    Wait(waiting).await;
                }
            }
        }
    }

    /// Embeds `texts` in the next free worker.
    pub(crate) async fn encode(&self, texts: &[&str]) -> ChunkResult {
        let chunk = self
            .pool
            .borrow_mut()
            .submit(texts.iter().map(|t| (*t).to_owned()).collect());
        let result = slot();
        self.chunks.borrow_mut().insert(chunk, Rc::clone(&result));
        self.pump();
        Wait(result).await
    }

    /// Stops the workers; chunks under way fail with `ABORTED`.
    pub(crate) fn close(&self) {
        self.pool.borrow_mut().close();
        self.pump();
    }

    /// Workers replaced after dying.
    pub(crate) fn replaced(&self) -> u64 {
        self.pool.borrow().replaced()
    }

    /// The workers' wasm memory, in bytes, as they last reported it.
    pub(crate) fn memory_bytes(&self) -> f64 {
        self.memory.borrow().values().sum()
    }

    /// Workers in the pool.
    pub(crate) fn size(&self) -> usize {
        self.pool.borrow().size()
    }

    /// Carries out every action the pool has for the host.
    fn pump(&self) {
        loop {
            let action = self.pool.borrow_mut().poll();
            let Some(action) = action else { break };
            match action {
                PoolAction::Spawn { worker } => self.spawn(worker),
                PoolAction::Send {
                    worker,
                    chunk,
                    texts,
                } => {
                    let message = object(&[
                        ("type", "embed".into()),
                        ("chunk", (chunk as f64).into()),
                        (
                            "texts",
                            texts
                                .into_iter()
                                .map(JsValue::from)
                                .collect::<Array>()
                                .into(),
                        ),
                    ]);
                    self.post(worker, &message);
                }
                PoolAction::Terminate { worker } => {
                    self.memory.borrow_mut().remove(&worker);
                    if let Some(handle) = self.workers.borrow_mut().remove(&worker) {
                        let _ = call(&self.host, "terminate", &[&handle]);
                    }
                }
                PoolAction::Finished { chunk, result } => {
                    if let Some(waiting) = self.chunks.borrow_mut().remove(&chunk) {
                        fill(&waiting, result);
                    }
                }
            }
        }
        if !matches!(self.pool.borrow().readiness(), Readiness::Starting) {
            for waiting in self.ready.borrow_mut().drain(..) {
                fill(&waiting, ());
            }
        }
    }

    fn spawn(&self, worker: WorkerId) {
        let spawned = {
            let listener = self.listener.borrow();
            let Some(listener) = listener.as_ref() else {
                return;
            };
            call(
                &self.host,
                "spawn",
                &[
                    &(worker as f64).into(),
                    &wasm_bindgen::module(),
                    listener.as_ref(),
                ],
            )
        };
        match spawned {
            Ok(handle) => {
                self.workers.borrow_mut().insert(worker, handle);
                let load = object(&[
                    ("type", "load".into()),
                    ("model", self.model.clone()),
                    ("tokenizer", self.tokenizer.clone()),
                ]);
                self.post(worker, &load);
            }
            Err(error) => self.pool.borrow_mut().start_failed(
                worker,
                EmbeddingError::Model(format!("could not start a worker: {error:?}")),
            ),
        }
    }

    fn post(&self, worker: WorkerId, message: &JsValue) {
        let handle = self.workers.borrow().get(&worker).cloned();
        if let Some(handle) = handle
            && call(&self.host, "post", &[&handle, message]).is_err()
        {
            self.pool.borrow_mut().died(worker);
        }
    }

    /// A worker's message, or `null`: it died.
    fn receive(&self, worker: WorkerId, message: &JsValue) {
        let field = |name: &str| Reflect::get(message, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let chunk = field("chunk").as_f64().map(|c| c as ChunkId);
        let error = || worker_error(&field("code"), &field("message"));
        let kind = if message.is_object() {
            field("type").as_string()
        } else {
            None
        };
        if let Some(bytes) = field("memory").as_f64() {
            self.memory.borrow_mut().insert(worker, bytes);
        }
        // A worker that answered is idle until it is sent more (Node.js may exit meanwhile).
        if let Some(handle) = self.workers.borrow().get(&worker) {
            let _ = call(&self.host, "idle", &[handle]);
        }
        {
            let mut pool = self.pool.borrow_mut();
            match (kind.as_deref(), chunk) {
                (Some("ready"), _) => {
                    let dims = field("dims").as_f64().unwrap_or(0.0) as usize;
                    pool.started(worker, dims);
                }
                (Some("load-failed"), _) => pool.start_failed(worker, error()),
                (Some("done"), Some(chunk)) => {
                    let vectors = split(&field("vectors"), pool.dims().unwrap_or(0));
                    let tokens = field("tokens").as_f64().unwrap_or(0.0) as u64;
                    pool.completed(worker, chunk, vectors, tokens);
                }
                (Some("failed"), Some(chunk)) => pool.failed(worker, chunk, error()),
                // `null` from the host, or anything a worker would never send.
                _ => pool.died(worker),
            }
        }
        self.pump();
    }
}

impl Drop for PoolDriver {
    fn drop(&mut self) {
        self.close();
    }
}

/// A flat `Float32Array` as vectors of `dims` (nothing if it does not divide: the pool then
/// refuses the answer).
fn split(vectors: &JsValue, dims: usize) -> Vec<Vec<f32>> {
    let Some(flat) = vectors.dyn_ref::<Float32Array>() else {
        return Vec::new();
    };
    let flat = flat.to_vec();
    if dims == 0 || flat.len() % dims != 0 {
        return Vec::new();
    }
    flat.chunks_exact(dims).map(<[f32]>::to_vec).collect()
}

fn worker_error(code: &JsValue, message: &JsValue) -> EmbeddingError {
    let message = message
        .as_string()
        .unwrap_or_else(|| "a worker failed".into());
    match code.as_string().as_deref() {
        Some("TOKENIZER_ERROR") => EmbeddingError::Tokenizer(message),
        Some("BAD_INPUT") => EmbeddingError::BadInput(message),
        _ => EmbeddingError::Model(message),
    }
}

/// The size of this module's wasm memory, in bytes (it only grows: the peak).
fn memory_bytes() -> JsValue {
    Reflect::get(&wasm_bindgen::memory(), &"buffer".into())
        .and_then(|buffer| Reflect::get(&buffer, &"byteLength".into()))
        .unwrap_or_default()
}

/// What one worker of an `EmbeddingService` pool runs: it loads the model and embeds the
/// chunks it is sent. The package's `embedding-worker.js` creates it; applications do not.
#[wasm_bindgen]
pub struct EmbeddingWorker {
    model: Option<LocalModel>,
}

#[wasm_bindgen]
impl EmbeddingWorker {
    /// A worker with no model yet.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> EmbeddingWorker {
        EmbeddingWorker { model: None }
    }

    /// Answers one message of its pool with the reply to post (see the module's messages).
    pub fn handle(&mut self, message: JsValue) -> JsValue {
        let field = |name: &str| Reflect::get(&message, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let failure = |kind: &str, chunk: JsValue, error: CodedError| {
            let error = js(error);
            object(&[
                ("type", kind.into()),
                ("chunk", chunk),
                (
                    "code",
                    Reflect::get(&error, &"code".into()).unwrap_or_default(),
                ),
                (
                    "message",
                    Reflect::get(&error, &"message".into()).unwrap_or_default(),
                ),
            ])
        };
        match field("type").as_string().as_deref() {
            Some("load") => {
                let bytes = |name| field(name).dyn_into::<Uint8Array>().map(|b| b.to_vec());
                let loaded = match (bytes("model"), bytes("tokenizer")) {
                    (Ok(model), Ok(tokenizer)) => LocalModel::load(&model, &tokenizer),
                    _ => Err(EmbeddingError::BadInput(
                        "load needs model and tokenizer bytes".into(),
                    )),
                };
                match loaded {
                    Ok(model) => {
                        let dims = model.dims();
                        self.model = Some(model);
                        object(&[
                            ("type", "ready".into()),
                            ("dims", (dims as f64).into()),
                            ("memory", memory_bytes()),
                        ])
                    }
                    Err(error) => failure("load-failed", JsValue::UNDEFINED, error.into()),
                }
            }
            Some("embed") => {
                let chunk = field("chunk");
                let texts: Vec<String> = field("texts")
                    .dyn_into::<Array>()
                    .map(|a| a.iter().filter_map(|t| t.as_string()).collect())
                    .unwrap_or_default();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let embedded = match &self.model {
                    Some(model) => model.embed_batch(&refs),
                    None => Err(EmbeddingError::Model("no model loaded".into())),
                };
                match embedded {
                    Ok((vectors, tokens)) => {
                        let flat: Vec<f32> = vectors.concat();
                        object(&[
                            ("type", "done".into()),
                            ("chunk", chunk),
                            ("vectors", Float32Array::from(&flat[..]).into()),
                            ("tokens", (tokens as f64).into()),
                            ("memory", memory_bytes()),
                        ])
                    }
                    Err(error) => failure("failed", chunk, error.into()),
                }
            }
            other => failure(
                "failed",
                field("chunk"),
                CodedError::bad_argument(format!("unknown message {other:?}")),
            ),
        }
    }
}
