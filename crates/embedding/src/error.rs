//! The one error type of the crate.

use thiserror::Error;

/// Whether trying the same provider again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// 429, 5xx, network failures and timeouts: retry with backoff.
    Retryable,
    /// 400, 401, 403, 404, malformed responses, bad input: move to the next provider at once.
    Fatal,
}

/// Everything that can go wrong while embedding.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum EmbeddingError {
    /// The caller's input or configuration is wrong.
    #[error("{0}")]
    BadInput(String),
    /// Two vectors of different lengths were compared.
    #[error("dimension mismatch: {left} vs {right}")]
    DimensionMismatch {
        /// Dimensions of the first vector.
        left: usize,
        /// Dimensions of the second vector.
        right: usize,
    },
    /// Two vectors of different models were compared or mixed.
    #[error("model mismatch: {left} vs {right}")]
    ModelMismatch {
        /// Model of the first vector.
        left: String,
        /// Model of the second vector.
        right: String,
    },
    /// The ONNX model could not be loaded or run.
    #[error("model: {0}")]
    Model(String),
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Downloaded bytes do not have the pinned SHA-256.
    #[error("{what} has SHA-256 {actual}, expected {expected}")]
    Integrity {
        /// What was checked (`"model"`, `"tokenizer"`).
        what: String,
        /// The pinned digest (hex).
        expected: String,
        /// The digest of the bytes received (hex).
        actual: String,
    },
    /// A provider answered with an HTTP error status.
    #[error("{provider}: HTTP {status}: {message}")]
    Http {
        /// The provider's name.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// The provider's error message, if it sent one.
        message: String,
    },
    /// The request did not reach the provider or its answer was cut off.
    #[error("{provider}: network error: {message}")]
    Network {
        /// The provider's name.
        provider: String,
        /// What the transport reported.
        message: String,
    },
    /// The provider did not answer within the timeout.
    #[error("{provider}: no answer within {ms} ms")]
    Timeout {
        /// The provider's name.
        provider: String,
        /// The timeout.
        ms: u32,
    },
    /// The provider's answer is not the JSON its API documents.
    #[error("{provider}: malformed response: {message}")]
    MalformedResponse {
        /// The provider's name.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The provider's API key could not be used (none stored, or not for this origin).
    #[error("{provider}: no usable API key: {message}")]
    Credentials {
        /// The provider's name.
        provider: String,
        /// Why (the security context's error).
        message: String,
    },
    /// The caller aborted the work.
    #[error("aborted")]
    Aborted,
    /// Every configured provider failed; the last error of each, in order.
    #[error("every provider failed: {}", list(.0))]
    AllProvidersFailed(Vec<EmbeddingError>),
}

fn list(errors: &[EmbeddingError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl EmbeddingError {
    /// The stable code the JS edge puts on the `Error`.
    pub fn code(&self) -> &'static str {
        match self {
            EmbeddingError::BadInput(_) => "BAD_INPUT",
            EmbeddingError::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
            EmbeddingError::ModelMismatch { .. } => "MODEL_MISMATCH",
            EmbeddingError::Model(_) => "MODEL_ERROR",
            EmbeddingError::Tokenizer(_) => "TOKENIZER_ERROR",
            EmbeddingError::Integrity { .. } => "INTEGRITY_MISMATCH",
            EmbeddingError::Http {
                status: 401 | 403, ..
            } => "PROVIDER_AUTH",
            EmbeddingError::Http { status: 429, .. } => "RATE_LIMITED",
            EmbeddingError::Http { .. } => "PROVIDER_HTTP",
            EmbeddingError::Network { .. } => "NETWORK_ERROR",
            EmbeddingError::Timeout { .. } => "TIMEOUT",
            EmbeddingError::MalformedResponse { .. } => "MALFORMED_RESPONSE",
            EmbeddingError::Credentials { .. } => "NO_CREDENTIALS",
            EmbeddingError::Aborted => "ABORTED",
            EmbeddingError::AllProvidersFailed(_) => "ALL_PROVIDERS_FAILED",
        }
    }

    /// Whether the same provider may succeed on a later try.
    pub fn class(&self) -> ErrorClass {
        match self {
            EmbeddingError::Http { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Retryable
            }
            EmbeddingError::Network { .. } | EmbeddingError::Timeout { .. } => {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Fatal,
        }
    }
}
