//! One-shot and streaming hashes: SHA-2, SHA-3 and BLAKE3.

use std::{fmt, str::FromStr};

use sha2::Digest as _;

use crate::CryptoError;

/// The largest BLAKE3 output this crate hands out in one call (64 KiB).
///
/// BLAKE3 is an XOF and could produce more, but a bound keeps a typo in `outLen` from
/// allocating gigabytes in a page.
pub const BLAKE3_MAX_OUTPUT: usize = 65_536;

const ALGORITHM_NAMES: &str = "sha256, sha384, sha512, sha3-256, sha3-512, blake3";

/// A hash algorithm that [`digest`] and [`Hasher`] support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256 (FIPS 180-4), 32-byte output.
    Sha256,
    /// SHA-384 (FIPS 180-4), 48-byte output.
    Sha384,
    /// SHA-512 (FIPS 180-4), 64-byte output.
    Sha512,
    /// SHA3-256 (FIPS 202), 32-byte output.
    Sha3_256,
    /// SHA3-512 (FIPS 202), 64-byte output.
    Sha3_512,
    /// BLAKE3, 32-byte default output.
    Blake3,
}

impl HashAlgorithm {
    /// Every supported algorithm, in a fixed order.
    pub const ALL: [HashAlgorithm; 6] = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha3_256,
        HashAlgorithm::Sha3_512,
        HashAlgorithm::Blake3,
    ];

    /// The canonical name (`"sha256"`, `"sha3-256"`, `"blake3"`, …), as accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
            HashAlgorithm::Sha3_256 => "sha3-256",
            HashAlgorithm::Sha3_512 => "sha3-512",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    /// The digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 | HashAlgorithm::Sha3_256 | HashAlgorithm::Blake3 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 | HashAlgorithm::Sha3_512 => 64,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = CryptoError;

    /// Parses a name case-insensitively; `"sha-256"` and `"sha3_256"` spellings are accepted too.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let normalised: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        match normalised.as_str() {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha384" => Ok(HashAlgorithm::Sha384),
            "sha512" => Ok(HashAlgorithm::Sha512),
            "sha3256" => Ok(HashAlgorithm::Sha3_256),
            "sha3512" => Ok(HashAlgorithm::Sha3_512),
            "blake3" => Ok(HashAlgorithm::Blake3),
            _ => Err(CryptoError::UnknownAlgorithm {
                name: name.to_owned(),
                expected: ALGORITHM_NAMES,
            }),
        }
    }
}

/// Hashes `data` in one shot with `algorithm`.
pub fn digest(algorithm: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finalize()
}

/// BLAKE3 of `data` with an output of `out_len` bytes (1 to [`BLAKE3_MAX_OUTPUT`]).
pub fn blake3(data: &[u8], out_len: usize) -> Result<Vec<u8>, CryptoError> {
    check_blake3_output_len(out_len)?;
    let mut out = vec![0u8; out_len];
    blake3::Hasher::new()
        .update(data)
        .finalize_xof()
        .fill(&mut out);
    Ok(out)
}

/// Keyed BLAKE3 (a MAC / PRF) of `data` under a 32-byte `key`; 32-byte output.
pub fn blake3_keyed(key: &[u8], data: &[u8]) -> Result<[u8; 32], CryptoError> {
    let key: &[u8; 32] = key.try_into().map_err(|_| CryptoError::BadLength {
        what: "BLAKE3 key",
        expected: "32".into(),
        actual: key.len(),
    })?;
    Ok(*blake3::keyed_hash(key, data).as_bytes())
}

/// BLAKE3 key derivation: a 32-byte key for `context` (a fixed, application-specific
/// string) from `material`.
pub fn blake3_derive_key(context: &str, material: &[u8]) -> [u8; 32] {
    blake3::derive_key(context, material)
}

fn check_blake3_output_len(out_len: usize) -> Result<(), CryptoError> {
    if (1..=BLAKE3_MAX_OUTPUT).contains(&out_len) {
        Ok(())
    } else {
        Err(CryptoError::BadLength {
            what: "BLAKE3 output",
            expected: format!("1 to {BLAKE3_MAX_OUTPUT}"),
            actual: out_len,
        })
    }
}

/// A streaming hash: feed chunks with [`update`](Hasher::update), then
/// [`finalize`](Hasher::finalize). Equal to [`digest`] for any chunking.
#[derive(Clone)]
pub struct Hasher {
    state: State,
}

#[derive(Clone)]
enum State {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Sha3_256(sha3::Sha3_256),
    Sha3_512(sha3::Sha3_512),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: HashAlgorithm) -> Self {
        let state = match algorithm {
            HashAlgorithm::Sha256 => State::Sha256(Default::default()),
            HashAlgorithm::Sha384 => State::Sha384(Default::default()),
            HashAlgorithm::Sha512 => State::Sha512(Default::default()),
            HashAlgorithm::Sha3_256 => State::Sha3_256(Default::default()),
            HashAlgorithm::Sha3_512 => State::Sha3_512(Default::default()),
            HashAlgorithm::Blake3 => State::Blake3(Box::default()),
        };
        Hasher { state }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> HashAlgorithm {
        match self.state {
            State::Sha256(_) => HashAlgorithm::Sha256,
            State::Sha384(_) => HashAlgorithm::Sha384,
            State::Sha512(_) => HashAlgorithm::Sha512,
            State::Sha3_256(_) => HashAlgorithm::Sha3_256,
            State::Sha3_512(_) => HashAlgorithm::Sha3_512,
            State::Blake3(_) => HashAlgorithm::Blake3,
        }
    }

    /// Absorbs `chunk`.
    pub fn update(&mut self, chunk: &[u8]) -> &mut Self {
        match &mut self.state {
            State::Sha256(h) => h.update(chunk),
            State::Sha384(h) => h.update(chunk),
            State::Sha512(h) => h.update(chunk),
            State::Sha3_256(h) => h.update(chunk),
            State::Sha3_512(h) => h.update(chunk),
            State::Blake3(h) => {
                h.update(chunk);
            }
        }
        self
    }

    /// The digest of everything absorbed so far; the hasher can keep absorbing afterwards.
    pub fn finalize(&self) -> Vec<u8> {
        match &self.state {
            State::Sha256(h) => h.clone().finalize().to_vec(),
            State::Sha384(h) => h.clone().finalize().to_vec(),
            State::Sha512(h) => h.clone().finalize().to_vec(),
            State::Sha3_256(h) => h.clone().finalize().to_vec(),
            State::Sha3_512(h) => h.clone().finalize().to_vec(),
            State::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip_and_accept_common_spellings() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(alg.name().parse::<HashAlgorithm>().unwrap(), alg);
        }
        assert_eq!(
            "SHA-256".parse::<HashAlgorithm>().unwrap(),
            HashAlgorithm::Sha256
        );
        assert_eq!(
            "sha3_512".parse::<HashAlgorithm>().unwrap(),
            HashAlgorithm::Sha3_512
        );
        let err = "md5".parse::<HashAlgorithm>().unwrap_err();
        assert_eq!(err.code(), "UNKNOWN_ALGORITHM");
        assert!(err.to_string().contains("\"md5\""));
    }

    #[test]
    fn output_lengths_match_the_algorithm() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(digest(alg, b"abc").len(), alg.output_len(), "{alg}");
        }
    }

    #[test]
    fn blake3_rejects_out_of_range_lengths_and_keys() {
        assert_eq!(blake3(b"", 0).unwrap_err().code(), "BAD_LENGTH");
        assert_eq!(
            blake3(b"", BLAKE3_MAX_OUTPUT + 1).unwrap_err().code(),
            "BAD_LENGTH"
        );
        assert_eq!(blake3(b"x", 100).unwrap().len(), 100);
        let err = blake3_keyed(&[0u8; 31], b"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "BLAKE3 key must be 32 bytes, got 31",
            "the message names the input and both lengths"
        );
    }

    #[test]
    fn blake3_extended_output_starts_with_the_default_output() {
        let short = blake3(b"chrysalis", 32).unwrap();
        let long = blake3(b"chrysalis", 131).unwrap();
        assert_eq!(&long[..32], &short[..]);
        assert_eq!(short, digest(HashAlgorithm::Blake3, b"chrysalis"));
    }

    #[test]
    fn finalize_does_not_consume_the_stream() {
        let mut h = Hasher::new(HashAlgorithm::Sha256);
        h.update(b"ab");
        let _ = h.finalize();
        h.update(b"c");
        assert_eq!(h.finalize(), digest(HashAlgorithm::Sha256, b"abc"));
    }

    proptest! {
        #[test]
        fn streaming_equals_one_shot(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            alg in prop::sample::select(HashAlgorithm::ALL.to_vec()),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut h = Hasher::new(alg);
            let mut start = 0;
            for p in points.into_iter().chain([data.len()]) {
                h.update(&data[start..p]);
                start = p;
            }
            prop_assert_eq!(h.finalize(), digest(alg, &data));
        }
    }
}
