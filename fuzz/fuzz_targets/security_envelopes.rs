#![no_main]
//! Opens arbitrary bytes as storage and session envelopes and as a vault header: typed errors only.
use chrysalis_security::{SecurityConfig, SecurityContext};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static CONTEXT: OnceLock<std::sync::Mutex<SecurityContext>> = OnceLock::new();
    let context = CONTEXT.get_or_init(|| std::sync::Mutex::new(SecurityContext::new(SecurityConfig::default()).unwrap()));
    let mut context = context.lock().unwrap();
    assert!(context.decrypt_from_storage(data, b"").is_err());
    let _ = context.session_encrypt("s", b"x", b"");
    assert!(context.session_decrypt("s", data, b"").is_err());
    // A vault whose header asks for more than the cheapest scrypt is cut to the header checks.
    if data.len() > 10 && data[10] <= 10 {
        let _ = SecurityContext::unlock(data, b"pw");
    } else {
        let mut cheap = data.to_vec();
        if cheap.len() > 10 {
            cheap[10] = 40; // out of range: rejected before any key derivation
        }
        assert!(SecurityContext::unlock(&cheap, b"pw").is_err());
    }
});
