//! Mapping of crate errors to JS `Error`s with a stable `code` property.

use wasm_bindgen::JsValue;

/// Builds a JS `Error` whose `code` property is `code` and whose message is `message`.
pub(crate) fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

impl From<CodedError> for JsValue {
    fn from(err: CodedError) -> JsValue {
        js_error(err.code, &err.message)
    }
}

/// A crate error reduced to what crosses into JS: a stable code and a message.
pub(crate) struct CodedError {
    code: &'static str,
    message: String,
}

impl From<chrysalis_crypto::CryptoError> for CodedError {
    fn from(err: chrysalis_crypto::CryptoError) -> Self {
        CodedError {
            code: err.code(),
            message: err.to_string(),
        }
    }
}
