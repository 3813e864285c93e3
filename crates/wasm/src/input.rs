//! Reading JS option objects.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::error::CodedError;

/// Property `name` of an options object (`undefined` when the object is absent).
pub(crate) fn option(options: &JsValue, name: &str) -> Result<JsValue, CodedError> {
    if options.is_undefined() || options.is_null() {
        return Ok(JsValue::UNDEFINED);
    }
    if !options.is_object() {
        return Err(CodedError::bad_argument("options must be an object"));
    }
    Reflect::get(options, &name.into())
        .map_err(|_| CodedError::bad_argument(format!("cannot read option {name}")))
}
