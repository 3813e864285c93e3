//! The security context of Chrysalis: API keys, session keys with rotation and storage keys,
//! held in memory that is wiped on lock or drop, with a passphrase-sealed, versioned vault export.
//!
//! Plain Rust over `chrysalis-crypto` (AES-256-GCM, scrypt, zeroizing secrets); persistence in
//! IndexedDB is the JS face's job and only ever sees the sealed vault.

mod context;
mod envelope;
mod error;
mod vault;

pub use context::{
    DEFAULT_RETAINED_SESSION_KEYS, SecurityConfig, SecurityContext, Unlocking, default_api_origin,
};
pub use envelope::ENVELOPE_VERSION;
pub use error::SecurityError;
pub use vault::{
    DEFAULT_VAULT_LOG_N, MAX_VAULT_LEN, VAULT_LOG_N_RANGE, VAULT_VERSION, check_vault_len,
};
