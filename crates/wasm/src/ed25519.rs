//! Ed25519: the `SigningKey` class and strict verification.

use chrysalis_crypto as crypto;
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::error::{JsResult, js};

/// An Ed25519 signing key held in wasm memory (zeroized on `free()` / dispose).
#[wasm_bindgen]
pub struct SigningKey {
    inner: crypto::SigningKey,
}

impl SigningKey {
    /// The seed, for another part of this crate that signs as the same identity.
    pub(crate) fn seed(&self) -> Zeroizing<[u8; crypto::ED25519_SEED_LEN]> {
        self.inner.seed()
    }
}

#[wasm_bindgen]
impl SigningKey {
    /// A new random key (from `crypto.getRandomValues`).
    pub fn generate() -> JsResult<SigningKey> {
        Ok(SigningKey {
            inner: crypto::SigningKey::generate().map_err(js)?,
        })
    }

    /// The key with the given 32-byte seed (RFC 8032 private key).
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` unless `seed` is 32 bytes.
    #[wasm_bindgen(js_name = fromSeed)]
    pub fn from_seed(seed: Vec<u8>) -> JsResult<SigningKey> {
        let seed = Zeroizing::new(seed);
        Ok(SigningKey {
            inner: crypto::SigningKey::from_seed(&seed).map_err(js)?,
        })
    }

    /// The 32-byte public key.
    #[wasm_bindgen(js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.inner.public_key().to_vec()
    }

    /// The 64-byte signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.inner.sign(message).to_vec()
    }

    /// The 32-byte seed, to store the key elsewhere. Treat the result as a secret.
    #[wasm_bindgen(js_name = exportSeed)]
    pub fn export_seed(&self) -> Vec<u8> {
        self.inner.seed().to_vec()
    }

    /// `"SigningKey(<public key hex>)"`; the secret never appears.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        let hex: String = self
            .inner
            .public_key()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("SigningKey({hex})")
    }

    /// JSON form: only the public key, as hex.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsValue {
        self.to_js_string().into()
    }
}

/// Strict Ed25519 verification: `true` only for a valid signature. Rejects non-canonical
/// encodings and small-order keys or `R`; wrong lengths give `false`.
#[wasm_bindgen(js_name = ed25519Verify)]
pub fn ed25519_verify(
    #[wasm_bindgen(js_name = publicKey)] public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    crypto::ed25519_verify(public_key, message, signature)
}

/// Verifies many signatures; `true` exactly when `ed25519Verify` accepts every one of them
/// (each is verified on its own, so batch and single verification always agree).
///
/// @throws {Error} `code: "BAD_PARAMS"` when the three arrays differ in length.
#[wasm_bindgen(js_name = ed25519VerifyBatch)]
pub fn ed25519_verify_batch(
    #[wasm_bindgen(js_name = publicKeys)] public_keys: Vec<Uint8Array>,
    messages: Vec<Uint8Array>,
    signatures: Vec<Uint8Array>,
) -> JsResult<bool> {
    let to_vecs =
        |arrays: Vec<Uint8Array>| arrays.iter().map(Uint8Array::to_vec).collect::<Vec<_>>();
    let (keys, msgs, sigs) = (to_vecs(public_keys), to_vecs(messages), to_vecs(signatures));
    crypto::ed25519_verify_batch(&slices(&keys), &slices(&msgs), &slices(&sigs)).map_err(js)
}

fn slices(vecs: &[Vec<u8>]) -> Vec<&[u8]> {
    vecs.iter().map(Vec::as_slice).collect()
}
