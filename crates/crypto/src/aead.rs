//! AES-GCM with 96-bit nonces (NIST SP 800-38D) and a `seal`/`open` pair with a random nonce.

use aes_gcm::{
    Aes128Gcm, Aes256Gcm, AesGcm, KeyInit,
    aead::{Aead, Payload},
    aes::Aes192,
};

use crate::{CryptoError, random_array};

/// AES-GCM nonce length: 96 bits, the only size this crate accepts.
pub const AES_GCM_NONCE_LEN: usize = 12;
/// AES-GCM tag length: 128 bits.
pub const AES_GCM_TAG_LEN: usize = 16;

type Aes192Gcm = AesGcm<Aes192, aes_gcm::aead::consts::U12>;

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self, CryptoError> {
        Ok(match key.len() {
            16 => Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).expect("16-byte key"),
            )),
            24 => Cipher::Aes192(Box::new(
                Aes192Gcm::new_from_slice(key).expect("24-byte key"),
            )),
            32 => Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).expect("32-byte key"),
            )),
            n => {
                return Err(CryptoError::BadLength {
                    what: "AES-GCM key",
                    expected: "16, 24 or 32".into(),
                    actual: n,
                });
            }
        })
    }
}

fn nonce_array(nonce: &[u8]) -> Result<[u8; AES_GCM_NONCE_LEN], CryptoError> {
    nonce
        .try_into()
        .map_err(|_| CryptoError::bad_length("AES-GCM nonce", AES_GCM_NONCE_LEN, nonce.len()))
}

/// An AES-GCM key with its schedule expanded once, for many messages (the counterpart of a
/// WebCrypto `CryptoKey`). Key material is zeroized on drop.
pub struct AesGcmKey {
    cipher: Cipher,
}

impl AesGcmKey {
    /// Expands a 16-, 24- or 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        Ok(AesGcmKey {
            cipher: Cipher::new(key)?,
        })
    }

    /// Encrypts `plaintext` with a 12-byte `nonce`, authenticating `aad` too; returns
    /// ciphertext ‖ 16-byte tag. Never reuse a nonce with the same key; [`seal`](Self::seal)
    /// picks a random one.
    pub fn encrypt(
        &self,
        nonce: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let nonce = nonce_array(nonce)?;
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let nonce = (&nonce).into();
        let out = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt(nonce, payload),
            Cipher::Aes192(c) => c.encrypt(nonce, payload),
            Cipher::Aes256(c) => c.encrypt(nonce, payload),
        };
        // Encryption fails only for messages beyond GCM's 64 GiB limit.
        out.map_err(|_| CryptoError::BadLength {
            what: "AES-GCM plaintext",
            expected: "at most 2^36 - 32".into(),
            actual: plaintext.len(),
        })
    }

    /// Decrypts ciphertext ‖ tag. Any change to the key, nonce, AAD, ciphertext or tag gives
    /// [`CryptoError::AuthFailed`].
    pub fn decrypt(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let nonce = nonce_array(nonce)?;
        if ciphertext.len() < AES_GCM_TAG_LEN {
            return Err(CryptoError::BadLength {
                what: "AES-GCM ciphertext",
                expected: format!("at least {AES_GCM_TAG_LEN} (the tag)"),
                actual: ciphertext.len(),
            });
        }
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let nonce = (&nonce).into();
        let out = match &self.cipher {
            Cipher::Aes128(c) => c.decrypt(nonce, payload),
            Cipher::Aes192(c) => c.decrypt(nonce, payload),
            Cipher::Aes256(c) => c.decrypt(nonce, payload),
        };
        out.map_err(|_| CryptoError::AuthFailed)
    }

    /// Encrypts with a fresh random nonce and returns nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce: [u8; AES_GCM_NONCE_LEN] = random_array()?;
        let ciphertext = self.encrypt(&nonce, plaintext, aad)?;
        let mut sealed = Vec::with_capacity(AES_GCM_NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens nonce ‖ ciphertext ‖ tag made by [`seal`](Self::seal).
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < AES_GCM_NONCE_LEN + AES_GCM_TAG_LEN {
            return Err(CryptoError::BadLength {
                what: "sealed message",
                expected: format!(
                    "at least {} (nonce and tag)",
                    AES_GCM_NONCE_LEN + AES_GCM_TAG_LEN
                ),
                actual: sealed.len(),
            });
        }
        let (nonce, ciphertext) = sealed.split_at(AES_GCM_NONCE_LEN);
        self.decrypt(nonce, ciphertext, aad)
    }
}

/// One-shot [`AesGcmKey::encrypt`].
pub fn aes_gcm_encrypt(
    key: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    AesGcmKey::new(key)?.encrypt(nonce, plaintext, aad)
}

/// One-shot [`AesGcmKey::decrypt`].
pub fn aes_gcm_decrypt(
    key: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    AesGcmKey::new(key)?.decrypt(nonce, ciphertext, aad)
}

/// One-shot [`AesGcmKey::seal`].
pub fn seal(key: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    AesGcmKey::new(key)?.seal(plaintext, aad)
}

/// One-shot [`AesGcmKey::open`].
pub fn open(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    AesGcmKey::new(key)?.open(sealed, aad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_bad_key_and_nonce_lengths() {
        let err = aes_gcm_encrypt(&[0; 20], &[0; 12], b"", b"").unwrap_err();
        assert_eq!(err.code(), "BAD_LENGTH");
        assert_eq!(
            err.to_string(),
            "AES-GCM key must be 16, 24 or 32 bytes, got 20"
        );
        let err = aes_gcm_encrypt(&[0; 32], &[0; 16], b"", b"").unwrap_err();
        assert_eq!(err.to_string(), "AES-GCM nonce must be 12 bytes, got 16");
        assert_eq!(
            open(&[0; 32], &[0; 27], b"").unwrap_err().code(),
            "BAD_LENGTH"
        );
    }

    #[test]
    fn seal_uses_a_fresh_nonce_each_time() {
        let key = [7u8; 32];
        let a = seal(&key, b"same", b"").unwrap();
        let b = seal(&key, b"same", b"").unwrap();
        assert_ne!(a[..12], b[..12]);
        assert_eq!(open(&key, &a, b"").unwrap(), b"same");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn seal_open_round_trip(
            key in prop::sample::select(vec![16usize, 24, 32]).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
            msg in proptest::collection::vec(any::<u8>(), 0..300),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let sealed = seal(&key, &msg, &aad).unwrap();
            prop_assert_eq!(sealed.len(), msg.len() + 28);
            prop_assert_eq!(open(&key, &sealed, &aad).unwrap(), msg);
        }

        #[test]
        fn any_flipped_bit_fails_authentication(
            msg in proptest::collection::vec(any::<u8>(), 0..200),
            aad in proptest::collection::vec(any::<u8>(), 1..40),
            bit in any::<prop::sample::Index>(),
            target in 0usize..3,
        ) {
            let key = [0x42u8; 32];
            let mut sealed = seal(&key, &msg, &aad).unwrap();
            let mut aad = aad;
            // target 0: nonce, 1: ciphertext or tag, 2: AAD.
            match target {
                0 => { let i = bit.index(12 * 8); sealed[i / 8] ^= 1 << (i % 8); }
                1 => { let i = bit.index((sealed.len() - 12) * 8); sealed[12 + i / 8] ^= 1 << (i % 8); }
                _ => { let i = bit.index(aad.len() * 8); aad[i / 8] ^= 1 << (i % 8); }
            }
            prop_assert_eq!(open(&key, &sealed, &aad).unwrap_err(), CryptoError::AuthFailed);
        }
    }
}
