//! Reading JS arguments: option objects, and bytes given as `Uint8Array` or string.

use js_sys::Reflect;
use wasm_bindgen::JsValue;
#[cfg(feature = "crypto")]
use {js_sys::Uint8Array, wasm_bindgen::JsCast, zeroize::Zeroizing};

use crate::error::CodedError;

/// An optional options argument as a plain JS value (`undefined` when absent).
pub(crate) fn or_undefined<T: Into<JsValue>>(options: Option<T>) -> JsValue {
    options.map_or(JsValue::UNDEFINED, Into::into)
}

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

#[cfg(feature = "crypto")]
/// The bytes of a `Uint8Array`, or the UTF-8 bytes of a string, in a buffer wiped on drop.
pub(crate) fn bytes_or_text(value: &JsValue, what: &str) -> Result<Zeroizing<Vec<u8>>, CodedError> {
    if let Some(text) = value.as_string() {
        Ok(Zeroizing::new(text.into_bytes()))
    } else if let Some(array) = value.dyn_ref::<Uint8Array>() {
        Ok(Zeroizing::new(array.to_vec()))
    } else {
        Err(CodedError::bad_argument(format!(
            "{what} must be a Uint8Array or a string"
        )))
    }
}

#[cfg(any(feature = "crypto", feature = "embedding"))]
/// A non-negative integer option with a default.
pub(crate) fn integer_option(
    options: &JsValue,
    name: &str,
    default: u64,
) -> Result<u64, CodedError> {
    let value = option(options, name)?;
    if value.is_undefined() {
        return Ok(default);
    }
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => Ok(n as u64),
        _ => Err(CodedError::bad_argument(format!(
            "option {name} must be a non-negative integer"
        ))),
    }
}

#[cfg(any(feature = "crypto", feature = "embedding"))]
/// An optional string option.
pub(crate) fn string_option(options: &JsValue, name: &str) -> Result<Option<String>, CodedError> {
    let value = option(options, name)?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .as_string()
        .map(Some)
        .ok_or_else(|| CodedError::bad_argument(format!("option {name} must be a string")))
}

#[cfg(feature = "crypto")]
/// An optional list of strings (absent: empty), at most `max` of them.
pub(crate) fn strings_option(
    options: &JsValue,
    name: &str,
    max: usize,
) -> Result<Vec<String>, CodedError> {
    let value = option(options, name)?;
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let wrong = || CodedError::bad_argument(format!("option {name} must be at most {max} strings"));
    if !js_sys::Array::is_array(&value) {
        return Err(wrong());
    }
    let array = js_sys::Array::from(&value);
    if array.length() as usize > max {
        return Err(wrong());
    }
    array
        .iter()
        .map(|v| v.as_string().ok_or_else(wrong))
        .collect()
}

#[cfg(feature = "crypto")]
/// A boolean option with a default.
pub(crate) fn bool_option(
    options: &JsValue,
    name: &str,
    default: bool,
) -> Result<bool, CodedError> {
    let value = option(options, name)?;
    if value.is_undefined() {
        return Ok(default);
    }
    value
        .as_bool()
        .ok_or_else(|| CodedError::bad_argument(format!("option {name} must be a boolean")))
}

#[cfg(any(feature = "crypto", feature = "embedding"))]
/// A non-negative integer option with a default, as a `usize`.
pub(crate) fn usize_option(
    options: &JsValue,
    name: &str,
    default: usize,
) -> Result<usize, CodedError> {
    Ok(integer_option(options, name, default as u64)?.min(usize::MAX as u64) as usize)
}

#[cfg(any(feature = "crypto", feature = "embedding"))]
/// An `{ key: value, … }` object.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in fields {
        // Setting a property of a fresh plain object cannot fail.
        let _ = Reflect::set(&object, &(*name).into(), value);
    }
    object.into()
}

#[cfg(feature = "crypto")]
/// Counters by error code as a `{ CODE: n }` object.
pub(crate) fn counts(by_code: &std::collections::BTreeMap<&'static str, u64>) -> JsValue {
    let fields: Vec<(&str, JsValue)> = by_code
        .iter()
        .map(|(code, n)| (*code, (*n as f64).into()))
        .collect();
    object(&fields)
}

#[cfg(any(feature = "crypto", feature = "embedding"))]
/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(feature = "crypto")]
/// A `Date.now()` from JS as whole milliseconds (0 for a negative or non-finite value).
pub(crate) fn now_ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}
