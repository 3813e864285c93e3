//! Every operation and error code of `SecurityContext`, and corruption of every byte of vaults
//! and envelopes (property tests).

use chrysalis_crypto::Provider;
use chrysalis_security::{
    MAX_VAULT_LEN, SecurityConfig, SecurityContext, SecurityError, VAULT_LOG_N_RANGE,
};
use proptest::prelude::*;

const OPENAI_KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
const ANTHROPIC_KEY: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-QRST";
/// The lowest vault cost, so tests stay fast.
const LOG_N: u8 = 10;

fn context() -> SecurityContext {
    SecurityContext::new(SecurityConfig::default()).unwrap()
}

fn code<T: std::fmt::Debug>(result: Result<T, SecurityError>) -> &'static str {
    result.unwrap_err().code()
}

#[test]
fn api_keys_are_stored_checked_listed_redacted_and_removed() {
    let mut ctx = context();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    ctx.store_api_key(Provider::Anthropic, &format!("  {ANTHROPIC_KEY}\n"))
        .unwrap();
    assert_eq!(
        ctx.list_providers().unwrap(),
        vec![Provider::OpenAi, Provider::Anthropic]
    );
    assert!(ctx.has_api_key(Provider::OpenAi).unwrap());
    assert!(!ctx.has_api_key(Provider::Nomic).unwrap());
    assert_eq!(
        ctx.redacted_api_key(Provider::OpenAi).unwrap(),
        "sk-proj-...WXYZ"
    );
    assert_eq!(
        *ctx.get_api_key(Provider::Anthropic).unwrap(),
        ANTHROPIC_KEY
    );
    assert_eq!(
        ctx.with_api_key(Provider::OpenAi, |k| k.len()).unwrap(),
        OPENAI_KEY.len()
    );

    // The format is checked against the named provider; the error never quotes the key.
    let err = ctx
        .store_api_key(Provider::Anthropic, OPENAI_KEY)
        .unwrap_err();
    assert_eq!(err.code(), "BAD_FORMAT");
    assert!(!err.to_string().contains("abcdefghij"), "{err}");

    assert!(ctx.remove_api_key(Provider::OpenAi).unwrap());
    assert!(!ctx.remove_api_key(Provider::OpenAi).unwrap());
    assert_eq!(code(ctx.get_api_key(Provider::OpenAi)), "NO_API_KEY");
    assert_eq!(code(ctx.redacted_api_key(Provider::Google)), "NO_API_KEY");
}

#[test]
fn debug_and_errors_never_contain_a_key() {
    let mut ctx = context();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    let debug = format!("{ctx:?} {ctx:#?}");
    assert!(!debug.contains("abcdefghij"), "{debug}");
    assert!(debug.contains("openai"));
    let vault = ctx.export_vault(b"pw", LOG_N).unwrap();
    for err in [
        SecurityContext::unlock(&vault, b"wrong").unwrap_err(),
        SecurityContext::unlock(&vault[..40], b"pw").unwrap_err(),
        ctx.decrypt_from_storage(&vault, b"").unwrap_err(),
    ] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains("abcdefghij"), "{text}");
    }
    ctx.lock();
    assert_eq!(format!("{ctx:?}"), "SecurityContext { locked }");
}

#[test]
fn vault_round_trips_everything() {
    let mut ctx = SecurityContext::new(SecurityConfig {
        retained_session_keys: 1,
    })
    .unwrap();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    let session_env = ctx.session_encrypt("chat-1", b"hello", b"ad").unwrap();
    let old_storage = ctx.encrypt_for_storage(b"v1", b"").unwrap();
    assert_eq!(ctx.rotate_storage_key().unwrap(), 2);
    let new_storage = ctx.encrypt_for_storage(b"v2", b"").unwrap();

    let vault = ctx.export_vault(b"correct horse", LOG_N).unwrap();
    let restored = SecurityContext::unlock(&vault, b"correct horse").unwrap();
    assert_eq!(*restored.get_api_key(Provider::OpenAi).unwrap(), OPENAI_KEY);
    assert_eq!(
        restored
            .session_decrypt("chat-1", &session_env, b"ad")
            .unwrap(),
        b"hello"
    );
    assert_eq!(
        restored.decrypt_from_storage(&old_storage, b"").unwrap(),
        b"v1"
    );
    assert_eq!(
        restored.decrypt_from_storage(&new_storage, b"").unwrap(),
        b"v2"
    );
    assert_eq!(restored.current_storage_key_id().unwrap(), 2);

    // The restored context remembers the vault key: it can re-seal without the passphrase.
    let resealed = restored.seal_vault().unwrap();
    assert_ne!(resealed, vault, "a fresh nonce each time");
    assert!(SecurityContext::unlock(&resealed, b"correct horse").is_ok());
}

#[test]
fn vault_errors() {
    let mut ctx = context();
    assert_eq!(code(ctx.seal_vault()), "NO_PASSPHRASE");
    assert_eq!(code(ctx.export_vault(b"pw", 9)), "BAD_PARAMS");
    assert_eq!(code(ctx.export_vault(b"pw", 23)), "BAD_PARAMS");
    let vault = ctx.export_vault(b"pw", LOG_N).unwrap();
    assert_eq!(code(SecurityContext::unlock(&vault, b"pW")), "AUTH_FAILED");
    assert_eq!(
        code(SecurityContext::unlock(&vault[..vault.len() - 1], b"pw")),
        "AUTH_FAILED"
    );
    assert_eq!(
        code(SecurityContext::unlock(&vault[..30], b"pw")),
        "BAD_FORMAT"
    );
    assert_eq!(code(SecurityContext::unlock(b"", b"pw")), "BAD_FORMAT");
    let mut other_version = vault.clone();
    other_version[8] = 2;
    let err = SecurityContext::unlock(&other_version, b"pw").unwrap_err();
    assert_eq!(
        (err.code(), err.to_string().contains("version 2")),
        ("BAD_FORMAT", true)
    );
    let mut huge_cost = vault.clone();
    huge_cost[10] = 30;
    assert_eq!(
        code(SecurityContext::unlock(&huge_cost, b"pw")),
        "BAD_KDF_PARAMS",
        "no 1 GiB scrypt for a corrupt blob"
    );
}

/// `unlocking` opens in slices what `unlock` opens at once: the header's errors come before any
/// slice runs, progress grows to 1 in as many slices as the cost asks, and a wrong passphrase
/// fails at `finish`.
#[test]
fn vault_unlocks_in_slices() {
    let mut ctx = context();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    let vault = ctx.export_vault(b"pw", LOG_N).unwrap();
    let mut unlocking = SecurityContext::unlocking(vault.clone(), b"pw").unwrap();
    assert_eq!(unlocking.progress(), 0.0);
    let mut progress = vec![];
    while !unlocking.run(256) {
        progress.push(unlocking.progress());
    }
    // 2·N steps for N = 2^10, 256 at a time: seven unfinished slices, then the last.
    assert_eq!(progress.len(), 7);
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert_eq!(unlocking.progress(), 1.0);
    let opened = unlocking.finish().unwrap();
    assert_eq!(
        opened.get_api_key(Provider::OpenAi).unwrap().as_str(),
        OPENAI_KEY
    );
    // The key derived in slices seals again, as unlock's does.
    assert!(SecurityContext::unlock(&opened.seal_vault().unwrap(), b"pw").is_ok());
    assert_eq!(
        code(SecurityContext::unlocking(vault.clone(), b"pW").and_then(|u| u.finish())),
        "AUTH_FAILED"
    );
    let refused = |blob: &[u8]| code(SecurityContext::unlocking(blob.to_vec(), b"pw").map(|_| ()));
    assert_eq!(refused(&vault[..30]), "BAD_FORMAT");
    assert_eq!(refused(&with_cost(&vault, 21, 4, 16)), "BAD_KDF_PARAMS");
}

/// `vault` with its header's scrypt cost replaced (the header is authenticated data, so a
/// cost that ran would end in AUTH_FAILED, after the work).
fn with_cost(vault: &[u8], log_n: u8, r: u32, p: u32) -> Vec<u8> {
    let mut blob = vault.to_vec();
    blob[10] = log_n;
    blob[11..15].copy_from_slice(&r.to_be_bytes());
    blob[15..19].copy_from_slice(&p.to_be_bytes());
    blob
}

/// A vault may ask only for the scrypt cost `export_vault` writes (r = 8, p = 1, logN in
/// `VAULT_LOG_N_RANGE`); anything else is refused before scrypt runs. The last case (logN 21,
/// r = 4, p = 16: 1 GiB) used to block `unlock` for 42 s before AUTH_FAILED.
#[test]
fn vault_kdf_cost_is_capped_at_what_export_writes() {
    let mut ctx = context();
    let vault = ctx.export_vault(b"pw", LOG_N).unwrap();
    assert_eq!(&vault[10..19], &[LOG_N, 0, 0, 0, 8, 0, 0, 0, 1]);
    for (log_n, r, p) in [
        (LOG_N, 8, 2),
        (LOG_N, 1, 1),
        (LOG_N, 16, 1),
        (LOG_N, 8, 0),
        (LOG_N, 0, 1),
        (9, 8, 1),
        (19, 8, 1),
        (20, 8, 1),
        (LOG_N, 8, u32::MAX),
        (21, 4, 16),
    ] {
        let started = std::time::Instant::now();
        let err = SecurityContext::unlock(&with_cost(&vault, log_n, r, p), b"pw").unwrap_err();
        assert_eq!(
            err.code(),
            "BAD_KDF_PARAMS",
            "logN {log_n}, r {r}, p {p}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("logN = {log_n}, r = {r}, p = {p}")),
            "{message}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "refused before any key derivation"
        );
    }
    // The cost export wrote still opens, and a cheaper one in range runs and fails the tag.
    assert!(SecurityContext::unlock(&vault, b"pw").is_ok());
    assert_eq!(
        code(SecurityContext::unlock(
            &with_cost(&vault, LOG_N + 1, 8, 1),
            b"pw"
        )),
        "AUTH_FAILED"
    );
    // Export offers no more than unlock takes.
    assert_eq!(*VAULT_LOG_N_RANGE.end(), 18);
    assert_eq!(
        code(ctx.export_vault(b"pw", VAULT_LOG_N_RANGE.end() + 1)),
        "BAD_PARAMS"
    );
}

/// A vault blob is bounded: export refuses to write one over `MAX_VAULT_LEN` and unlock refuses
/// to read one (a blob from storage), before any key derivation.
#[test]
fn vault_size_is_bounded_on_export_and_unlock() {
    let mut ctx = context();
    let vault = ctx.export_vault(b"pw", LOG_N).unwrap();
    let mut huge = vault.clone();
    huge.resize(MAX_VAULT_LEN + 1, 0);
    let started = std::time::Instant::now();
    assert_eq!(code(SecurityContext::unlock(&huge, b"pw")), "TOO_LARGE");
    assert_eq!(
        code(SecurityContext::unlocking(huge, b"pw").map(|_| ())),
        "TOO_LARGE"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    // Sessions named by the application can grow a vault past it: export says so.
    for i in 0..17u8 {
        let name = format!("{i}{}", "s".repeat(1 << 20));
        ctx.session_encrypt(&name, b"x", b"").unwrap();
    }
    assert_eq!(code(ctx.export_vault(b"pw", LOG_N)), "TOO_LARGE");
}

#[test]
fn session_keys_rotate_and_retire() {
    let mut ctx = SecurityContext::new(SecurityConfig {
        retained_session_keys: 2,
    })
    .unwrap();
    assert_eq!(code(ctx.session_decrypt("s", &[0; 64], b"")), "BAD_FORMAT");
    let gen0 = ctx.session_encrypt("s", b"zero", b"").unwrap();
    assert_eq!(
        code(ctx.session_decrypt("nobody", &gen0, b"")),
        "UNKNOWN_SESSION"
    );
    assert_eq!(ctx.rotate_session_key("s").unwrap(), 1);
    let gen1 = ctx.session_encrypt("s", b"one", b"").unwrap();
    assert_eq!(ctx.rotate_session_key("s").unwrap(), 2);
    assert_eq!(
        ctx.session_decrypt("s", &gen0, b"").unwrap(),
        b"zero",
        "2 past generations kept"
    );
    assert_eq!(ctx.rotate_session_key("s").unwrap(), 3);
    let err = ctx.session_decrypt("s", &gen0, b"").unwrap_err();
    assert_eq!(err.code(), "KEY_RETIRED");
    assert_eq!(
        err.to_string(),
        "session \"s\" key generation 0 is retired (oldest kept: 1)"
    );
    assert_eq!(ctx.session_decrypt("s", &gen1, b"").unwrap(), b"one");
    assert_eq!(
        code(ctx.session_decrypt("s", &gen1, b"other aad")),
        "AUTH_FAILED"
    );

    // An envelope of one session does not open in another, even with the same generation.
    let t0 = ctx.session_encrypt("t", b"t", b"").unwrap();
    assert_eq!(code(ctx.session_decrypt("s", &t0, b"")), "KEY_RETIRED");
    ctx.rotate_session_key("t").unwrap();
    ctx.rotate_session_key("t").unwrap();
    ctx.rotate_session_key("t").unwrap();
    let t3 = ctx.session_encrypt("t", b"t3", b"").unwrap();
    assert_eq!(code(ctx.session_decrypt("s", &t3, b"")), "AUTH_FAILED");
    // A generation from the future.
    let mut future = t3.clone();
    future[5..9].copy_from_slice(&9u32.to_be_bytes());
    assert_eq!(
        code(ctx.session_decrypt("t", &future, b"")),
        "KEY_NOT_FOUND"
    );
}

#[test]
fn storage_envelopes_rotate_and_reencrypt() {
    let mut ctx = context();
    let v1 = ctx.encrypt_for_storage(b"data", b"record 7").unwrap();
    assert_eq!(&v1[..5], b"CHSE\x01");
    assert_eq!(u32::from_be_bytes(v1[5..9].try_into().unwrap()), 1);
    assert_eq!(ctx.rotate_storage_key().unwrap(), 2);
    assert_eq!(ctx.decrypt_from_storage(&v1, b"record 7").unwrap(), b"data");
    let moved = ctx.reencrypt(&v1, b"record 7").unwrap();
    assert_eq!(u32::from_be_bytes(moved[5..9].try_into().unwrap()), 2);
    assert_eq!(
        ctx.decrypt_from_storage(&moved, b"record 7").unwrap(),
        b"data"
    );
    assert_eq!(
        code(ctx.decrypt_from_storage(&v1, b"record 8")),
        "AUTH_FAILED"
    );
    let mut unknown = v1.clone();
    unknown[5..9].copy_from_slice(&77u32.to_be_bytes());
    assert_eq!(
        code(ctx.decrypt_from_storage(&unknown, b"record 7")),
        "KEY_NOT_FOUND"
    );
    assert_eq!(code(ctx.decrypt_from_storage(&v1[..20], b"")), "BAD_FORMAT");
    let session_env = ctx.session_encrypt("s", b"x", b"").unwrap();
    assert_eq!(
        code(ctx.decrypt_from_storage(&session_env, b"")),
        "BAD_FORMAT",
        "wrong magic"
    );
}

#[test]
fn lock_wipes_and_refuses_everything() {
    let mut ctx = context();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    let env = ctx.encrypt_for_storage(b"x", b"").unwrap();
    ctx.lock();
    assert!(ctx.is_locked());
    assert_eq!(code(ctx.get_api_key(Provider::OpenAi)), "LOCKED");
    assert_eq!(code(ctx.has_api_key(Provider::OpenAi)), "LOCKED");
    assert_eq!(
        code(ctx.store_api_key(Provider::OpenAi, OPENAI_KEY)),
        "LOCKED"
    );
    assert_eq!(code(ctx.remove_api_key(Provider::OpenAi)), "LOCKED");
    assert_eq!(code(ctx.list_providers()), "LOCKED");
    assert_eq!(code(ctx.redacted_api_key(Provider::OpenAi)), "LOCKED");
    assert_eq!(code(ctx.decrypt_from_storage(&env, b"")), "LOCKED");
    assert_eq!(code(ctx.encrypt_for_storage(b"", b"")), "LOCKED");
    assert_eq!(code(ctx.reencrypt(&env, b"")), "LOCKED");
    assert_eq!(code(ctx.rotate_storage_key()), "LOCKED");
    assert_eq!(code(ctx.current_storage_key_id()), "LOCKED");
    assert_eq!(code(ctx.rotate_session_key("s")), "LOCKED");
    assert_eq!(code(ctx.session_encrypt("s", b"", b"")), "LOCKED");
    assert_eq!(code(ctx.session_decrypt("s", &env, b"")), "LOCKED");
    assert_eq!(code(ctx.export_vault(b"pw", LOG_N)), "LOCKED");
    assert_eq!(code(ctx.seal_vault()), "LOCKED");
}

#[test]
fn master_key_must_be_32_bytes() {
    assert_eq!(
        code(SecurityContext::from_master_key(
            &[0; 31],
            SecurityConfig::default()
        )),
        "BAD_LENGTH"
    );
    assert!(SecurityContext::from_master_key(&[7; 32], SecurityConfig::default()).is_ok());
}

/// One vault, exported once, for the corruption property test (scrypt per case is the cost).
fn sample_vault() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static SAMPLE: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    SAMPLE.get_or_init(|| {
        let mut ctx = context();
        ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
        let storage = ctx
            .encrypt_for_storage(b"some stored record", b"aad")
            .unwrap();
        let session = ctx
            .session_encrypt("s", b"some session message", b"")
            .unwrap();
        let vault = ctx.export_vault(b"pw", LOG_N).unwrap();
        (vault, storage, session)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any change to any byte of an envelope, or any truncation, is a typed error.
    #[test]
    fn corrupt_envelopes_give_typed_errors(index in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<bool>()) {
        // The envelopes are decrypted by the context that made them: rebuild it from the vault.
        let (_, storage, session) = sample_vault();
        thread_local!(static CTX: SecurityContext = SecurityContext::unlock(&sample_vault().0, b"pw").unwrap());
        for (envelope, is_storage) in [(storage, true), (session, false)] {
            let mut bad = envelope.clone();
            if cut {
                bad.truncate(index.index(bad.len()));
            } else {
                let i = index.index(bad.len());
                bad[i] ^= flip;
            }
            let result = CTX.with(|ctx| if is_storage {
                ctx.decrypt_from_storage(&bad, b"aad")
            } else {
                ctx.session_decrypt("s", &bad, b"")
            });
            let code = result.unwrap_err().code();
            prop_assert!(["BAD_FORMAT", "AUTH_FAILED", "KEY_NOT_FOUND", "KEY_RETIRED", "BAD_LENGTH"].contains(&code), "{code}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any change to any byte of a vault, or any truncation, is BAD_FORMAT, BAD_KDF_PARAMS (a
    /// changed scrypt cost) or AUTH_FAILED.
    #[test]
    fn corrupt_vaults_give_typed_errors(index in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<bool>()) {
        let mut bad = sample_vault().0.clone();
        let i = index.index(bad.len());
        if cut { bad.truncate(i) } else { bad[i] ^= flip }
        let code = SecurityContext::unlock(&bad, b"pw").unwrap_err().code();
        prop_assert!(matches!(code, "BAD_FORMAT" | "AUTH_FAILED" | "BAD_KDF_PARAMS"), "{code}");
    }

    /// Arbitrary bytes never panic any decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let ctx = context();
        prop_assert!(ctx.decrypt_from_storage(&bytes, b"").is_err());
        prop_assert!(ctx.session_decrypt("s", &bytes, b"").is_err());
        prop_assert!(SecurityContext::unlock(&bytes, b"pw").is_err());
    }
}

#[test]
fn api_keys_go_only_to_allowed_origins() {
    let mut ctx = SecurityContext::new(SecurityConfig::default()).unwrap();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    let header = ctx
        .authorization_for(Provider::OpenAi, "https://api.openai.com")
        .unwrap();
    assert_eq!(header.as_str(), format!("Bearer {OPENAI_KEY}"));
    let refused = ctx
        .authorization_for(Provider::OpenAi, "https://evil.example")
        .unwrap_err();
    assert_eq!(refused.code(), "ORIGIN_NOT_ALLOWED");
    assert!(!refused.to_string().contains(OPENAI_KEY));
    // The Nomic origin is not OpenAI's.
    assert!(!ctx.api_origin_allowed(Provider::OpenAi, "https://api-atlas.nomic.ai"));
    ctx.allow_api_origin(Provider::OpenAi, "http://127.0.0.1:9000/")
        .unwrap();
    assert!(ctx.api_origin_allowed(Provider::OpenAi, "http://127.0.0.1:9000"));
    assert!(!ctx.api_origin_allowed(Provider::Nomic, "http://127.0.0.1:9000"));
    for bad in [
        "127.0.0.1:9000",
        "http://",
        "https://a.example/path",
        "https://u@a.example",
    ] {
        assert_eq!(
            ctx.allow_api_origin(Provider::OpenAi, bad)
                .unwrap_err()
                .code(),
            "BAD_FORMAT",
            "{bad}"
        );
    }
    assert_eq!(
        ctx.authorization_for(Provider::Nomic, "https://api-atlas.nomic.ai")
            .unwrap_err()
            .code(),
        "NO_API_KEY"
    );
    ctx.lock();
    assert_eq!(
        ctx.authorization_for(Provider::OpenAi, "https://api.openai.com")
            .unwrap_err()
            .code(),
        "LOCKED"
    );
}

/// A key may go over plain HTTP only to a loopback host; everything else needs https.
#[test]
fn allowed_origins_are_https_or_loopback() {
    let mut ctx = SecurityContext::new(SecurityConfig::default()).unwrap();
    ctx.store_api_key(Provider::OpenAi, OPENAI_KEY).unwrap();
    for ok in [
        "https://proxy.example",
        "https://proxy.example:8443",
        "http://127.0.0.1:9000",
        "http://127.255.0.7",
        "http://localhost:8080",
        "http://LOCALHOST",
        "http://[::1]:8080",
        "http://[::1]",
    ] {
        ctx.allow_api_origin(Provider::OpenAi, ok)
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(ctx.api_origin_allowed(Provider::OpenAi, ok), "{ok}");
    }
    for insecure in [
        "http://proxy.example",
        "http://api.openai.com",
        "http://10.0.0.1:9000",
        "http://128.0.0.1",
        "http://0.0.0.0:9000",
        "http://127.1",
        "http://0x7f.0.0.1",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "http://[::2]:80",
        "http://[::ffff:127.0.0.1]",
    ] {
        let err = ctx
            .allow_api_origin(Provider::OpenAi, insecure)
            .unwrap_err();
        assert_eq!(err.code(), "INSECURE_ORIGIN", "{insecure}");
        assert!(err.to_string().contains(insecure), "{err}");
        assert!(
            !ctx.api_origin_allowed(Provider::OpenAi, insecure),
            "{insecure}"
        );
        assert_eq!(
            ctx.authorization_for(Provider::OpenAi, insecure)
                .unwrap_err()
                .code(),
            "ORIGIN_NOT_ALLOWED"
        );
    }
    for malformed in [
        "ftp://proxy.example",
        "ws://127.0.0.1",
        "https://a\\b.example",
        "http://localhost:port",
        "http://localhost:99999",
        "https://proxy.example:",
        "http://[::1]x",
        "http://[::1",
        "https://:443",
    ] {
        assert_eq!(
            ctx.allow_api_origin(Provider::OpenAi, malformed)
                .unwrap_err()
                .code(),
            "BAD_FORMAT",
            "{malformed}"
        );
    }
}

#[test]
fn api_origins_lists_the_default_then_the_allowed() {
    let mut ctx = SecurityContext::new(SecurityConfig::default()).unwrap();
    ctx.allow_api_origin(Provider::OpenAi, "http://127.0.0.1:9000")
        .unwrap();
    let openai: Vec<&str> = ctx.api_origins(Provider::OpenAi).collect();
    assert_eq!(openai, ["https://api.openai.com", "http://127.0.0.1:9000"]);
    for origin in &openai {
        assert!(ctx.api_origin_allowed(Provider::OpenAi, origin));
    }
    assert_eq!(ctx.api_origins(Provider::Unknown).count(), 0);
}
