//! X.509 certificate chain validation.

use chrysalis_x509::{self as x509, ChainOptions};
use js_sys::{Array, Date, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};
use x509_cert::Certificate;

use crate::{
    error::{CodedError, JsResult, js},
    input::{option, or_undefined},
};

#[wasm_bindgen(typescript_custom_section)]
const CERT_TS: &str = r#"
/** One certificate (DER bytes or PEM text), a PEM bundle, or a list of them. */
export type CertificateInput = Uint8Array | string | Array<Uint8Array | string>;

/** Options of `validateCertChain`. */
export interface CertChainOptions {
  /** Validation time (default: now). */
  atTime?: Date | number;
  /** The DNS name or IP address the leaf must be valid for. */
  hostname?: string;
}

/** What `validateCertChain` found in a valid chain. */
export interface CertChainInfo {
  /** The leaf's subject, e.g. `"CN=api.example.com"`. */
  leafSubject: string;
  /** The subject of the trust anchor the chain ends at. */
  anchorSubject: string;
  /** Certificates in the path, leaf and anchor included. */
  pathLength: number;
  /** The earliest expiry along the path. */
  notAfter: Date;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// The `CertChainOptions` object type declared above.
    #[wasm_bindgen(typescript_type = "CertChainOptions")]
    pub type CertChainOptions;
}

fn certificates(input: &JsValue, what: &str) -> Result<Vec<Certificate>, CodedError> {
    let mut out = Vec::new();
    let items: Vec<JsValue> = if Array::is_array(input) {
        input.unchecked_ref::<Array>().iter().collect()
    } else {
        vec![input.clone()]
    };
    for (position, item) in items.into_iter().enumerate() {
        let bytes = if let Some(text) = item.as_string() {
            text.into_bytes()
        } else if let Some(array) = item.dyn_ref::<Uint8Array>() {
            array.to_vec()
        } else {
            return Err(CodedError::bad_argument(format!(
                "{what} must be PEM text, DER bytes (Uint8Array) or an array of them"
            )));
        };
        let parsed = x509::parse_certificates(&bytes).map_err(|mut err| {
            err.index = out.len();
            err.detail = format!("{what}[{position}]: {}", err.detail);
            err
        })?;
        out.extend(parsed);
    }
    Ok(out)
}

/// Validates `chain` (leaf first, then intermediates) up to one of `trustAnchors`: signatures
/// (Ed25519, ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS with SHA-256/384), validity windows,
/// CA basic constraints, key usage, path length, issuer/subject chaining and, with `hostname`,
/// the leaf's subjectAltName. Revocation is not checked.
///
/// @throws {Error} with `code` (`CERT_EXPIRED`, `CERT_NOT_YET_VALID`, `CERT_BAD_SIGNATURE`,
/// `CERT_ISSUER_MISMATCH`, `CERT_NOT_CA`, `CERT_PATH_TOO_LONG`, `CERT_HOSTNAME_MISMATCH`,
/// `CERT_UNTRUSTED`, `CERT_UNSUPPORTED_ALGORITHM`, `CERT_UNKNOWN_CRITICAL_EXTENSION`,
/// `CERT_EMPTY_CHAIN`, `BAD_FORMAT`) and `index`, the failing certificate (0 = leaf).
#[wasm_bindgen(js_name = validateCertChain, unchecked_return_type = "CertChainInfo")]
pub fn validate_cert_chain(
    #[wasm_bindgen(unchecked_param_type = "CertificateInput")] chain: JsValue,
    #[wasm_bindgen(js_name = trustAnchors, unchecked_param_type = "CertificateInput")]
    trust_anchors: JsValue,
    options: Option<CertChainOptions>,
) -> JsResult<JsValue> {
    let chain = certificates(&chain, "chain")?;
    let anchors = certificates(&trust_anchors, "trustAnchors")?;
    let options = or_undefined(options);
    let at_time = option(&options, "atTime")?;
    let at_ms = if at_time.is_undefined() {
        Date::now()
    } else if let Some(date) = at_time.dyn_ref::<Date>() {
        date.get_time()
    } else {
        at_time.as_f64().ok_or_else(|| {
            CodedError::bad_argument("atTime must be a Date or milliseconds since the epoch")
        })?
    };
    if !at_ms.is_finite() || at_ms < 0.0 {
        return Err(CodedError::bad_argument("atTime must be a valid time after 1970").into());
    }
    let hostname = option(&options, "hostname")?.as_string();
    let info = x509::validate_cert_chain(
        &chain,
        &anchors,
        &ChainOptions {
            at_unix_secs: (at_ms / 1000.0) as u64,
            hostname,
        },
    )
    .map_err(js)?;
    let object = Object::new();
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&object, &key.into(), &value);
    };
    set("leafSubject", info.leaf_subject.into());
    set("anchorSubject", info.anchor_subject.into());
    set("pathLength", (info.path_len as f64).into());
    set(
        "notAfter",
        Date::new(&((info.not_after_unix_secs as f64) * 1000.0).into()).into(),
    );
    Ok(object.into())
}
