//! AES-GCM (96-bit nonces) and `seal` / `open` with a random nonce in front.

use chrysalis_crypto as crypto;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::error::{JsResult, js};

/// AES-GCM encryption under a 16-, 24- or 32-byte `key` and a 12-byte `nonce`; returns
/// ciphertext ‖ 16-byte tag. Never reuse a nonce with a key: prefer `seal`.
///
/// @throws {Error} `code: "BAD_LENGTH"` for a bad key or nonce length.
#[wasm_bindgen(js_name = aesGcmEncrypt)]
pub fn aes_gcm_encrypt(
    key: Vec<u8>,
    nonce: &[u8],
    plaintext: &[u8],
    aad: Option<Vec<u8>>,
) -> JsResult<Vec<u8>> {
    let key = Zeroizing::new(key);
    crypto::aes_gcm_encrypt(&key, nonce, plaintext, aad.as_deref().unwrap_or_default()).map_err(js)
}

/// AES-GCM decryption of ciphertext ‖ tag.
///
/// @throws {Error} `code: "AUTH_FAILED"` when the key, nonce, AAD or data do not match; `"BAD_LENGTH"` for bad lengths.
#[wasm_bindgen(js_name = aesGcmDecrypt)]
pub fn aes_gcm_decrypt(
    key: Vec<u8>,
    nonce: &[u8],
    ciphertext: &[u8],
    aad: Option<Vec<u8>>,
) -> JsResult<Vec<u8>> {
    let key = Zeroizing::new(key);
    crypto::aes_gcm_decrypt(&key, nonce, ciphertext, aad.as_deref().unwrap_or_default()).map_err(js)
}

/// Encrypts with a fresh random nonce: returns nonce (12) ‖ ciphertext ‖ tag (16).
///
/// @throws {Error} `code: "BAD_LENGTH"` for a bad key length.
#[wasm_bindgen]
pub fn seal(key: Vec<u8>, plaintext: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
    let key = Zeroizing::new(key);
    crypto::seal(&key, plaintext, aad.as_deref().unwrap_or_default()).map_err(js)
}

/// Opens what `seal` produced.
///
/// @throws {Error} `code: "AUTH_FAILED"` for a wrong key or AAD or modified data; `"BAD_LENGTH"` when too short.
#[wasm_bindgen]
pub fn open(key: Vec<u8>, sealed: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
    let key = Zeroizing::new(key);
    crypto::open(&key, sealed, aad.as_deref().unwrap_or_default()).map_err(js)
}

/// An AES-GCM key expanded once for many messages (like a WebCrypto `CryptoKey`, but
/// synchronous). The key lives in wasm memory and is zeroized on `free()` / dispose.
#[wasm_bindgen]
pub struct AesGcm {
    key: crypto::AesGcmKey,
}

#[wasm_bindgen]
impl AesGcm {
    /// Expands a 16-, 24- or 32-byte key.
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` for another key length.
    #[wasm_bindgen(constructor)]
    pub fn new(key: Vec<u8>) -> JsResult<AesGcm> {
        let key = Zeroizing::new(key);
        Ok(AesGcm {
            key: crypto::AesGcmKey::new(&key).map_err(js)?,
        })
    }

    /// Encrypts with a 12-byte `nonce`; returns ciphertext ‖ tag. Never reuse a nonce.
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` for a bad nonce length.
    pub fn encrypt(
        &self,
        nonce: &[u8],
        plaintext: &[u8],
        aad: Option<Vec<u8>>,
    ) -> JsResult<Vec<u8>> {
        self.key
            .encrypt(nonce, plaintext, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Decrypts ciphertext ‖ tag.
    ///
    /// @throws {Error} `code: "AUTH_FAILED"` when anything does not match; `"BAD_LENGTH"` for bad lengths.
    pub fn decrypt(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: Option<Vec<u8>>,
    ) -> JsResult<Vec<u8>> {
        self.key
            .decrypt(nonce, ciphertext, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Encrypts with a random nonce: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
        self.key
            .seal(plaintext, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// Opens what `seal` produced.
    ///
    /// @throws {Error} `code: "AUTH_FAILED"` or `"BAD_LENGTH"`.
    pub fn open(&self, sealed: &[u8], aad: Option<Vec<u8>>) -> JsResult<Vec<u8>> {
        self.key
            .open(sealed, aad.as_deref().unwrap_or_default())
            .map_err(js)
    }

    /// `"AesGcm(redacted)"`: the key never appears.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        "AesGcm(redacted)".into()
    }
}
