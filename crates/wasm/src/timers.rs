//! Waiting between slices of long work and between retries, with the `setTimeout` the module
//! found when it was imported (`js/timers.js`).

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/js/timers.js")]
extern "C" {
    #[cfg(feature = "embedding")]
    #[wasm_bindgen(js_name = sleep)]
    fn sleep_promise(ms: f64, signal: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = nextTurn)]
    fn next_turn_promise() -> Promise;
}

/// Resolves on the next macrotask (`setTimeout(…, 0)`), so the page can paint and handle input.
pub(crate) async fn next_turn() {
    let _ = JsFuture::from(next_turn_promise()).await;
}

/// Resolves after `ms` milliseconds, or at once when `signal` (an `AbortSignal`, or undefined)
/// aborts.
#[cfg(feature = "embedding")]
pub(crate) async fn sleep(ms: f64, signal: &JsValue) {
    let _ = JsFuture::from(sleep_promise(ms, signal)).await;
}
