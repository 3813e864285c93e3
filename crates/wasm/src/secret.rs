//! Randomness, constant-time comparison and `SecureBuffer`.

use chrysalis_crypto::{self as crypto, LockedSecret};
use wasm_bindgen::prelude::*;

use crate::error::{JsResult, js};

/// `n` secure random bytes (at most 1 MiB).
///
/// @throws {Error} `code: "BAD_LENGTH"` above 1 MiB.
#[wasm_bindgen(js_name = randomBytes)]
pub fn random_bytes(n: usize) -> JsResult<Vec<u8>> {
    crypto::random_bytes(n).map_err(js)
}

/// Compares two byte arrays in time that depends only on their lengths.
#[wasm_bindgen(js_name = constantTimeEqual)]
pub fn constant_time_equal(a: &[u8], b: &[u8]) -> bool {
    crypto::constant_time_eq(a, b)
}

/// Secret bytes held in wasm memory, zeroized on `free()` / dispose (and when collected).
/// `toString()` and `toJSON()` never show them; `expose()` returns a copy on purpose.
#[wasm_bindgen]
pub struct SecureBuffer {
    secret: LockedSecret<Vec<u8>>,
}

#[wasm_bindgen]
impl SecureBuffer {
    /// Takes a copy of `bytes` into wasm memory. The caller's array is left as it is: wipe it
    /// with `bytes.fill(0)` if it should not linger.
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: Vec<u8>) -> SecureBuffer {
        SecureBuffer {
            secret: LockedSecret::from_vec(bytes),
        }
    }

    /// `n` secure random bytes that never exist outside wasm memory.
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` above 1 MiB.
    pub fn random(n: usize) -> JsResult<SecureBuffer> {
        Ok(SecureBuffer::new(crypto::random_bytes(n).map_err(js)?))
    }

    /// The number of secret bytes.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.secret.len()
    }

    /// A copy of the secret bytes, for the moment they must leave wasm memory.
    pub fn expose(&self) -> Vec<u8> {
        self.secret.expose().clone()
    }

    /// Constant-time comparison with bytes.
    pub fn equals(&self, other: &[u8]) -> bool {
        self.secret.ct_eq(other)
    }

    /// `"SecureBuffer(<n> bytes, redacted)"`.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        format!("SecureBuffer({} bytes, redacted)", self.secret.len())
    }

    /// `"[REDACTED]"`, so `JSON.stringify` never leaks the bytes.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> String {
        "[REDACTED]".into()
    }
}
