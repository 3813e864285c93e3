//! scrypt (RFC 7914) as a resumable job, so a page can run it in slices without freezing.
//!
//! The primitives come from crates: Salsa20/8 from `salsa20`, PBKDF2-HMAC-SHA-256 from `pbkdf2`.
//! This module holds only scrypt's construction (BlockMix and ROMix), split into steps; its
//! output is checked against the `scrypt` crate and the RFC 7914 vectors in the tests.

use salsa20::{
    SalsaCore,
    cipher::{StreamCipherCore, typenum::U4},
};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

/// The most memory one scrypt computation may use for its `V` table: 1 GiB (`128·r·N` bytes).
pub const SCRYPT_MAX_MEMORY: usize = 1 << 30;
/// The longest derived key [`scrypt`] produces in one call (1 MiB).
pub const SCRYPT_MAX_OUTPUT: usize = 1 << 20;

/// scrypt's cost parameters and output length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    log_n: u8,
    r: u32,
    p: u32,
    dk_len: usize,
}

impl ScryptParams {
    /// Checks and builds parameters: `N = 2^log_n` with `1 ≤ log_n ≤ 30`, `r ≥ 1`, `p ≥ 1`,
    /// `r·p < 2^30`, memory `128·r·N ≤ 1 GiB`, and `1 ≤ dk_len ≤ 1 MiB`.
    pub fn new(log_n: u8, r: u32, p: u32, dk_len: usize) -> Result<Self, CryptoError> {
        let bad = |what, reason: String| Err(CryptoError::BadParams { what, reason });
        if !(1..=30).contains(&log_n) {
            return bad("logN", format!("must be 1 to 30, got {log_n}"));
        }
        if r == 0 || p == 0 {
            return bad("r, p", format!("must be at least 1, got r = {r}, p = {p}"));
        }
        if u64::from(r) * u64::from(p) >= 1 << 30 {
            return bad(
                "r, p",
                format!(
                    "r·p must be below 2^30, got {}",
                    u64::from(r) * u64::from(p)
                ),
            );
        }
        let memory = (128u128 * u128::from(r)) << log_n;
        if memory > SCRYPT_MAX_MEMORY as u128 {
            return bad(
                "logN, r",
                format!(
                    "need {memory} bytes of memory (128·r·N); the limit is {SCRYPT_MAX_MEMORY}"
                ),
            );
        }
        if !(1..=SCRYPT_MAX_OUTPUT).contains(&dk_len) {
            return Err(CryptoError::BadLength {
                what: "scrypt output",
                expected: format!("1 to {SCRYPT_MAX_OUTPUT}"),
                actual: dk_len,
            });
        }
        Ok(ScryptParams {
            log_n,
            r,
            p,
            dk_len,
        })
    }

    /// `log2(N)`.
    pub fn log_n(&self) -> u8 {
        self.log_n
    }
    /// The block size parameter `r`.
    pub fn r(&self) -> u32 {
        self.r
    }
    /// The parallelisation parameter `p`.
    pub fn p(&self) -> u32 {
        self.p
    }
    /// The derived key length in bytes.
    pub fn dk_len(&self) -> usize {
        self.dk_len
    }
    fn n(&self) -> usize {
        1 << self.log_n
    }
}

/// scrypt of `password` and `salt` in one call (runs a [`ScryptJob`] to the end).
pub fn scrypt(password: &[u8], salt: &[u8], params: &ScryptParams) -> Zeroizing<Vec<u8>> {
    let mut job = ScryptJob::new(password, salt, params);
    job.run(u64::MAX);
    job.finish()
}

/// A resumable scrypt computation: [`run`](Self::run) a bounded number of steps at a time,
/// then [`finish`](Self::finish). One step is one BlockMix (`2·r` Salsa20/8 cores); the whole
/// job is [`total_steps`](Self::total_steps) = `2·N·p` steps. All intermediate state is
/// zeroized on drop.
pub struct ScryptJob {
    params: ScryptParams,
    password: Zeroizing<Vec<u8>>,
    /// `B` from the first PBKDF2, as little-endian words: `p` lanes of `32·r` words.
    b: Zeroizing<Vec<u32>>,
    /// ROMix's table `V` for the lane being mixed: `N` blocks of `32·r` words.
    v: Zeroizing<Vec<u32>>,
    /// Scratch block for BlockMix.
    scratch: Zeroizing<Vec<u32>>,
    lane: usize,
    /// Position within the lane: `0..N` fills `V`, `N..2N` mixes.
    step: usize,
}

impl ScryptJob {
    /// Starts a job (runs the first PBKDF2 and allocates `V`).
    pub fn new(password: &[u8], salt: &[u8], params: &ScryptParams) -> Self {
        let words = 32 * params.r as usize;
        let mut bytes = Zeroizing::new(vec![0u8; 4 * words * params.p as usize]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, 1, &mut bytes);
        let b: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4-byte chunk")))
            .collect();
        ScryptJob {
            params: *params,
            password: Zeroizing::new(password.to_vec()),
            b: Zeroizing::new(b),
            v: Zeroizing::new(vec![0u32; words * params.n()]),
            scratch: Zeroizing::new(vec![0u32; words]),
            lane: 0,
            step: 0,
        }
    }

    /// Steps in the whole job (`2·N·p`).
    pub fn total_steps(&self) -> u64 {
        2 * self.params.n() as u64 * u64::from(self.params.p)
    }

    /// Steps done so far.
    pub fn done_steps(&self) -> u64 {
        (2 * self.params.n() * self.lane + self.step) as u64
    }

    /// Whether every step has run.
    pub fn is_done(&self) -> bool {
        self.lane == self.params.p as usize
    }

    /// Runs at most `max_steps` steps; returns whether the job is done.
    pub fn run(&mut self, max_steps: u64) -> bool {
        let n = self.params.n();
        let words = 32 * self.params.r as usize;
        let mut budget = max_steps;
        while !self.is_done() && budget > 0 {
            let lane = &mut self.b[self.lane * words..(self.lane + 1) * words];
            if self.step < n {
                // V[i] = X; X = BlockMix(X)
                let i = self.step;
                self.v[i * words..(i + 1) * words].copy_from_slice(lane);
                block_mix(lane, &mut self.scratch);
                lane.copy_from_slice(&self.scratch);
            } else {
                // j = Integerify(X) mod N; X = BlockMix(X xor V[j])
                let j = lane[words - 16] as usize & (n - 1);
                for (x, v) in lane.iter_mut().zip(&self.v[j * words..(j + 1) * words]) {
                    *x ^= v;
                }
                block_mix(lane, &mut self.scratch);
                lane.copy_from_slice(&self.scratch);
            }
            self.step += 1;
            if self.step == 2 * n {
                self.step = 0;
                self.lane += 1;
            }
            budget -= 1;
        }
        self.is_done()
    }

    /// The derived key. Runs any steps that are left first.
    pub fn finish(mut self) -> Zeroizing<Vec<u8>> {
        self.run(u64::MAX);
        let mut bytes = Zeroizing::new(Vec::with_capacity(self.b.len() * 4));
        for word in self.b.iter() {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        let mut out = Zeroizing::new(vec![0u8; self.params.dk_len]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&self.password, &bytes, 1, &mut out);
        out
    }
}

/// scrypt's BlockMix over `2·r` 64-byte blocks held as words: `out` receives the even-indexed
/// results followed by the odd-indexed ones.
fn block_mix(input: &[u32], out: &mut [u32]) {
    let blocks = input.len() / 16;
    let mut x: [u32; 16] = input[input.len() - 16..].try_into().expect("16 words");
    let mut keystream = [0u8; 64];
    for (i, block) in input.chunks_exact(16).enumerate() {
        for (xi, bi) in x.iter_mut().zip(block) {
            *xi ^= bi;
        }
        // Salsa20/8 core: the keystream block of the raw state is the permuted state plus the input.
        SalsaCore::<U4>::from_raw_state(x).write_keystream_block((&mut keystream).into());
        for (xi, bytes) in x.iter_mut().zip(keystream.chunks_exact(4)) {
            *xi = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
        }
        let at = if i % 2 == 0 {
            i / 2
        } else {
            blocks / 2 + i / 2
        };
        out[at * 16..(at + 1) * 16].copy_from_slice(&x);
    }
    x.zeroize();
    keystream.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn params_are_bounded() {
        assert_eq!(
            ScryptParams::new(0, 8, 1, 32).unwrap_err().code(),
            "BAD_PARAMS"
        );
        assert_eq!(
            ScryptParams::new(14, 0, 1, 32).unwrap_err().code(),
            "BAD_PARAMS"
        );
        assert_eq!(
            ScryptParams::new(14, 8, 0, 32).unwrap_err().code(),
            "BAD_PARAMS"
        );
        let err = ScryptParams::new(21, 8, 1, 32).unwrap_err();
        assert!(err.to_string().contains("2147483648 bytes"), "{err}");
        assert_eq!(
            ScryptParams::new(14, 8, 1, 0).unwrap_err().code(),
            "BAD_LENGTH"
        );
        assert!(
            ScryptParams::new(20, 8, 1, 64).is_ok(),
            "RFC 7914's largest vector fits"
        );
    }

    #[test]
    fn steps_add_up_and_slicing_gives_the_same_key() {
        let params = ScryptParams::new(6, 2, 3, 40).unwrap();
        let whole = scrypt(b"pw", b"salt", &params);
        let mut job = ScryptJob::new(b"pw", b"salt", &params);
        assert_eq!(job.total_steps(), 2 * 64 * 3);
        let mut rounds = 0;
        while !job.run(7) {
            rounds += 1;
            assert!(job.done_steps() <= job.total_steps());
        }
        assert_eq!(rounds, (2 * 64 * 3) / 7);
        assert_eq!(job.finish(), whole);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn matches_the_scrypt_crate(
            password in proptest::collection::vec(any::<u8>(), 0..40),
            salt in proptest::collection::vec(any::<u8>(), 0..40),
            log_n in 1u8..8,
            r in 1u32..5,
            p in 1u32..4,
            dk_len in 1usize..100,
        ) {
            let ours = scrypt(&password, &salt, &ScryptParams::new(log_n, r, p, dk_len).unwrap());
            let mut theirs = vec![0u8; dk_len];
            ::scrypt::scrypt(&password, &salt, &::scrypt::Params::new(log_n, r, p).unwrap(), &mut theirs).unwrap();
            prop_assert_eq!(&ours[..], &theirs[..]);
        }
    }
}
