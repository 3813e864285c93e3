//! wasm-bindgen-test suite that runs inside headless Chromium.
//!
//! It calls the exported (`#[wasm_bindgen]`) functions of `chrysalis-wasm` and touches the DOM
//! to prove it runs in a real page, not in Node.
#![cfg(target_arch = "wasm32")]

use chrysalis_wasm::{Hasher, blake3, blake3_keyed, sha256, version};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn error_code(err: &JsValue) -> String {
    js_sys::Reflect::get(err, &"code".into())
        .unwrap()
        .as_string()
        .unwrap_or_default()
}

#[wasm_bindgen_test]
fn runs_in_a_page_and_writes_to_the_dom() {
    let window = web_sys::window().expect("a browser window");
    let document = window.document().expect("a document");
    let element = document.create_element("output").unwrap();
    element.set_id("sdk-version");
    element.set_text_content(Some(&format!("chrysalis {}", version())));
    document.body().unwrap().append_child(&element).unwrap();

    let found = document.get_element_by_id("sdk-version").unwrap();
    assert_eq!(
        found.text_content().unwrap(),
        format!("chrysalis {}", env!("CARGO_PKG_VERSION"))
    );
    let user_agent = window.navigator().user_agent().unwrap();
    assert!(user_agent.contains("Chrom"), "user agent was {user_agent}");
}

#[wasm_bindgen_test]
fn sha256_matches_fips_example() {
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[wasm_bindgen_test]
fn streaming_hasher_matches_one_shot() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut hasher = Hasher::new("blake3").unwrap();
    for chunk in data.chunks(777) {
        hasher.update(chunk);
    }
    assert_eq!(hasher.digest(), blake3(&data, None).unwrap());
    assert_eq!(hasher.algorithm(), "blake3");
}

#[wasm_bindgen_test]
fn errors_are_js_errors_with_stable_codes() {
    let err = Hasher::new("md5").err().expect("md5 is rejected");
    assert!(err.is_instance_of::<js_sys::Error>());
    assert_eq!(error_code(&err), "UNKNOWN_ALGORITHM");

    let err = blake3_keyed(&[1, 2, 3], b"data").unwrap_err();
    assert_eq!(error_code(&err), "BAD_LENGTH");
    let message: String = err.unchecked_ref::<js_sys::Error>().message().into();
    assert!(message.contains("BLAKE3 key"), "message was {message}");
}
