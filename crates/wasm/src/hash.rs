//! Hashes: one-shot functions and the streaming `Hasher` class.

use chrysalis_crypto::{self as crypto, HashAlgorithm};
use wasm_bindgen::prelude::*;

use crate::error::{JsResult, js};

/// SHA-256 of `data` (32 bytes).
#[wasm_bindgen]
pub fn sha256(data: &[u8]) -> Vec<u8> {
    crypto::digest(HashAlgorithm::Sha256, data)
}

/// SHA-384 of `data` (48 bytes).
#[wasm_bindgen]
pub fn sha384(data: &[u8]) -> Vec<u8> {
    crypto::digest(HashAlgorithm::Sha384, data)
}

/// SHA-512 of `data` (64 bytes).
#[wasm_bindgen]
pub fn sha512(data: &[u8]) -> Vec<u8> {
    crypto::digest(HashAlgorithm::Sha512, data)
}

/// SHA3-256 of `data` (32 bytes).
#[wasm_bindgen]
pub fn sha3_256(data: &[u8]) -> Vec<u8> {
    crypto::digest(HashAlgorithm::Sha3_256, data)
}

/// SHA3-512 of `data` (64 bytes).
#[wasm_bindgen]
pub fn sha3_512(data: &[u8]) -> Vec<u8> {
    crypto::digest(HashAlgorithm::Sha3_512, data)
}

/// BLAKE3 of `data`, `outLen` bytes long (default 32, at most 65536).
///
/// @throws {Error} `code: "BAD_LENGTH"` when `outLen` is 0 or above 65536.
#[wasm_bindgen]
pub fn blake3(
    data: &[u8],
    #[wasm_bindgen(js_name = outLen)] out_len: Option<usize>,
) -> JsResult<Vec<u8>> {
    crypto::blake3(data, out_len.unwrap_or(32)).map_err(js)
}

/// Keyed BLAKE3 (MAC / PRF) of `data` under a 32-byte `key`; 32-byte output.
///
/// @throws {Error} `code: "BAD_LENGTH"` when `key` is not 32 bytes.
#[wasm_bindgen(js_name = blake3Keyed)]
pub fn blake3_keyed(key: &[u8], data: &[u8]) -> JsResult<Vec<u8>> {
    crypto::blake3_keyed(key, data)
        .map(|out| out.to_vec())
        .map_err(js)
}

/// BLAKE3 key derivation: a 32-byte key for `context` (a fixed, application-specific string)
/// from `material`.
#[wasm_bindgen(js_name = blake3DeriveKey)]
pub fn blake3_derive_key(context: &str, material: &[u8]) -> Vec<u8> {
    crypto::blake3_derive_key(context, material).to_vec()
}

#[wasm_bindgen(typescript_custom_section)]
const HASHER_UPDATE_TS: &str = r#"
export interface Hasher {
  /** Absorbs `chunk` and returns this hasher, so calls chain. */
  update(chunk: Uint8Array): this;
}
"#;

/// A streaming hash. `new Hasher("sha256")`, then `.update(chunk)` any number of times
/// (calls chain), then `.digest()`. The result equals the one-shot function's for any chunking.
#[wasm_bindgen]
pub struct Hasher {
    inner: crypto::Hasher,
}

#[wasm_bindgen]
impl Hasher {
    /// A hasher for `algorithm`: `"sha256" | "sha384" | "sha512" | "sha3-256" | "sha3-512" | "blake3"`.
    ///
    /// @throws {Error} `code: "UNKNOWN_ALGORITHM"` for any other name.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(
            unchecked_param_type = "\"sha256\" | \"sha384\" | \"sha512\" | \"sha3-256\" | \"sha3-512\" | \"blake3\""
        )]
        algorithm: &str,
    ) -> JsResult<Hasher> {
        let algorithm: HashAlgorithm = algorithm.parse().map_err(js)?;
        Ok(Hasher {
            inner: crypto::Hasher::new(algorithm),
        })
    }

    /// The canonical name of this hasher's algorithm.
    #[wasm_bindgen(getter)]
    pub fn algorithm(&self) -> String {
        self.inner.algorithm().name().to_owned()
    }

    /// Absorbs `chunk`. The package entry (`pkg/index.js`) wraps this method so that it
    /// returns the hasher and calls chain; its type is declared in `HASHER_UPDATE_TS`.
    #[wasm_bindgen(skip_typescript)]
    pub fn update(&mut self, chunk: &[u8]) {
        self.inner.update(chunk);
    }

    /// The digest of everything absorbed so far; more chunks may follow.
    pub fn digest(&self) -> Vec<u8> {
        self.inner.finalize()
    }
}
