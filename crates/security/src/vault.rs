//! The vault blob: everything a context holds, sealed under a passphrase.
//!
//! ```text
//! "CHRYSVLT" | version 1 | kdf 1 (scrypt) | logN | r (u32 BE) | p (u32 BE) | salt (16)
//!            | nonce (12) | AES-256-GCM(ciphertext ‖ tag) of the postcard-encoded contents
//! ```
//! The header up to the salt is the associated data. The key is scrypt(passphrase, salt).

use chrysalis_crypto::{
    AES_GCM_NONCE_LEN, AES_GCM_TAG_LEN, AesGcmKey, LockedSecret, ScryptJob, ScryptParams,
    random_array, scrub_stack,
};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::SecurityError;

/// The vault format version this crate writes and reads.
pub const VAULT_VERSION: u8 = 1;
/// The default scrypt cost of an exported vault: N = 2^15, r = 8, p = 1 (32 MiB).
pub const DEFAULT_VAULT_LOG_N: u8 = 15;
/// The scrypt costs `logN` a vault may use (with r = 8, p = 1): export refuses others, and
/// unlock refuses a blob asking for anything else (`BAD_KDF_PARAMS`) before running scrypt. The
/// top, 2^18, is 256 MiB and 8 times the default work: a blob from storage or another script
/// cannot make `unlock` take more.
pub const VAULT_LOG_N_RANGE: std::ops::RangeInclusive<u8> = 10..=18;
/// The largest vault blob export writes and unlock reads (`TOO_LARGE`): a blob from storage is
/// refused at this size before it is copied or decrypted. A vault holds API keys, session keys
/// and storage keys, tens of bytes each: 16 MiB is far beyond any real one.
pub const MAX_VAULT_LEN: usize = 16 << 20;
const MAGIC: &[u8; 8] = b"CHRYSVLT";
const KDF_SCRYPT: u8 = 1;
const SALT_LEN: usize = 16;
const AD_LEN: usize = 8 + 1 + 1 + 1 + 4 + 4 + SALT_LEN;
const MIN_LEN: usize = AD_LEN + AES_GCM_NONCE_LEN + AES_GCM_TAG_LEN;
/// scrypt's `r` and `p` in every vault this crate writes, and the only ones it reads.
const KDF_R: u32 = 8;
const KDF_P: u32 = 1;

/// A 32-byte key with its id (storage key id or session generation).
#[derive(Serialize, Deserialize, Zeroize)]
pub(crate) struct StoredKey {
    pub id: u32,
    pub key: [u8; 32],
}

impl StoredKey {
    pub fn copy_of(id: u32, key: &[u8; 32]) -> Self {
        let mut stored = StoredKey { id, key: [0; 32] };
        stored.key.copy_from_slice(key);
        stored
    }
}

/// An API key as stored in the vault.
#[derive(Serialize, Deserialize, Zeroize)]
pub(crate) struct StoredApiKey {
    pub provider: String,
    pub key: String,
}

/// One session's retained key generations, oldest first.
#[derive(Serialize, Deserialize, Zeroize)]
pub(crate) struct StoredSession {
    pub id: String,
    pub keys: Vec<StoredKey>,
}

/// Everything in a vault; wiped when dropped.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
pub(crate) struct VaultContents {
    pub master_key: [u8; 32],
    pub retained_session_keys: u32,
    pub api_keys: Vec<StoredApiKey>,
    pub sessions: Vec<StoredSession>,
    pub storage_keys: Vec<StoredKey>,
    pub current_storage_key: u32,
}

impl VaultContents {
    /// An upper bound of the encoded size, so encoding never reallocates (a reallocation would
    /// leave an unwiped copy behind).
    fn encoded_size_bound(&self) -> usize {
        let strings: usize = self
            .api_keys
            .iter()
            .map(|k| k.provider.len() + k.key.len() + 10)
            .sum();
        let sessions: usize = self
            .sessions
            .iter()
            .map(|s| s.id.len() + 5 + s.keys.len() * 37)
            .sum();
        64 + strings + sessions + self.storage_keys.len() * 37
    }
}

/// A vault key being derived: scrypt run a bounded number of steps at a time, so a caller on a
/// page's thread can yield between slices.
struct KeyDerivation {
    job: ScryptJob,
    salt: [u8; SALT_LEN],
    params: ScryptParams,
}

impl KeyDerivation {
    fn new(passphrase: &[u8], salt: [u8; SALT_LEN], params: ScryptParams) -> Self {
        let job = ScryptJob::new(passphrase, &salt, &params);
        scrub_stack(); // the first PBKDF2's HMAC state, keyed by the passphrase
        KeyDerivation { job, salt, params }
    }

    fn run(&mut self, max_steps: u64) -> bool {
        self.job.run(max_steps)
    }

    fn progress(&self) -> f64 {
        self.job.done_steps() as f64 / self.job.total_steps() as f64
    }

    fn finish(self) -> VaultKey {
        let derived = self.job.finish();
        scrub_stack();
        let mut key = LockedSecret::new([0u8; 32]);
        key.expose_mut().copy_from_slice(&derived);
        VaultKey {
            key,
            salt: self.salt,
            params: self.params,
        }
    }
}

/// The passphrase-derived key of a vault, with the salt and cost it was derived with, kept so
/// that `persist` can re-seal without asking for the passphrase again.
pub(crate) struct VaultKey {
    key: LockedSecret<[u8; 32]>,
    salt: [u8; SALT_LEN],
    params: ScryptParams,
}

impl VaultKey {
    /// Derives a key from `passphrase` with a fresh salt.
    pub fn derive(passphrase: &[u8], log_n: u8) -> Result<Self, SecurityError> {
        if !VAULT_LOG_N_RANGE.contains(&log_n) {
            return Err(chrysalis_crypto::CryptoError::BadParams {
                what: "logN",
                reason: format!(
                    "a vault's scrypt cost must be {} to {}, got {log_n}",
                    VAULT_LOG_N_RANGE.start(),
                    VAULT_LOG_N_RANGE.end()
                ),
            }
            .into());
        }
        let params = ScryptParams::new(log_n, KDF_R, KDF_P, 32)?;
        Ok(Self::derive_with(passphrase, random_array()?, params))
    }

    fn derive_with(passphrase: &[u8], salt: [u8; SALT_LEN], params: ScryptParams) -> Self {
        KeyDerivation::new(passphrase, salt, params).finish()
    }

    fn header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(AD_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VAULT_VERSION, KDF_SCRYPT, self.params.log_n()]);
        out.extend_from_slice(&self.params.r().to_be_bytes());
        out.extend_from_slice(&self.params.p().to_be_bytes());
        out.extend_from_slice(&self.salt);
        out
    }

    /// Seals `contents` into a vault blob.
    pub fn seal(&self, contents: &VaultContents) -> Result<Vec<u8>, SecurityError> {
        let buffer = Vec::with_capacity(contents.encoded_size_bound());
        let capacity = buffer.capacity();
        let plaintext = Zeroizing::new(
            postcard::to_extend(contents, buffer)
                .map_err(|e| SecurityError::bad_format("vault contents", e.to_string()))?,
        );
        debug_assert_eq!(
            plaintext.capacity(),
            capacity,
            "the encoding buffer never grows"
        );
        let header = self.header();
        let nonce: [u8; AES_GCM_NONCE_LEN] = random_array()?;
        let ciphertext = AesGcmKey::new(self.key.expose())?.encrypt(&nonce, &plaintext, &header)?;
        let mut blob = header;
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        check_vault_len(blob.len())?;
        Ok(blob)
    }
}

/// Refuses a vault blob of `len` bytes over [`MAX_VAULT_LEN`].
pub fn check_vault_len(len: usize) -> Result<(), SecurityError> {
    if len > MAX_VAULT_LEN {
        return Err(SecurityError::VaultTooLarge {
            size: len,
            limit: MAX_VAULT_LEN,
        });
    }
    Ok(())
}

/// A vault being opened: its header checked (size, format, a cost this crate writes), its key
/// derived a slice at a time with [`run`](Self::run), its contents decrypted by
/// [`finish`](Self::finish).
pub(crate) struct VaultOpening {
    blob: Vec<u8>,
    key: KeyDerivation,
}

impl VaultOpening {
    /// Checks `blob`'s header and starts deriving its key from `passphrase` (nothing of scrypt's
    /// cost runs for a blob refused here).
    pub fn start(blob: Vec<u8>, passphrase: &[u8]) -> Result<Self, SecurityError> {
        let bad = |reason: String| SecurityError::bad_format("vault", reason);
        check_vault_len(blob.len())?;
        if blob.len() < MIN_LEN {
            return Err(bad(format!(
                "{} bytes is shorter than the {MIN_LEN}-byte minimum",
                blob.len()
            )));
        }
        if &blob[..8] != MAGIC {
            return Err(bad(
                "wrong magic bytes: this is not a Chrysalis vault".into()
            ));
        }
        if blob[8] != VAULT_VERSION {
            return Err(bad(format!(
                "version {} is not supported (this build reads {VAULT_VERSION})",
                blob[8]
            )));
        }
        if blob[9] != KDF_SCRYPT {
            return Err(bad(format!("unknown key derivation {}", blob[9])));
        }
        let log_n = blob[10];
        let r = u32::from_be_bytes(blob[11..15].try_into().expect("4 bytes"));
        let p = u32::from_be_bytes(blob[15..19].try_into().expect("4 bytes"));
        // The cost is the blob's to ask and ours to refuse: only what `export_vault` writes runs.
        if !VAULT_LOG_N_RANGE.contains(&log_n) || r != KDF_R || p != KDF_P {
            return Err(SecurityError::BadKdfParams { log_n, r, p });
        }
        let params = ScryptParams::new(log_n, r, p, 32).map_err(|e| bad(e.to_string()))?;
        let salt: [u8; SALT_LEN] = blob[19..AD_LEN].try_into().expect("16 bytes");
        Ok(VaultOpening {
            key: KeyDerivation::new(passphrase, salt, params),
            blob,
        })
    }

    /// Runs at most `max_steps` steps of scrypt (one BlockMix each); returns whether the key is
    /// derived.
    pub fn run(&mut self, max_steps: u64) -> bool {
        self.key.run(max_steps)
    }

    /// How much of the key derivation has run, from 0 to 1.
    pub fn progress(&self) -> f64 {
        self.key.progress()
    }

    /// Decrypts the contents (deriving what is left of the key first).
    pub fn finish(self) -> Result<(VaultContents, VaultKey), SecurityError> {
        let bad = |reason: String| SecurityError::bad_format("vault", reason);
        let key = self.key.finish();
        let (header, rest) = self.blob.split_at(AD_LEN);
        let (nonce, ciphertext) = rest.split_at(AES_GCM_NONCE_LEN);
        let plaintext = Zeroizing::new(
            AesGcmKey::new(key.key.expose())?
                .decrypt(nonce, ciphertext, header)
                .map_err(|_| {
                    SecurityError::AuthFailed("wrong passphrase, or the vault was modified")
                })?,
        );
        let contents: VaultContents = postcard::from_bytes(&plaintext)
            .map_err(|e| bad(format!("contents do not decode: {e}")))?;
        Ok((contents, key))
    }
}
