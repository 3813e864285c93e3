//! `EmbeddingService`: providers in fallback order, retries, batching, cache and telemetry.
//!
//! The service does no I/O of its own: an [`Io`] given per call moves the bytes (fetch in the
//! browser), tells the time, sleeps, and reports progress and cancellation.

use std::cell::RefCell;

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::cache::EmbeddingCache;
use crate::remote::{RemoteConfig, list_price_per_million};
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::telemetry::ProviderStats;
use crate::{Embedding, EmbeddingError, ErrorClass};

/// A POST of a JSON body to a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Whose API key authorises it (`"openai"`, `"nomic"`); the [`Io`] adds the header.
    pub api_key: &'static str,
    /// The endpoint.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// Abort the request after this long.
    pub timeout_ms: u32,
}

/// A provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body text.
    pub body: String,
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The connection failed or the body was cut off.
    Network(String),
    /// The request's timeout fired.
    Timeout,
    /// The caller aborted.
    Aborted,
    /// No request was made: no API key, or its origin is not allowed to receive it.
    Refused(String),
}

/// The outside world of one `embed` call.
#[allow(async_fn_in_trait)] // single-threaded (wasm) callers; no Send bound wanted
pub trait Io {
    /// POSTs `request` with the provider's API key.
    async fn post_json(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
    /// Resolves after `ms` milliseconds.
    async fn sleep(&self, ms: f64);
    /// A monotonic clock in milliseconds.
    fn now_ms(&self) -> f64;
    /// A uniform random number in `[0, 1)` (backoff jitter).
    fn random(&self) -> f64;
    /// Whether the caller has aborted.
    fn aborted(&self) -> bool;
    /// `done` of `total` texts are embedded.
    fn progress(&self, done: usize, total: usize);
    /// Runs the local model of provider `provider` (a [`Source::Workers`]) on `texts` in one of
    /// its workers: unit vectors in order, and the tokens they took.
    async fn encode(
        &self,
        provider: usize,
        texts: &[&str],
    ) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        let _ = (provider, texts);
        Err(EmbeddingError::BadInput(
            "this caller runs no worker pool".into(),
        ))
    }
}

/// A model that runs in the page.
pub trait Encoder {
    /// Dimensions of its vectors.
    fn dims(&self) -> usize;
    /// Unit vectors for `texts`, in order, and the tokens they took.
    fn embed(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError>;
    /// Tokens `text` takes.
    fn count_tokens(&self, text: &str) -> Result<u64, EmbeddingError>;
}

/// Where a provider's vectors come from.
pub enum Source {
    /// A model in the page.
    Local(Box<dyn Encoder>),
    /// A model in a pool of workers, run through [`Io::encode`].
    Workers {
        /// Dimensions of its vectors.
        dims: usize,
        /// Workers in the pool: chunks in flight at once.
        workers: usize,
    },
    /// A remote API.
    Remote(RemoteConfig),
}

/// One provider of the fallback list.
pub struct Provider {
    /// Its name in telemetry and errors (unique in a service).
    pub name: String,
    /// The model id its vectors carry.
    pub model: String,
    /// Where the vectors come from.
    pub source: Source,
    /// Texts per request (or per model run).
    pub batch_size: usize,
    /// Per-request timeout of a remote provider.
    pub timeout_ms: u32,
    /// US dollars per million tokens, for `estimate_cost`.
    pub price_per_million: f64,
}

impl Provider {
    /// A local provider with one model run per 16 texts.
    pub fn local(model: impl Into<String>, encoder: Box<dyn Encoder>) -> Self {
        let model = model.into();
        Provider {
            name: "local".into(),
            model,
            source: Source::Local(encoder),
            batch_size: 16,
            timeout_ms: 0,
            price_per_million: 0.0,
        }
    }

    /// A local provider whose model runs in `workers` workers, 8 texts a chunk (small chunks
    /// keep the workers evenly busy and progress frequent).
    pub fn workers(model: impl Into<String>, dims: usize, workers: usize) -> Self {
        Provider {
            name: "local".into(),
            model: model.into(),
            source: Source::Workers {
                dims,
                workers: workers.max(1),
            },
            batch_size: 8,
            timeout_ms: 0,
            price_per_million: 0.0,
        }
    }

    /// A remote provider with the API's batch limit, a 30 s timeout and the model's list price.
    pub fn remote(config: RemoteConfig) -> Self {
        Provider {
            name: config.api.name().into(),
            model: config.model.clone(),
            batch_size: config.api.max_batch(),
            timeout_ms: 30_000,
            price_per_million: list_price_per_million(&config.model).unwrap_or(0.0),
            source: Source::Remote(config),
        }
    }

    /// Dimensions of its vectors.
    pub fn dims(&self) -> Result<usize, EmbeddingError> {
        match &self.source {
            Source::Local(encoder) => Ok(encoder.dims()),
            Source::Workers { dims, .. } => Ok(*dims),
            Source::Remote(config) => config.dims(),
        }
    }

    /// What the cache key binds: the model and every option that changes its vectors.
    fn variant(&self) -> Result<String, EmbeddingError> {
        Ok(match &self.source {
            Source::Local(_) | Source::Workers { .. } => {
                format!("local:{}#{}", self.model, self.dims()?)
            }
            Source::Remote(c) => format!(
                "{}:{}#{}#{}",
                c.api.name(),
                c.model,
                c.dims()?,
                c.task_type.as_deref().unwrap_or("")
            ),
        })
    }

    /// Tokens `text` takes: the local tokenizer's count, or about one token per 4 bytes
    /// remotely and in workers (whose tokenizer is not at hand).
    fn count_tokens(&self, text: &str) -> Result<u64, EmbeddingError> {
        match &self.source {
            Source::Local(encoder) => encoder.count_tokens(text),
            Source::Workers { .. } | Source::Remote(_) => {
                Ok((text.len() as u64).div_ceil(4).max(1))
            }
        }
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// Settings of an [`EmbeddingService`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceConfig {
    /// Vectors kept in the LRU cache (0: no cache).
    pub cache_capacity: usize,
    /// Requests in flight at once during a batch.
    pub concurrency: usize,
    /// Retries of retryable errors.
    pub retry: RetryPolicy,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            cache_capacity: 10_000,
            concurrency: 4,
            retry: RetryPolicy::default(),
        }
    }
}

/// What embedding some texts with one provider would cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CostEstimate {
    /// The provider.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Tokens, counted or estimated.
    pub tokens: u64,
    /// US dollars.
    pub usd: f64,
}

/// The chunks `misses` go out in: at most `batch_size` each; for a pool of workers, a multiple
/// of its size, of sizes that differ by one at most, so that no worker is left with the tail.
fn split<'a>(misses: &'a [usize], provider: &Provider) -> Vec<&'a [usize]> {
    let batch = provider.batch_size;
    let Source::Workers { workers, .. } = provider.source else {
        return misses.chunks(batch).collect();
    };
    let count = (workers * misses.len().div_ceil(workers * batch)).min(misses.len());
    (0..count)
        .map(|i| &misses[i * misses.len() / count..(i + 1) * misses.len() / count])
        .collect()
}

/// Embeds texts with the first provider of its list that succeeds.
pub struct EmbeddingService {
    providers: Vec<Provider>,
    config: ServiceConfig,
    cache: RefCell<EmbeddingCache>,
    stats: RefCell<Vec<ProviderStats>>,
}

impl std::fmt::Debug for EmbeddingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingService")
            .field("providers", &self.providers)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EmbeddingService {
    /// A service over `providers`, tried in order.
    pub fn new(providers: Vec<Provider>, config: ServiceConfig) -> Result<Self, EmbeddingError> {
        if providers.is_empty() {
            return Err(EmbeddingError::BadInput("no providers configured".into()));
        }
        for (i, p) in providers.iter().enumerate() {
            p.dims()?;
            if p.batch_size == 0 {
                return Err(EmbeddingError::BadInput(format!(
                    "{}: batch size 0",
                    p.name
                )));
            }
            if providers[..i].iter().any(|q| q.name == p.name) {
                return Err(EmbeddingError::BadInput(format!(
                    "two providers named {:?}",
                    p.name
                )));
            }
        }
        if config.concurrency == 0 {
            return Err(EmbeddingError::BadInput(
                "concurrency must be at least 1".into(),
            ));
        }
        let stats = vec![ProviderStats::default(); providers.len()];
        Ok(EmbeddingService {
            cache: RefCell::new(EmbeddingCache::new(config.cache_capacity)),
            stats: RefCell::new(stats),
            providers,
            config,
        })
    }

    /// The providers, in fallback order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Embeds `texts` in order. Every vector comes from one provider: when a provider fails on
    /// part of the batch, the whole batch moves to the next one (its cached vectors are reused).
    pub async fn embed_batch<I: Io>(
        &self,
        io: &I,
        texts: &[String],
    ) -> Result<Vec<Embedding>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut failures = Vec::new();
        for index in 0..self.providers.len() {
            match self.embed_with(io, index, texts).await {
                Ok(vectors) => return Ok(vectors),
                Err(e @ (EmbeddingError::Aborted | EmbeddingError::BadInput(_))) => return Err(e),
                Err(e) => failures.push(e),
            }
        }
        Err(if failures.len() == 1 {
            failures.remove(0)
        } else {
            EmbeddingError::AllProvidersFailed(failures)
        })
    }

    async fn embed_with<I: Io>(
        &self,
        io: &I,
        index: usize,
        texts: &[String],
    ) -> Result<Vec<Embedding>, EmbeddingError> {
        let provider = &self.providers[index];
        let variant = provider.variant()?;
        let keys: Vec<[u8; 32]> = texts
            .iter()
            .map(|t| EmbeddingCache::key(&variant, t))
            .collect();
        let mut vectors: Vec<Option<Vec<f32>>> = {
            let mut cache = self.cache.borrow_mut();
            keys.iter().map(|k| cache.get(k)).collect()
        };
        let mut misses: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        let mut done = texts.len() - misses.len();
        self.stats.borrow_mut()[index].cache_hits += done as u64;
        io.progress(done, texts.len());
        if !matches!(provider.source, Source::Remote(_)) {
            // A model pads a chunk to its longest text: chunks of like lengths waste less.
            misses.sort_by_key(|&i| texts[i].len());
        }
        let chunks = split(&misses, provider).into_iter().map(|chunk| {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
            async move { self.run_chunk(io, index, &batch).await.map(|v| (chunk, v)) }
        });
        let concurrency = match provider.source {
            Source::Local(_) => 1,
            Source::Workers { workers, .. } => workers,
            Source::Remote(_) => self.config.concurrency,
        };
        let mut results = stream::iter(chunks).buffered(concurrency).into_stream();
        while let Some((chunk, chunk_vectors)) = results.try_next().await? {
            let mut cache = self.cache.borrow_mut();
            for (&i, vector) in chunk.iter().zip(chunk_vectors) {
                cache.put(keys[i], vector.clone());
                vectors[i] = Some(vector);
            }
            done += chunk.len();
            io.progress(done, texts.len());
        }
        Ok(vectors
            .into_iter()
            .map(|v| Embedding {
                model: provider.model.clone(),
                vector: v.unwrap_or_default(),
            })
            .collect())
    }

    /// One request (with retries) or one model run.
    async fn run_chunk<I: Io>(
        &self,
        io: &I,
        index: usize,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let provider = &self.providers[index];
        let mut attempt = 0;
        loop {
            attempt += 1;
            if io.aborted() {
                return Err(EmbeddingError::Aborted);
            }
            let start = io.now_ms();
            let (result, retry_after) = match &provider.source {
                Source::Local(encoder) => (encoder.embed(texts), None),
                Source::Workers { .. } => (io.encode(index, texts).await, None),
                Source::Remote(config) => self.request(io, provider, config, texts).await,
            };
            let error = match result {
                Ok((vectors, tokens)) => {
                    let elapsed = io.now_ms() - start;
                    self.stats.borrow_mut()[index].record_call(texts.len(), tokens, elapsed);
                    return Ok(vectors);
                }
                Err(EmbeddingError::Aborted) => return Err(EmbeddingError::Aborted),
                Err(e) => e,
            };
            self.stats.borrow_mut()[index].record_error(error.class());
            if error.class() == ErrorClass::Fatal {
                return Err(error);
            }
            match self.config.retry.delay(attempt, io.random(), retry_after) {
                Some(ms) => io.sleep(ms).await,
                None => return Err(error),
            }
        }
    }

    async fn request<I: Io>(
        &self,
        io: &I,
        provider: &Provider,
        config: &RemoteConfig,
        texts: &[&str],
    ) -> (Result<(Vec<Vec<f32>>, u64), EmbeddingError>, Option<f64>) {
        let request = HttpRequest {
            api_key: config.api.name(),
            url: config.endpoint(),
            body: config.request_body(texts),
            timeout_ms: provider.timeout_ms,
        };
        let name = || provider.name.clone();
        match io.post_json(request).await {
            Ok(response) if (200..300).contains(&response.status) => {
                (config.parse_response(&response.body, texts.len()), None)
            }
            Ok(response) => (
                Err(config.http_error(response.status, &response.body)),
                response.retry_after.as_deref().and_then(parse_retry_after),
            ),
            Err(TransportError::Timeout) => (
                Err(EmbeddingError::Timeout {
                    provider: name(),
                    ms: provider.timeout_ms,
                }),
                None,
            ),
            Err(TransportError::Network(message)) => (
                Err(EmbeddingError::Network {
                    provider: name(),
                    message,
                }),
                None,
            ),
            Err(TransportError::Aborted) => (Err(EmbeddingError::Aborted), None),
            Err(TransportError::Refused(message)) => (
                Err(EmbeddingError::Credentials {
                    provider: name(),
                    message,
                }),
                None,
            ),
        }
    }

    /// Counters of each provider, in fallback order.
    pub fn telemetry(&self) -> Vec<ProviderStats> {
        self.stats.borrow().clone()
    }

    /// What embedding `texts` would cost with each provider (cache not considered).
    pub fn estimate_cost(&self, texts: &[String]) -> Result<Vec<CostEstimate>, EmbeddingError> {
        self.providers
            .iter()
            .map(|p| {
                let tokens = texts
                    .iter()
                    .map(|t| p.count_tokens(t))
                    .sum::<Result<u64, _>>()?;
                Ok(CostEstimate {
                    provider: p.name.clone(),
                    model: p.model.clone(),
                    tokens,
                    usd: tokens as f64 * p.price_per_million / 1e6,
                })
            })
            .collect()
    }

    /// Vectors in the cache.
    pub fn cached(&self) -> usize {
        self.cache.borrow().len()
    }
}
