//! The JavaScript face of Chrysalis.
//!
//! This is the only crate that uses `#[wasm_bindgen]`: it converts between JS values and the
//! plain-Rust crates, and maps each crate's error to a JS `Error` with a stable `code`.
//! Everything exported here appears in the npm package `chrysalis-sdk`. Secret inputs (keys,
//! seeds, passwords) are taken as owned buffers and wiped after use.

mod aead;
mod api_key;
mod cert;
mod ed25519;
mod error;
mod hash;
mod input;
mod kdf;
mod secret;

pub use aead::*;
pub use api_key::*;
pub use cert::*;
pub use ed25519::*;
pub use hash::*;
pub use kdf::*;
pub use secret::*;

use wasm_bindgen::prelude::*;

/// The version of the Chrysalis SDK (the crate version, e.g. `"0.1.0"`).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
