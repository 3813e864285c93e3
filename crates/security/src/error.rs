//! The one error type of this crate.

use chrysalis_crypto::CryptoError;

/// Everything that can go wrong in a [`SecurityContext`](crate::SecurityContext).
///
/// Messages name what was wrong (a session id, a provider, a key id) but never a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// The context was locked with `lock()`; nothing can be used any more.
    #[error("the security context is locked")]
    Locked,
    /// A wrong passphrase or key, or data that was modified.
    #[error("authentication failed: {0}")]
    AuthFailed(&'static str),
    /// Bytes that are not a vault or envelope of a known version, or are truncated.
    #[error("bad format of {what}: {reason}")]
    BadFormat {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A vault asks for a key-derivation cost this SDK never writes (and so refuses to run).
    #[error(
        "the vault asks for scrypt logN = {log_n}, r = {r}, p = {p}; vaults use r = 8, p = 1 and logN {} to {}, so it was refused without running scrypt",
        crate::VAULT_LOG_N_RANGE.start(),
        crate::VAULT_LOG_N_RANGE.end()
    )]
    BadKdfParams {
        /// The `logN` in the blob.
        log_n: u8,
        /// The `r` in the blob.
        r: u32,
        /// The `p` in the blob.
        p: u32,
    },
    /// Data encrypted under a session key generation that has since been deleted.
    #[error("session {session:?} key generation {generation} is retired (oldest kept: {oldest})")]
    KeyRetired {
        /// The session.
        session: String,
        /// The generation the data was encrypted under.
        generation: u32,
        /// The oldest generation still kept.
        oldest: u32,
    },
    /// No session keys exist for this id.
    #[error("unknown session {0:?}")]
    UnknownSession(String),
    /// An envelope names a key id this context does not have.
    #[error("no {what} key with id {id}")]
    KeyNotFound {
        /// "storage" or "session".
        what: &'static str,
        /// The missing id or generation.
        id: u32,
    },
    /// No API key is stored for this provider.
    #[error("no API key stored for {0}")]
    NoApiKey(String),
    /// An API key was to be sent to an origin that is not its provider's API nor allowed.
    #[error("the {provider} API key may not be sent to {origin}")]
    OriginNotAllowed {
        /// The provider.
        provider: String,
        /// The refused origin.
        origin: String,
    },
    /// An origin for an API key that would send it over plain HTTP to a host that is not
    /// loopback.
    #[error(
        "{origin} would carry the API key over plain HTTP: use https://, or http:// only for localhost, 127.0.0.0/8 or [::1]"
    )]
    InsecureOrigin {
        /// The refused origin.
        origin: String,
    },
    /// A vault blob over [`MAX_VAULT_LEN`](crate::MAX_VAULT_LEN) bytes, to export or to unlock.
    #[error("a vault of {size} bytes is over the {limit}-byte maximum")]
    VaultTooLarge {
        /// The blob's size.
        size: usize,
        /// The maximum.
        limit: usize,
    },
    /// `persist` without a passphrase before any `exportVault` or `unlock` gave the context one.
    #[error("no passphrase: give one, or export or unlock the vault with one first")]
    NoPassphrase,
    /// An error of the crypto layer (bad lengths, bad parameters, bad API-key format, …).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl SecurityError {
    /// The stable machine-readable code (`"LOCKED"`, `"AUTH_FAILED"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            SecurityError::Locked => "LOCKED",
            SecurityError::AuthFailed(_) => "AUTH_FAILED",
            SecurityError::BadFormat { .. } => "BAD_FORMAT",
            SecurityError::BadKdfParams { .. } => "BAD_KDF_PARAMS",
            SecurityError::KeyRetired { .. } => "KEY_RETIRED",
            SecurityError::UnknownSession(_) => "UNKNOWN_SESSION",
            SecurityError::KeyNotFound { .. } => "KEY_NOT_FOUND",
            SecurityError::NoApiKey(_) => "NO_API_KEY",
            SecurityError::NoPassphrase => "NO_PASSPHRASE",
            SecurityError::VaultTooLarge { .. } => "TOO_LARGE",
            SecurityError::OriginNotAllowed { .. } => "ORIGIN_NOT_ALLOWED",
            SecurityError::InsecureOrigin { .. } => "INSECURE_ORIGIN",
            SecurityError::Crypto(err) => err.code(),
        }
    }

    pub(crate) fn bad_format(what: &'static str, reason: impl Into<String>) -> Self {
        SecurityError::BadFormat {
            what,
            reason: reason.into(),
        }
    }
}
