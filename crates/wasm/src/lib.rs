//! The JavaScript face of Chrysalis.
//!
//! This is the only crate that uses `#[wasm_bindgen]`: it converts between JS values and the
//! plain-Rust crates, and maps each crate's error to a JS `Error` with a stable `code`.
//! Everything exported here appears in the npm package `chrysalis-sdk`. Secret inputs (keys,
//! seeds, passwords) are taken as owned buffers and wiped after use.
//!
//! The crate builds one wasm module per feature: `crypto` (the core module: crypto, the
//! security context, the CRDTs and vector comparison), `x509` (certificate validation) and
//! `embedding` (the embedding service with the in-page model); the last two are loaded on
//! demand because each outweighs the core.

mod error;
mod input;

#[cfg(feature = "crypto")]
mod aead;
#[cfg(feature = "crypto")]
mod api_key;
#[cfg(feature = "crypto")]
mod crdt;
#[cfg(feature = "crypto")]
mod ed25519;
#[cfg(feature = "embedding")]
mod embedding;
#[cfg(feature = "embedding")]
mod embedding_pool;
#[cfg(feature = "crypto")]
mod hash;
#[cfg(feature = "crypto")]
mod kdf;
#[cfg(feature = "crypto")]
mod memory;
#[cfg(feature = "crypto")]
mod secret;
#[cfg(feature = "crypto")]
mod security;
#[cfg(feature = "crypto")]
mod sync;
#[cfg(any(feature = "crypto", feature = "embedding"))]
mod timers;
#[cfg(feature = "crypto")]
mod vault_worker;
#[cfg(feature = "crypto")]
mod vector;
#[cfg(feature = "x509")]
mod x509;

#[cfg(feature = "embedding")]
pub use embedding::*;
#[cfg(feature = "embedding")]
pub use embedding_pool::EmbeddingWorker;

#[cfg(feature = "x509")]
pub use x509::*;
#[cfg(feature = "crypto")]
pub use {
    aead::*, api_key::*, crdt::*, ed25519::*, hash::*, kdf::*, secret::*, security::*, sync::*,
    vault_worker::*, vector::*,
};

use wasm_bindgen::prelude::*;

/// The version of the Chrysalis SDK (the crate version, e.g. `"0.1.0"`).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
