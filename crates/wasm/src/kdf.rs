//! MACs and key derivation: HMAC-SHA-256, HKDF-SHA-256, scrypt (sync and sliced async).

use chrysalis_crypto::{self as crypto, ScryptJob, ScryptParams};
use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};
use zeroize::Zeroizing;

use crate::{
    error::{CodedError, JsResult, js},
    input::{bytes_or_text, integer_option, option, or_undefined},
};

/// HMAC-SHA-256 of `data` under `key` (any length); 32-byte tag.
#[wasm_bindgen(js_name = hmacSha256)]
pub fn hmac_sha256(key: Vec<u8>, data: &[u8]) -> Vec<u8> {
    let key = Zeroizing::new(key);
    crypto::hmac_sha256(&key, data).to_vec()
}

/// HKDF-SHA-256 (RFC 5869): `length` bytes (1 to 8160) from `ikm`, `salt` (may be empty) and `info`.
///
/// @throws {Error} `code: "BAD_LENGTH"` when `length` is out of range.
#[wasm_bindgen(js_name = hkdfSha256)]
pub fn hkdf_sha256(ikm: Vec<u8>, salt: &[u8], info: &[u8], length: usize) -> JsResult<Vec<u8>> {
    let ikm = Zeroizing::new(ikm);
    crypto::hkdf_sha256(&ikm, salt, info, length).map_err(js)
}

#[wasm_bindgen(typescript_custom_section)]
const SCRYPT_TS: &str = r#"
/** scrypt cost parameters. Defaults: `logN` 15, `r` 8, `p` 1, `dkLen` 32. Memory is 128·r·2^logN bytes (at most 1 GiB). */
export interface ScryptOptions {
  /** log2 of the CPU/memory cost N (1 to 30). */
  logN?: number;
  /** Block size. */
  r?: number;
  /** Parallelism. */
  p?: number;
  /** Derived key length in bytes (1 to 1 MiB). */
  dkLen?: number;
}

/** Progress and cancellation for long work. */
export interface ProgressControl {
  /** Called with the fraction done, from 0 to 1. */
  onProgress?: (fraction: number) => void;
  /** Aborting rejects the promise with an Error whose `code` is `"ABORTED"`. */
  signal?: AbortSignal;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// The `ScryptOptions` object type declared above.
    #[wasm_bindgen(typescript_type = "ScryptOptions")]
    pub type ScryptOptions;
    /// The `ProgressControl` object type declared above.
    #[wasm_bindgen(typescript_type = "ProgressControl")]
    pub type ProgressControl;
}

fn scrypt_params(options: &JsValue) -> Result<ScryptParams, CodedError> {
    let small = |name: &str, default: u64, max: u64| -> Result<u64, CodedError> {
        let value = integer_option(options, name, default)?;
        if value > max {
            return Err(CodedError::new(
                "BAD_PARAMS",
                format!("bad parameter {name}: must be at most {max}, got {value}"),
            ));
        }
        Ok(value)
    };
    let log_n = small("logN", 15, 255)? as u8;
    let r = small("r", 8, u64::from(u32::MAX))? as u32;
    let p = small("p", 1, u64::from(u32::MAX))? as u32;
    let dk_len = small("dkLen", 32, usize::MAX as u64)? as usize;
    Ok(ScryptParams::new(log_n, r, p, dk_len)?)
}

/// scrypt (RFC 7914) of `password` and `salt` (bytes or UTF-8 text). Blocks until done; use
/// `scryptAsync` in a page for costly parameters.
///
/// @throws {Error} `code: "BAD_PARAMS"` or `"BAD_LENGTH"` for parameters out of range.
#[wasm_bindgen]
pub fn scrypt(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | string")] password: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | string")] salt: JsValue,
    options: Option<ScryptOptions>,
) -> JsResult<Vec<u8>> {
    let params = scrypt_params(&or_undefined(options))?;
    let password = bytes_or_text(&password, "password")?;
    let salt = bytes_or_text(&salt, "salt")?;
    Ok(crypto::scrypt(&password, &salt, &params).to_vec())
}

/// How long one slice of sliced work may run before yielding to the page.
const SLICE_MS: f64 = 12.0;
/// Steps between clock reads inside a slice.
const STEPS_PER_CHECK: u64 = 32;

/// scrypt without freezing the page: runs in slices of about 12 ms, yielding to the event loop
/// between them, reporting progress and honouring an `AbortSignal`.
///
/// @throws {Error} `code: "ABORTED"` when the signal aborts; `"BAD_PARAMS"` / `"BAD_LENGTH"` for bad parameters; `"BAD_ARGUMENT"` for an `onProgress` that is not a function.
#[wasm_bindgen(js_name = scryptAsync, unchecked_return_type = "Uint8Array")]
pub async fn scrypt_async(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | string")] password: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array | string")] salt: JsValue,
    options: Option<ScryptOptions>,
    control: Option<ProgressControl>,
) -> JsResult<JsValue> {
    let params = scrypt_params(&or_undefined(options))?;
    let control = SliceControl::new(&or_undefined(control))?;
    let password = bytes_or_text(&password, "password")?;
    let salt = bytes_or_text(&salt, "salt")?;
    let mut job = ScryptJob::new(&password, &salt, &params);
    run_in_slices(&mut job, &control).await?;
    Ok(Uint8Array::from(&job.finish()[..]).into())
}

/// A `ProgressControl` read once: its `onProgress` callback and its `signal`.
pub(crate) struct SliceControl {
    on_progress: Option<Function>,
    signal: JsValue,
}

impl SliceControl {
    /// Reads `control` (undefined: neither); fails with `BAD_ARGUMENT` for an `onProgress` that
    /// is not a function, and with `ABORTED` for a signal aborted already.
    pub(crate) fn new(control: &JsValue) -> Result<Self, CodedError> {
        let on_progress = option(control, "onProgress")?;
        let on_progress =
            if on_progress.is_undefined() {
                None
            } else {
                Some(on_progress.dyn_into::<Function>().map_err(|_| {
                    CodedError::bad_argument("option onProgress must be a function")
                })?)
            };
        let signal = option(control, "signal")?;
        check_aborted(&signal)?;
        Ok(SliceControl {
            on_progress,
            signal,
        })
    }
}

/// Work that runs a bounded number of steps at a time.
pub(crate) trait Resumable {
    /// Runs at most `max_steps` steps; returns whether the work is done.
    fn run(&mut self, max_steps: u64) -> bool;
    /// The fraction done, from 0 to 1.
    fn progress(&self) -> f64;
}

impl Resumable for ScryptJob {
    fn run(&mut self, max_steps: u64) -> bool {
        ScryptJob::run(self, max_steps)
    }

    fn progress(&self) -> f64 {
        self.done_steps() as f64 / self.total_steps() as f64
    }
}

/// Runs `work` on this thread in slices of about 12 ms, yielding to the event loop between
/// them; before each slice it checks `control`'s signal (`ABORTED`), after each it reports
/// progress to its `onProgress`.
pub(crate) async fn run_in_slices(
    work: &mut impl Resumable,
    control: &SliceControl,
) -> JsResult<()> {
    let SliceControl {
        on_progress,
        signal,
    } = control;
    loop {
        check_aborted(signal)?;
        let start = js_sys::Date::now();
        let mut done = work.run(STEPS_PER_CHECK);
        while !done && js_sys::Date::now() - start < SLICE_MS {
            done = work.run(STEPS_PER_CHECK);
        }
        if let Some(callback) = on_progress {
            callback.call1(&JsValue::UNDEFINED, &work.progress().into())?;
        }
        if done {
            return Ok(());
        }
        crate::timers::next_turn().await;
    }
}

/// Fails with `ABORTED` when `signal` is an aborted `AbortSignal`.
pub(crate) fn check_aborted(signal: &JsValue) -> Result<(), CodedError> {
    if signal.is_object() && Reflect::get(signal, &"aborted".into()).is_ok_and(|v| v.is_truthy()) {
        return Err(CodedError::new(
            "ABORTED",
            "the operation was aborted by its AbortSignal",
        ));
    }
    Ok(())
}
