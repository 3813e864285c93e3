//! Mapping of crate errors to JS `Error`s with a stable `code` property.

use wasm_bindgen::JsValue;

/// A crate error reduced to what crosses into JS: a stable code, a message, and for
/// certificate errors the index of the failing certificate.
pub(crate) struct CodedError {
    code: &'static str,
    message: String,
    index: Option<usize>,
}

impl CodedError {
    /// An error with `code` and `message`.
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        CodedError {
            code,
            message: message.into(),
            index: None,
        }
    }

    /// The error for a bad argument type or shape (`BAD_ARGUMENT`).
    pub(crate) fn bad_argument(message: impl Into<String>) -> Self {
        Self::new("BAD_ARGUMENT", message)
    }
}

impl From<CodedError> for JsValue {
    fn from(err: CodedError) -> JsValue {
        let error = js_sys::Error::new(&err.message);
        // Setting properties on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&error, &"code".into(), &err.code.into());
        if let Some(index) = err.index {
            let _ = js_sys::Reflect::set(&error, &"index".into(), &(index as f64).into());
        }
        error.into()
    }
}

impl From<chrysalis_crypto::CryptoError> for CodedError {
    fn from(err: chrysalis_crypto::CryptoError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

#[cfg(any(feature = "crypto", feature = "embedding"))]
impl From<chrysalis_embedding::EmbeddingError> for CodedError {
    fn from(err: chrysalis_embedding::EmbeddingError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

#[cfg(feature = "x509")]
impl From<chrysalis_x509::CertError> for CodedError {
    fn from(err: chrysalis_x509::CertError) -> Self {
        CodedError {
            code: err.code(),
            message: err.to_string(),
            index: Some(err.index),
        }
    }
}

/// `Result` whose error converts into a JS `Error`.
pub(crate) type JsResult<T> = Result<T, JsValue>;

/// Converts any crate error into the JS error value.
pub(crate) fn js<E: Into<CodedError>>(err: E) -> JsValue {
    err.into().into()
}
