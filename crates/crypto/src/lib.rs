//! Cryptographic building blocks for Chrysalis.
//!
//! Plain Rust over well-kept crates (RustCrypto `sha2`/`sha3`, `blake3`): it builds for
//! `wasm32-unknown-unknown` and for the host, and knows nothing of JavaScript. The JS face
//! lives in `chrysalis-wasm`.

mod error;
mod hash;

pub use error::CryptoError;
pub use hash::{
    BLAKE3_MAX_OUTPUT, HashAlgorithm, Hasher, blake3, blake3_derive_key, blake3_keyed, digest,
};
