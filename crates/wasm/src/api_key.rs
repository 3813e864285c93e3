//! API keys: recognise the provider, validate the format, redact — never reveal.

use chrysalis_crypto::{self as crypto, Provider};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::error::{CodedError, JsResult, js};

#[wasm_bindgen(typescript_custom_section)]
const API_KEY_TS: &str = r#"
/** A provider whose API-key format Chrysalis knows. */
export type ApiKeyProvider = "openai" | "anthropic" | "nomic" | "cohere" | "google" | "unknown";

/** The verdict of `validateApiKeyFormat`. */
export interface ApiKeyValidation {
  /** Whether the format is right. */
  valid: boolean;
  /** The provider the key belongs to (when valid). */
  provider?: ApiKeyProvider;
  /** Why the format is wrong (when not valid); never contains the key. */
  reason?: string;
}
"#;

/// An API key held in wasm memory. Only its provider and redacted form (`sk-...abcd`) are
/// readable; `toString`, `toJSON` and errors never contain the key.
#[wasm_bindgen]
pub struct ApiKey {
    inner: crypto::ApiKey,
}

#[wasm_bindgen]
impl ApiKey {
    /// Parses `text` (surrounding whitespace ignored) and recognises the provider.
    ///
    /// @throws {Error} `code: "BAD_FORMAT"` with a reason that does not quote the key.
    pub fn parse(text: String) -> JsResult<ApiKey> {
        let text = Zeroizing::new(text);
        Ok(ApiKey {
            inner: crypto::ApiKey::parse(&text).map_err(js)?,
        })
    }

    /// The provider the key belongs to.
    #[wasm_bindgen(getter, unchecked_return_type = "ApiKeyProvider")]
    pub fn provider(&self) -> String {
        self.inner.provider().name().to_owned()
    }

    /// A form safe to show or log, e.g. `"sk-...abcd"`.
    pub fn redacted(&self) -> String {
        self.inner.redacted()
    }

    /// `"ApiKey(<provider>, <redacted>)"`.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        format!(
            "ApiKey({}, {})",
            self.inner.provider(),
            self.inner.redacted()
        )
    }

    /// `{ provider, key: <redacted> }`.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsValue {
        let object = Object::new();
        let _ = Reflect::set(
            &object,
            &"provider".into(),
            &self.inner.provider().name().into(),
        );
        let _ = Reflect::set(&object, &"key".into(), &self.inner.redacted().into());
        object.into()
    }
}

/// Checks the format of `text`, for `provider` when given; never throws for a bad key.
///
/// @throws {Error} `code: "UNKNOWN_PROVIDER"` only when `provider` is not a known name.
#[wasm_bindgen(js_name = validateApiKeyFormat, unchecked_return_type = "ApiKeyValidation")]
pub fn validate_api_key_format(
    text: String,
    #[wasm_bindgen(unchecked_param_type = "ApiKeyProvider")] provider: Option<String>,
) -> JsResult<JsValue> {
    let text = Zeroizing::new(text);
    let provider = provider
        .map(|name| name.parse::<Provider>())
        .transpose()
        .map_err(|e| js(CodedError::from(e)))?;
    let object = Object::new();
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&object, &key.into(), &value);
    };
    match crypto::validate_api_key_format(&text, provider) {
        Ok(provider) => {
            set("valid", true.into());
            set("provider", provider.name().into());
        }
        Err(reason) => {
            set("valid", false.into());
            set("reason", reason.into());
        }
    }
    Ok(object.into())
}
