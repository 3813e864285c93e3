//! Sentence embeddings for Chrysalis.
//!
//! An [`EmbeddingService`] tries its providers in order — the local all-MiniLM-L6-v2 model run
//! by tract in the page ([`LocalModel`], feature `local`), OpenAI and Nomic over HTTP
//! ([`RemoteConfig`]) — retrying what may pass on a second try, caching vectors by
//! BLAKE3(model ‖ text) and counting what each provider did. Every vector carries its model, and
//! comparing vectors of different models or dimensions is an error, not a silent number.

mod cache;
mod error;
#[cfg(feature = "local")]
mod integer_matmul;
#[cfg(feature = "local")]
mod local;
mod pool;
mod remote;
mod retry;
mod service;
mod telemetry;
mod vector;

pub use cache::EmbeddingCache;
pub use error::{EmbeddingError, ErrorClass};
#[cfg(feature = "local")]
pub use local::{INTEGER_PRODUCTS, LocalModel, MAX_TOKENS, fuse_gelu, gather_before_dequantize};
pub use pool::{ChunkId, MAX_RUNS, PoolAction, Readiness, WorkerId, WorkerPool};
pub use remote::{RemoteApi, RemoteConfig, list_price_per_million, native_dims};
pub use retry::{RetryPolicy, parse_retry_after};
pub use service::{
    CostEstimate, EmbeddingService, Encoder, HttpRequest, HttpResponse, Io, Provider,
    ServiceConfig, Source, TransportError,
};
pub use telemetry::{LATENCY_WINDOW, ProviderStats};
pub use vector::{Embedding, cosine_similarity, normalize};
