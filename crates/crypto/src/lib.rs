//! Cryptographic building blocks for Chrysalis.
//!
//! Plain Rust over well-kept crates (RustCrypto, `blake3`, `ed25519-dalek`): it
//! builds for `wasm32-unknown-unknown` and for the host, and knows nothing of JavaScript. The JS
//! face lives in `chrysalis-wasm`. Secrets live in zeroize-on-drop types that never print.

mod aead;
mod api_key;
mod ed25519;
mod error;
mod hash;
mod mac;
mod random;
mod scrypt;
mod secret;

pub use aead::{
    AES_GCM_NONCE_LEN, AES_GCM_TAG_LEN, AesGcmKey, aes_gcm_decrypt, aes_gcm_encrypt, open, seal,
};
pub use api_key::{API_KEY_MAX_LEN, ApiKey, Provider, redact_api_keys, validate_api_key_format};
pub use ed25519::{
    ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN, ED25519_SIGNATURE_LEN, SigningKey, ed25519_verify,
    ed25519_verify_batch,
};
pub use error::CryptoError;
pub use hash::{
    BLAKE3_MAX_OUTPUT, HashAlgorithm, Hasher, blake3, blake3_derive_key, blake3_keyed, digest,
};
pub use mac::{HKDF_SHA256_MAX_OUTPUT, hkdf_sha256, hmac_sha256, hmac_sha256_verify};
pub use random::{MAX_RANDOM_BYTES, constant_time_eq, fill_random, random_array, random_bytes};
pub use scrypt::{SCRYPT_MAX_MEMORY, SCRYPT_MAX_OUTPUT, ScryptJob, ScryptParams, scrypt};
pub use secret::{LockedSecret, STACK_SCRUB_BYTES, scrub_stack};
