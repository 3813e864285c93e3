//! Wycheproof vectors (AES-GCM, Ed25519, HMAC-SHA-256, HKDF-SHA-256) and RFC 7914 scrypt.

use chrysalis_crypto::{
    ScryptParams, aes_gcm_decrypt, aes_gcm_encrypt, ed25519_verify, hkdf_sha256,
    hmac_sha256_verify, scrypt,
};
use serde_json::Value;

fn load(json: &str) -> Vec<(Value, Value)> {
    let doc: Value = serde_json::from_str(json).unwrap();
    let mut tests = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            tests.push((group.clone(), test.clone()));
        }
    }
    assert_eq!(tests.len() as u64, doc["numberOfTests"].as_u64().unwrap());
    tests
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn wycheproof_aes_gcm() {
    let tests = load(include_str!("vectors/wycheproof/aes_gcm_test.json"));
    let (mut valid, mut invalid, mut bad_length) = (0, 0, 0);
    for (group, t) in &tests {
        let id = &t["tcId"];
        let (key, iv, aad, msg) = (
            bytes(&t["key"]),
            bytes(&t["iv"]),
            bytes(&t["aad"]),
            bytes(&t["msg"]),
        );
        let mut ct_tag = bytes(&t["ct"]);
        ct_tag.extend(bytes(&t["tag"]));
        if group["ivSize"].as_u64() != Some(96) {
            assert_eq!(
                aes_gcm_encrypt(&key, &iv, &msg, &aad).unwrap_err().code(),
                "BAD_LENGTH",
                "tc {id}"
            );
            assert_eq!(
                aes_gcm_decrypt(&key, &iv, &ct_tag, &aad)
                    .unwrap_err()
                    .code(),
                "BAD_LENGTH",
                "tc {id}"
            );
            bad_length += 1;
        } else if t["result"] == "valid" {
            assert_eq!(
                aes_gcm_encrypt(&key, &iv, &msg, &aad).unwrap(),
                ct_tag,
                "tc {id}"
            );
            assert_eq!(
                aes_gcm_decrypt(&key, &iv, &ct_tag, &aad).unwrap(),
                msg,
                "tc {id}"
            );
            valid += 1;
        } else {
            assert_eq!(
                aes_gcm_decrypt(&key, &iv, &ct_tag, &aad)
                    .unwrap_err()
                    .code(),
                "AUTH_FAILED",
                "tc {id}"
            );
            invalid += 1;
        }
    }
    println!(
        "Wycheproof AES-GCM: {} vectors: {valid} valid, {invalid} invalid rejected with AUTH_FAILED, {bad_length} non-96-bit nonces rejected with BAD_LENGTH",
        tests.len()
    );
    assert_eq!(tests.len(), 316);
}

#[test]
fn wycheproof_ed25519() {
    let tests = load(include_str!("vectors/wycheproof/ed25519_test.json"));
    let (mut valid, mut invalid) = (0, 0);
    for (group, t) in &tests {
        let pk = bytes(&group["publicKey"]["pk"]);
        let ok = ed25519_verify(&pk, &bytes(&t["msg"]), &bytes(&t["sig"]));
        assert_eq!(
            ok,
            t["result"] == "valid",
            "tc {} ({})",
            t["tcId"],
            t["comment"]
        );
        if ok { valid += 1 } else { invalid += 1 }
    }
    println!(
        "Wycheproof Ed25519: {} vectors: {valid} valid, {invalid} rejected",
        tests.len()
    );
    assert_eq!(tests.len(), 151);
}

#[test]
fn wycheproof_hmac_sha256() {
    let tests = load(include_str!("vectors/wycheproof/hmac_sha256_test.json"));
    for (_, t) in &tests {
        let ok =
            hmac_sha256_verify(&bytes(&t["key"]), &bytes(&t["msg"]), &bytes(&t["tag"])).unwrap();
        assert_eq!(ok, t["result"] == "valid", "tc {}", t["tcId"]);
    }
    println!("Wycheproof HMAC-SHA-256: {} vectors passed", tests.len());
}

#[test]
fn wycheproof_hkdf_sha256() {
    let tests = load(include_str!("vectors/wycheproof/hkdf_sha256_test.json"));
    for (_, t) in &tests {
        let size = t["size"].as_u64().unwrap() as usize;
        let out = hkdf_sha256(
            &bytes(&t["ikm"]),
            &bytes(&t["salt"]),
            &bytes(&t["info"]),
            size,
        );
        if t["result"] == "valid" {
            assert_eq!(out.unwrap(), bytes(&t["okm"]), "tc {}", t["tcId"]);
        } else {
            assert_eq!(out.unwrap_err().code(), "BAD_LENGTH", "tc {}", t["tcId"]);
        }
    }
    println!("Wycheproof HKDF-SHA-256: {} vectors passed", tests.len());
}

/// RFC 7914 §12. The last vector needs 1 GiB and runs in about a second optimised.
#[test]
fn rfc7914_scrypt() {
    let cases: [(&str, &str, u8, u32, u32, &str); 4] = [
        (
            "",
            "",
            4,
            1,
            1,
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906",
        ),
        (
            "password",
            "NaCl",
            10,
            8,
            16,
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
        ),
        (
            "pleaseletmein",
            "SodiumChloride",
            14,
            8,
            1,
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887",
        ),
        (
            "pleaseletmein",
            "SodiumChloride",
            20,
            8,
            1,
            "2101cb9b6a511aaeaddbbe09cf70f881ec568d574a2ffd4dabe5ee9820adaa478e56fd8f4ba5d09ffa1c6d927c40f4c337304049e8a952fbcbf45c6fa77a41a4",
        ),
    ];
    for (password, salt, log_n, r, p, expected) in cases {
        let params = ScryptParams::new(log_n, r, p, 64).unwrap();
        assert_eq!(
            hex::encode(scrypt(password.as_bytes(), salt.as_bytes(), &params)),
            expected,
            "N=2^{log_n}"
        );
    }
    println!("RFC 7914 scrypt: {} vectors passed", cases.len());
}
