//! `EmbeddingService`: the on-demand module `chrysalis_embedding` (tract, the tokenizer, and the
//! remote providers). Remote requests go through the page's `SecurityContext.authorizedFetch`,
//! so API keys stay in the core module's wasm memory.

use std::rc::Rc;

use chrysalis_crypto::{HashAlgorithm, Hasher};
use chrysalis_embedding::{
    self as embedding, EmbeddingError, HttpRequest, HttpResponse, LocalModel, Provider, RemoteApi,
    RemoteConfig, RetryPolicy, ServiceConfig, TransportError,
};
use js_sys::{Array, Float32Array, Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::{AbortSignal, Response};

use crate::{
    embedding_pool::{DEFAULT_WORKERS, MAX_WORKERS, PoolDriver, host_cores},
    error::{CodedError, JsResult, js},
    input::{hex, object, option, or_undefined, string_option, usize_option},
};

#[wasm_bindgen(module = "/js/model-files.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = fetchModelFile)]
    async fn fetch_model_file(
        url: &str,
        cache_name: &JsValue,
        file: &str,
        preallocate_at_most: u32,
        max_bytes: u32,
        on_progress: &JsValue,
        signal: &JsValue,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = evictModelFile)]
    async fn evict_model_file(url: &str, cache_name: &str) -> Result<JsValue, JsValue>;
}

#[wasm_bindgen(typescript_custom_section)]
const EMBEDDING_TS: &str = r#"
/** The in-page model: all-MiniLM-L6-v2 (or another BERT-style ONNX encoder) run by tract. */
export interface LocalProviderOptions {
  kind: "local";
  /** Name in telemetry (default "local"). */
  name?: string;
  /** Model id the vectors carry (default "all-MiniLM-L6-v2"). */
  model?: string;
  /** The ONNX file, as bytes, or a URL with its pinned SHA-256 (hex). */
  modelBytes?: Uint8Array;
  modelUrl?: string;
  modelSha256?: string;
  /** The HF tokenizer.json, as bytes, or a URL with its pinned SHA-256 (hex). */
  tokenizerBytes?: Uint8Array;
  tokenizerUrl?: string;
  tokenizerSha256?: string;
  /** Cache Storage cache for downloaded files (default "chrysalis-models"; null: no caching). */
  cacheName?: string | null;
  /** Texts per progress step (default 16). */
  batchSize?: number;
}

/** OpenAI (`POST /v1/embeddings`) or Nomic (`POST /v1/embedding/text`). */
export interface RemoteProviderOptions {
  kind: "openai" | "nomic";
  /** Name in telemetry (default the kind). */
  name?: string;
  /** Default "text-embedding-3-small" / "nomic-embed-text-v1.5". */
  model?: string;
  /** Output dimensions (OpenAI v3 `dimensions`, Nomic `dimensionality`). */
  dimensions?: number;
  /** API origin, e.g. a proxy (default the public API; its origin must be allowed in the SecurityContext). */
  baseUrl?: string;
  /** Nomic `task_type` (default "search_document"). */
  taskType?: string;
  /** Texts per request (default the API's limit: 2048 / 512). */
  batchSize?: number;
  /** Per-request timeout in ms (default 30000). */
  timeoutMs?: number;
  /** Price for `estimateCost` (default the model's list price). */
  pricePerMillionTokens?: number;
}

/** One provider of the fallback list. */
export type EmbeddingProviderOptions = LocalProviderOptions | RemoteProviderOptions;

/** What remote providers need of a `SecurityContext` (the core module's class fits). */
export interface ApiKeyFetcher {
  authorizedFetch(provider: string, url: string, init?: RequestInit): Promise<Response>;
}

/** Retries of 429 / 5xx / network errors: exponential backoff with full jitter. */
export interface RetryOptions {
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Longest `Retry-After` honoured (default 60000); a longer one moves to the next provider. */
  maxRetryAfterMs?: number;
}

/** Options of `EmbeddingService.create`. */
export interface EmbeddingServiceOptions {
  /** Tried in this order: fatal errors (401, 400, malformed answers) move on at once. */
  providers: EmbeddingProviderOptions[];
  /** Holds the API keys of remote providers (required for them). */
  security?: ApiKeyFetcher;
  /** Vectors kept in the LRU cache (default 10000; 0 turns it off). */
  cache?: number;
  /** Requests in flight at once in `embedBatch` (default 4). */
  concurrency?: number;
  retry?: RetryOptions;
  /**
   * Workers that run the local model off the caller's thread (Web Workers in a page,
   * `worker_threads` in Node.js): default one per core, at most 4; 0 runs it in this thread.
   * A batch is split across them and comes back in order; a worker that dies is replaced and
   * its texts run once more. At most 8.
   */
  workers?: number;
}

/** What the package gives `EmbeddingService.create` to start workers (`embedding-workers.js`). */
export interface EmbeddingWorkerHost {
  cores(): number;
  spawn(worker: number, module: WebAssembly.Module, listen: (worker: number, message: unknown) => void): unknown;
  post(handle: unknown, message: unknown): void;
  idle(handle: unknown): void;
  terminate(handle: unknown): void;
}

/** Progress of model download and loading, or of embedding. */
export interface EmbeddingProgress {
  phase: "download" | "load" | "embed";
  /** `download`: which file. */
  file?: "model" | "tokenizer";
  /** `download`: bytes so far and in all; `embed`: texts done and in all. */
  loaded?: number;
  total?: number;
  done?: number;
  /** `download`: served from Cache Storage. */
  cached?: boolean;
}

/** `onProgress` and `signal` for long work. */
export interface EmbedOptions {
  onProgress?: (progress: EmbeddingProgress) => void;
  signal?: AbortSignal;
}

/** A vector that knows its model: `cosineSimilarity` refuses to compare across models. */
export type EmbeddingVector = Float32Array & { readonly model: string; readonly dims: number };

/** What one provider has done. */
export interface ProviderTelemetry {
  provider: string;
  model: string;
  dims: number;
  calls: number;
  texts: number;
  tokens: number;
  retryableErrors: number;
  fatalErrors: number;
  cacheHits: number;
  /** Workers running its model (0: in this thread, or a remote provider). */
  workers: number;
  /** Workers replaced after dying. */
  workersReplaced: number;
  /** The workers' wasm memory in all, in bytes (as they last reported it). */
  workersMemoryBytes: number;
  /** Of the last 1024 calls; null before the first. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
}

/** What embedding some texts would cost with one provider. */
export interface EmbeddingCostEstimate {
  provider: string;
  model: string;
  tokens: number;
  usd: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// The `EmbeddingServiceOptions` object type declared above.
    #[wasm_bindgen(typescript_type = "EmbeddingServiceOptions")]
    pub type EmbeddingServiceOptions;
    /// The `EmbedOptions` object type declared above.
    #[wasm_bindgen(typescript_type = "EmbedOptions")]
    pub type EmbedOptions;
    /// The `EmbeddingWorkerHost` object type declared above.
    #[wasm_bindgen(typescript_type = "EmbeddingWorkerHost")]
    pub type EmbeddingWorkerHost;
}

/// The default Cache Storage cache for model files.
const MODEL_CACHE: &str = "chrysalis-models";
/// The largest announced length a download is read into as one buffer as it arrives: a larger
/// (or lying) `Content-Length` costs no allocation up front, the bytes are read in parts.
const PREALLOCATE_AT_MOST: u32 = 64 << 20;
/// The largest model file read at all, downloaded or cached.
const MAX_MODEL_FILE: u32 = 1 << 30;
/// The model id of the in-page model unless a provider names another.
const LOCAL_MODEL: &str = "all-MiniLM-L6-v2";

fn number_option(options: &JsValue, name: &str, default: f64) -> Result<f64, CodedError> {
    let value = option(options, name)?;
    if value.is_undefined() {
        return Ok(default);
    }
    value
        .as_f64()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            CodedError::bad_argument(format!("option {name} must be a non-negative number"))
        })
}

/// Why a JS call failed, as text (`code: message` for our coded errors).
fn describe(error: &JsValue) -> String {
    let code = Reflect::get(error, &"code".into())
        .ok()
        .and_then(|c| c.as_string());
    let message = Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".into());
    match code {
        Some(code) => format!("{code}: {message}"),
        None => message,
    }
}

/// `onProgress` and `signal` of one call.
struct Control {
    on_progress: Option<Function>,
    signal: Option<AbortSignal>,
}

impl Control {
    fn new(options: &JsValue) -> Result<Self, CodedError> {
        let on_progress = option(options, "onProgress")?;
        let signal = option(options, "signal")?;
        Ok(Control {
            on_progress: (!on_progress.is_undefined())
                .then(|| on_progress.dyn_into())
                .transpose()
                .map_err(|_| CodedError::bad_argument("onProgress must be a function"))?,
            signal: (!signal.is_undefined())
                .then(|| signal.dyn_into())
                .transpose()
                .map_err(|_| CodedError::bad_argument("signal must be an AbortSignal"))?,
        })
    }

    fn report(&self, progress: JsValue) {
        if let Some(callback) = &self.on_progress {
            // A throwing progress callback must not break the work.
            let _ = callback.call1(&JsValue::NULL, &progress);
        }
    }

    fn aborted(&self) -> bool {
        self.signal.as_ref().is_some_and(AbortSignal::aborted)
    }

    fn signal_value(&self) -> JsValue {
        self.signal.clone().map_or(JsValue::UNDEFINED, Into::into)
    }
}

/// The browser side of one embedding call: fetch through the security context, timers, clock,
/// and the providers' worker pools.
struct BrowserIo<'a> {
    security: &'a JsValue,
    control: &'a Control,
    pools: &'a [Option<Rc<PoolDriver>>],
}

fn global_function(path: &[&str]) -> Result<(JsValue, Function), JsValue> {
    let mut this = js_sys::global().into();
    for name in &path[..path.len() - 1] {
        this = Reflect::get(&this, &(*name).into())?;
    }
    let function = Reflect::get(&this, &path[path.len() - 1].into())?.dyn_into()?;
    Ok((this, function))
}

impl BrowserIo<'_> {
    /// `AbortSignal.timeout(ms)`, joined with the caller's signal.
    fn signals(&self, timeout_ms: u32) -> Result<(AbortSignal, AbortSignal), JsValue> {
        let (class, timeout) = global_function(&["AbortSignal", "timeout"])?;
        let timeout: AbortSignal = timeout.call1(&class, &timeout_ms.into())?.dyn_into()?;
        let combined = match &self.control.signal {
            None => timeout.clone(),
            Some(user) => {
                let (_, any) = global_function(&["AbortSignal", "any"])?;
                let both = Array::of2(user, &timeout);
                any.call1(&class, &both)?.dyn_into()?
            }
        };
        Ok((timeout, combined))
    }

    fn failure(&self, error: &JsValue, timeout: &AbortSignal) -> TransportError {
        if self.control.aborted() {
            TransportError::Aborted
        } else if timeout.aborted() {
            TransportError::Timeout
        } else {
            TransportError::Network(describe(error))
        }
    }
}

impl embedding::Io for BrowserIo<'_> {
    async fn post_json(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.security.is_undefined() {
            return Err(TransportError::Refused(
                "no `security` given: remote providers take their API key from a SecurityContext"
                    .into(),
            ));
        }
        let fetch: Function = Reflect::get(self.security, &"authorizedFetch".into())
            .and_then(JsCast::dyn_into)
            .map_err(|_| TransportError::Refused("`security` has no authorizedFetch".into()))?;
        let network = |e: JsValue| TransportError::Network(describe(&e));
        let (timeout, signal) = self.signals(request.timeout_ms).map_err(network)?;
        let init = object(&[
            ("method", "POST".into()),
            (
                "headers",
                object(&[("content-type", "application/json".into())]),
            ),
            ("body", request.body.into()),
            ("signal", signal.into()),
        ]);
        let pending = fetch
            .call3(
                self.security,
                &request.api_key.into(),
                &request.url.into(),
                &init,
            )
            .map_err(|e| TransportError::Refused(describe(&e)))?;
        let response: Response = JsFuture::from(Promise::resolve(&pending))
            .await
            .map_err(|e| self.failure(&e, &timeout))?
            .dyn_into()
            .map_err(network)?;
        let retry_after = response.headers().get("retry-after").ok().flatten();
        let body = JsFuture::from(response.text().map_err(network)?)
            .await
            .map_err(|e| self.failure(&e, &timeout))?
            .as_string()
            .unwrap_or_default();
        Ok(HttpResponse {
            status: response.status(),
            retry_after,
            body,
        })
    }

    async fn sleep(&self, ms: f64) {
        // An abort ends the wait at once.
        crate::timers::sleep(ms, &self.control.signal_value()).await;
    }

    fn now_ms(&self) -> f64 {
        global_function(&["performance", "now"])
            .and_then(|(this, now)| now.call0(&this))
            .ok()
            .and_then(|t| t.as_f64())
            .unwrap_or_else(js_sys::Date::now)
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }

    fn aborted(&self) -> bool {
        self.control.aborted()
    }

    fn progress(&self, done: usize, total: usize) {
        self.control.report(object(&[
            ("phase", "embed".into()),
            ("done", (done as f64).into()),
            ("total", (total as f64).into()),
        ]));
    }

    async fn encode(
        &self,
        provider: usize,
        texts: &[&str],
    ) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        match self.pools.get(provider) {
            Some(Some(pool)) => pool.encode(texts).await,
            _ => Err(EmbeddingError::BadInput(
                "this provider has no workers".into(),
            )),
        }
    }
}

/// Bytes hashed between two reads of the clock.
const HASH_PIECE: u32 = 64 << 10;
/// How long hashing may hold the thread before it yields (the first pieces run before the engine
/// has optimised the hash, several times slower than the later ones: the slices are timed).
const HASH_SLICE_MS: f64 = 8.0;

/// The SHA-256 of `bytes` (hex), hashed in slices of about 8 ms so that a model of tens of
/// megabytes never blocks the thread for long.
async fn sha256_in_slices(bytes: &Uint8Array) -> String {
    let mut hasher = Hasher::new(HashAlgorithm::Sha256);
    let mut at = 0;
    let mut slice_start = js_sys::Date::now();
    while at < bytes.length() {
        let end = (at + HASH_PIECE).min(bytes.length());
        hasher.update(&bytes.subarray(at, end).to_vec());
        at = end;
        if at < bytes.length() && js_sys::Date::now() - slice_start >= HASH_SLICE_MS {
            crate::timers::next_turn().await;
            slice_start = js_sys::Date::now();
        }
    }
    hex(&hasher.finalize())
}

/// One model file: given as bytes, or downloaded (and cached) and checked against its pin.
async fn model_file(
    provider: &JsValue,
    file: &str,
    control: &Control,
) -> Result<Uint8Array, JsValue> {
    let bytes = option(provider, &format!("{file}Bytes"))?;
    if let Some(bytes) = bytes.dyn_ref::<Uint8Array>() {
        return Ok(bytes.clone());
    }
    let url = string_option(provider, &format!("{file}Url"))?.ok_or_else(|| {
        js(CodedError::bad_argument(format!(
            "a local provider needs {file}Bytes or {file}Url"
        )))
    })?;
    let pin = string_option(provider, &format!("{file}Sha256"))?
        .ok_or_else(|| {
            js(CodedError::bad_argument(format!(
                "{file}Url needs {file}Sha256: downloaded models are pinned by their SHA-256"
            )))
        })?
        .to_ascii_lowercase();
    // One cache name (or none) for both halves: a name that is not a string is refused, and
    // an empty one means no caching, as null does.
    let cache = match option(provider, "cacheName")? {
        value if value.is_undefined() => Some(MODEL_CACHE.to_owned()),
        _ => string_option(provider, "cacheName")?.filter(|name| !name.is_empty()),
    };
    let progress = control
        .on_progress
        .clone()
        .map_or(JsValue::UNDEFINED, Into::into);
    if control.aborted() {
        return Err(js(EmbeddingError::Aborted));
    }
    let signal = control.signal_value();
    let fetch = async |cache: &Option<String>| {
        let cache_name = cache.as_deref().map_or(JsValue::NULL, JsValue::from);
        fetch_model_file(
            &url,
            &cache_name,
            file,
            PREALLOCATE_AT_MOST,
            MAX_MODEL_FILE,
            &progress,
            &signal,
        )
        .await
    };
    let mut fetched = fetch(&cache).await?;
    // A cache that cannot be opened (storage blocked, an opaque origin) costs the caching, not
    // the load: the file is fetched again without one.
    let mut cache = cache;
    if Reflect::get(&fetched, &"cacheUnavailable".into())?.is_truthy() {
        cache = None;
        fetched = fetch(&cache).await?;
    }
    // Nothing unread or unchecked stays in the cache to fail the next load: a cached copy that
    // cannot be read, and the copy of a download that failed (our abort ends it, but it may have
    // completed), are evicted.
    let evict = async |copy: Option<Promise>| {
        if let Some(copy) = copy {
            let _ = JsFuture::from(copy).await;
        }
        if let Some(name) = &cache {
            let _ = evict_model_file(&url, name).await; // a failed eviction must not hide the failure
        }
    };
    // The snippet's records have no prototype, so nothing on `Object.prototype` reads as a field.
    if Reflect::get(&fetched, &"failed".into())?.is_truthy() {
        let copy = Reflect::get(&fetched, &"cachedCopy".into())?;
        if !copy.is_undefined() {
            evict(copy.dyn_into::<Promise>().ok()).await;
        }
        // Whatever the browser threw for it (an `AbortError`, the signal's reason), an abort is
        // `ABORTED`.
        if control.aborted() {
            return Err(js(EmbeddingError::Aborted));
        }
        let error = Reflect::get(&fetched, &"error".into())?;
        return Err(if error.is_object() {
            error
        } else {
            js(CodedError::new(
                "DOWNLOAD_FAILED",
                format!("loading {file} failed: {error:?}"),
            ))
        });
    }
    let bytes: Uint8Array = Reflect::get(&fetched, &"bytes".into())?.dyn_into()?;
    // The cache's copy of a download, stored while it arrived: best effort (a full quota costs the
    // next visit a download, not this load), and settled before a failed check evicts it.
    let stored = Reflect::get(&fetched, &"stored".into())?
        .dyn_into::<Promise>()
        .ok();
    let actual = sha256_in_slices(&bytes).await;
    if let Some(stored) = stored {
        let _ = JsFuture::from(stored).await;
    }
    if actual != pin {
        evict(None).await;
        return Err(js(EmbeddingError::Integrity {
            what: file.to_owned(),
            expected: pin,
            actual,
        }));
    }
    Ok(bytes)
}

/// Where a provider's local model runs: in this thread, or in a pool of workers.
#[derive(Clone)]
enum Placement {
    InThread,
    Workers { host: JsValue, size: usize },
}

async fn provider(
    options: &JsValue,
    control: &Control,
    placement: &Placement,
) -> Result<(Provider, Option<Rc<PoolDriver>>), JsValue> {
    let kind = string_option(options, "kind")?.unwrap_or_default();
    let mut pool = None;
    let mut provider = match kind.as_str() {
        "local" => {
            let model = model_file(options, "model", control).await?;
            let tokenizer = model_file(options, "tokenizer", control).await?;
            control.report(object(&[("phase", "load".into())]));
            let id = string_option(options, "model")?.unwrap_or_else(|| LOCAL_MODEL.into());
            match placement {
                Placement::InThread => {
                    let encoder =
                        LocalModel::load(&model.to_vec(), &tokenizer.to_vec()).map_err(js)?;
                    Provider::local(id, Box::new(encoder))
                }
                Placement::Workers { host, size } => {
                    let (driver, dims) = PoolDriver::start(host.clone(), *size, model, tokenizer)
                        .await
                        .map_err(js)?;
                    pool = Some(driver);
                    Provider::workers(id, dims, *size)
                }
            }
        }
        "openai" | "nomic" => {
            let api = if kind == "openai" {
                RemoteApi::OpenAi
            } else {
                RemoteApi::Nomic
            };
            let mut config = RemoteConfig::new(api);
            if let Some(model) = string_option(options, "model")? {
                config.model = model;
            }
            if let Some(base) = string_option(options, "baseUrl")? {
                config.base_url = base;
            }
            if let Some(task) = string_option(options, "taskType")? {
                config.task_type = Some(task);
            }
            let dims = usize_option(options, "dimensions", 0)?;
            config.dimensions = (dims > 0).then_some(dims);
            let mut provider = Provider::remote(config);
            provider.timeout_ms =
                usize_option(options, "timeoutMs", 30_000)?.min(u32::MAX as usize) as u32;
            provider.price_per_million =
                number_option(options, "pricePerMillionTokens", provider.price_per_million)?;
            provider
        }
        other => {
            return Err(js(CodedError::bad_argument(format!(
                "provider kind must be \"local\", \"openai\" or \"nomic\", not {other:?}"
            ))));
        }
    };
    provider.batch_size = usize_option(options, "batchSize", provider.batch_size)?;
    if let Some(name) = string_option(options, "name")? {
        provider.name = name;
    }
    Ok((provider, pool))
}

/// Where local models run: `workers` (default one per core, at most [`DEFAULT_WORKERS`]) in
/// the host's workers, or in this thread with `workers: 0` or no host.
fn placement(options: &JsValue, host: JsValue) -> Result<Placement, CodedError> {
    let default = match host.is_undefined() {
        true => 0,
        false => host_cores(&host).min(DEFAULT_WORKERS),
    };
    let size = usize_option(options, "workers", default)?;
    if size > MAX_WORKERS {
        return Err(CodedError::bad_argument(format!(
            "workers must be at most {MAX_WORKERS}"
        )));
    }
    match (size, host.is_undefined()) {
        (0, _) => Ok(Placement::InThread),
        (_, true) => Err(CodedError::bad_argument(
            "workers need the package's worker host: import EmbeddingService from chrysalis-sdk",
        )),
        (size, false) => Ok(Placement::Workers { host, size }),
    }
}

fn service_config(options: &JsValue) -> Result<ServiceConfig, CodedError> {
    let defaults = ServiceConfig::default();
    let retry = option(options, "retry")?;
    let policy = RetryPolicy::default();
    Ok(ServiceConfig {
        cache_capacity: usize_option(options, "cache", defaults.cache_capacity)?,
        concurrency: usize_option(options, "concurrency", defaults.concurrency)?,
        retry: RetryPolicy {
            max_attempts: usize_option(&retry, "maxAttempts", policy.max_attempts as usize)?
                .clamp(1, 100) as u32,
            base_delay_ms: number_option(&retry, "baseDelayMs", policy.base_delay_ms)?,
            max_delay_ms: number_option(&retry, "maxDelayMs", policy.max_delay_ms)?,
            max_retry_after_ms: number_option(
                &retry,
                "maxRetryAfterMs",
                policy.max_retry_after_ms,
            )?,
        },
    })
}

fn to_vector(embedding: embedding::Embedding) -> JsValue {
    let array = Float32Array::from(&embedding.vector[..]);
    let _ = Reflect::set(&array, &"model".into(), &embedding.model.into());
    let _ = Reflect::set(
        &array,
        &"dims".into(),
        &(embedding.vector.len() as f64).into(),
    );
    array.into()
}

/// Sentence embeddings from providers tried in order — the in-page model, OpenAI, Nomic — with
/// retries, batching, an LRU cache and telemetry. Create it with `EmbeddingService.create`.
#[wasm_bindgen]
pub struct EmbeddingService {
    inner: Rc<embedding::EmbeddingService>,
    security: JsValue,
    /// Each provider's worker pool, if its model runs in one.
    pools: Rc<Vec<Option<Rc<PoolDriver>>>>,
}

#[wasm_bindgen]
impl EmbeddingService {
    /// Builds a service: downloads (with progress, Cache Storage and SHA-256 pins) and loads the
    /// local model if one is configured, in `options.workers` workers started through `host`
    /// (the package passes its own; without one the model runs in this thread).
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"`/`"BAD_INPUT"` for bad options, `"INTEGRITY_MISMATCH"`, `"DOWNLOAD_FAILED"`, `"ABORTED"` (a download ended by the signal, its cached copy evicted), `"MODEL_ERROR"`, `"TOKENIZER_ERROR"`.
    #[wasm_bindgen(unchecked_return_type = "Promise<EmbeddingService>")]
    pub fn create(
        options: EmbeddingServiceOptions,
        progress: Option<EmbedOptions>,
        host: Option<EmbeddingWorkerHost>,
    ) -> JsResult<Promise> {
        let options: JsValue = options.into();
        let control = Control::new(&or_undefined(progress))?;
        let config = service_config(&options)?;
        let placement = placement(&options, or_undefined(host))?;
        let security = option(&options, "security")?;
        let list = option(&options, "providers")?;
        let list: Array = list
            .dyn_into()
            .map_err(|_| js(CodedError::bad_argument("providers must be an array")))?;
        Ok(future_to_promise(async move {
            let mut providers = Vec::new();
            let mut pools = Vec::new();
            for options in list.iter() {
                let (provider, pool) = provider(&options, &control, &placement).await?;
                providers.push(provider);
                pools.push(pool);
            }
            let inner = embedding::EmbeddingService::new(providers, config).map_err(js)?;
            Ok(EmbeddingService {
                inner: Rc::new(inner),
                security,
                pools: Rc::new(pools),
            }
            .into())
        }))
    }

    /// The embedding of `text` (a unit vector tagged with its `model` and `dims`).
    #[wasm_bindgen(unchecked_return_type = "Promise<EmbeddingVector>")]
    pub fn embed(&self, text: String, options: Option<EmbedOptions>) -> JsResult<Promise> {
        let batch = self.batch(vec![text], options)?;
        Ok(future_to_promise(async move { Ok(batch.await?.get(0)) }))
    }

    /// Embeddings of `texts`, in order, all from one provider: split into provider-sized
    /// requests run a few at a time, with progress (`phase: "embed"`) and an `AbortSignal`.
    ///
    /// @throws {Error} `code: "ALL_PROVIDERS_FAILED"` (or the one provider's error: `"PROVIDER_AUTH"`, `"RATE_LIMITED"`, `"PROVIDER_HTTP"`, `"TIMEOUT"`, `"NETWORK_ERROR"`, `"MALFORMED_RESPONSE"`, `"NO_CREDENTIALS"`), `"ABORTED"`.
    #[wasm_bindgen(js_name = embedBatch, unchecked_return_type = "Promise<EmbeddingVector[]>")]
    pub fn embed_batch(
        &self,
        texts: Vec<String>,
        options: Option<EmbedOptions>,
    ) -> JsResult<Promise> {
        let batch = self.batch(texts, options)?;
        Ok(future_to_promise(async move { Ok(batch.await?.into()) }))
    }

    fn batch(
        &self,
        texts: Vec<String>,
        options: Option<EmbedOptions>,
    ) -> JsResult<impl Future<Output = Result<Array, JsValue>> + 'static> {
        let control = Control::new(&or_undefined(options))?;
        let inner = Rc::clone(&self.inner);
        let security = self.security.clone();
        let pools = Rc::clone(&self.pools);
        Ok(async move {
            let io = BrowserIo {
                security: &security,
                control: &control,
                pools: &pools,
            };
            let vectors = inner.embed_batch(&io, &texts).await.map_err(js)?;
            Ok(vectors.into_iter().map(to_vector).collect::<Array>())
        })
    }

    /// Counters of each provider, in fallback order.
    #[wasm_bindgen(unchecked_return_type = "ProviderTelemetry[]")]
    pub fn telemetry(&self) -> Array {
        let percentile = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from);
        self.inner
            .providers()
            .iter()
            .zip(self.inner.telemetry())
            .zip(self.pools.iter())
            .map(|((p, s), pool)| {
                object(&[
                    ("provider", p.name.clone().into()),
                    ("model", p.model.clone().into()),
                    ("dims", (p.dims().unwrap_or(0) as f64).into()),
                    ("calls", (s.calls as f64).into()),
                    ("texts", (s.texts as f64).into()),
                    ("tokens", (s.tokens as f64).into()),
                    ("retryableErrors", (s.retryable_errors as f64).into()),
                    ("fatalErrors", (s.fatal_errors as f64).into()),
                    ("cacheHits", (s.cache_hits as f64).into()),
                    (
                        "workers",
                        (pool.as_ref().map_or(0, |p| p.size()) as f64).into(),
                    ),
                    (
                        "workersReplaced",
                        (pool.as_ref().map_or(0, |p| p.replaced()) as f64).into(),
                    ),
                    (
                        "workersMemoryBytes",
                        pool.as_ref().map_or(0.0, |p| p.memory_bytes()).into(),
                    ),
                    ("latencyP50Ms", percentile(s.latency_quantile(0.5))),
                    ("latencyP99Ms", percentile(s.latency_quantile(0.99))),
                ])
            })
            .collect()
    }

    /// What embedding `texts` would cost with each provider (local tokens are counted by the
    /// tokenizer; remote ones estimated at 4 bytes a token; prices are the models' list prices
    /// unless `pricePerMillionTokens` was given).
    #[wasm_bindgen(js_name = estimateCost, unchecked_return_type = "EmbeddingCostEstimate[]")]
    pub fn estimate_cost(&self, texts: Vec<String>) -> JsResult<Array> {
        let estimates = self.inner.estimate_cost(&texts).map_err(js)?;
        Ok(estimates
            .into_iter()
            .map(|e| {
                object(&[
                    ("provider", e.provider.into()),
                    ("model", e.model.into()),
                    ("tokens", (e.tokens as f64).into()),
                    ("usd", e.usd.into()),
                ])
            })
            .collect())
    }

    /// Vectors held in the cache.
    #[wasm_bindgen(getter, js_name = cachedVectors)]
    pub fn cached_vectors(&self) -> usize {
        self.inner.cached()
    }

    /// Stops the service's workers (calls under way fail with `ABORTED`); later calls to the
    /// local provider fail the same way. `free()` does it too.
    pub fn close(&self) {
        for pool in self.pools.iter().flatten() {
            pool.close();
        }
    }
}
