//! Known-answer tests: the official BLAKE3 vectors and the FIPS 180-4 / FIPS 202 examples.

use chrysalis_crypto::{HashAlgorithm, blake3, blake3_derive_key, blake3_keyed, digest};
use serde_json::Value;

const BLAKE3_VECTORS: &str = include_str!("vectors/blake3/test_vectors.json");

/// The BLAKE3 vectors' input: the repeating byte sequence 0, 1, …, 250.
fn blake3_input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn blake3_official_vectors() {
    let doc: Value = serde_json::from_str(BLAKE3_VECTORS).unwrap();
    let key = doc["key"].as_str().unwrap().as_bytes();
    let context = doc["context_string"].as_str().unwrap();
    let cases = doc["cases"].as_array().unwrap();
    for case in cases {
        let len = case["input_len"].as_u64().unwrap() as usize;
        let input = blake3_input(len);
        let hash = hex::decode(case["hash"].as_str().unwrap()).unwrap();
        let keyed = hex::decode(case["keyed_hash"].as_str().unwrap()).unwrap();
        let derived = hex::decode(case["derive_key"].as_str().unwrap()).unwrap();

        assert_eq!(blake3(&input, hash.len()).unwrap(), hash, "hash, len {len}");
        assert_eq!(
            digest(HashAlgorithm::Blake3, &input),
            hash[..32],
            "default, len {len}"
        );
        assert_eq!(
            blake3_keyed(key, &input).unwrap(),
            keyed[..32],
            "keyed, len {len}"
        );
        assert_eq!(
            blake3_derive_key(context, &input),
            derived[..32],
            "derive, len {len}"
        );
    }
    println!(
        "BLAKE3 official vectors: {} cases x 4 checks passed",
        cases.len()
    );
    assert_eq!(cases.len(), 35);
}

/// The "abc" and two-block examples of FIPS 180-4 and FIPS 202 (NIST CSRC example values).
#[test]
fn fips_examples() {
    let two_block_224 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    let two_block_448 = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    let cases: [(HashAlgorithm, &[u8], &str); 10] = [
        (
            HashAlgorithm::Sha256,
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            HashAlgorithm::Sha256,
            two_block_224,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            HashAlgorithm::Sha384,
            b"abc",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            HashAlgorithm::Sha384,
            two_block_448,
            "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039",
        ),
        (
            HashAlgorithm::Sha512,
            b"abc",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
        (
            HashAlgorithm::Sha512,
            two_block_448,
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
        ),
        (
            HashAlgorithm::Sha3_256,
            b"abc",
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
        ),
        (
            HashAlgorithm::Sha3_256,
            b"",
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
        ),
        (
            HashAlgorithm::Sha3_512,
            b"abc",
            "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
        ),
        (
            HashAlgorithm::Sha3_512,
            b"",
            "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a615b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26",
        ),
    ];
    for (alg, input, expected) in cases {
        assert_eq!(
            hex::encode(digest(alg, input)),
            expected,
            "{alg} of {input:?}"
        );
    }
    // The one-million-'a' example exercises many blocks.
    let million_a = vec![b'a'; 1_000_000];
    assert_eq!(
        hex::encode(digest(HashAlgorithm::Sha256, &million_a)),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
    println!("FIPS 180-4 / 202 examples: {} passed", cases.len() + 1);
}
