//! Versioned binary envelopes: storage envelopes and session envelopes.
//!
//! ```text
//! storage: "CHSE" | version 1 | key id (u32 BE)     | nonce (12) | ciphertext ‖ tag (16)
//! session: "CHSS" | version 1 | generation (u32 BE) | nonce (12) | ciphertext ‖ tag (16)
//! ```
//! The header (magic, version, id) is authenticated as associated data together with the
//! caller's AAD (and, for sessions, the session id), so no header byte can be changed unnoticed.

use chrysalis_crypto::{AES_GCM_NONCE_LEN, AES_GCM_TAG_LEN, AesGcmKey, random_array};

use crate::SecurityError;

/// The envelope format version this crate writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4;
const MIN_LEN: usize = HEADER_LEN + AES_GCM_NONCE_LEN + AES_GCM_TAG_LEN;

/// The two kinds of envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Storage,
    Session,
}

impl Kind {
    fn magic(self) -> &'static [u8; 4] {
        match self {
            Kind::Storage => b"CHSE",
            Kind::Session => b"CHSS",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Storage => "storage envelope",
            Kind::Session => "session envelope",
        }
    }
}

/// A parsed envelope header.
pub(crate) struct Parsed<'a> {
    /// Key id (storage) or generation (session).
    pub id: u32,
    header: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn associated_data(header: &[u8], context: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 4 + context.len() + aad.len());
    out.extend_from_slice(header);
    out.extend_from_slice(&(context.len() as u32).to_be_bytes());
    out.extend_from_slice(context);
    out.extend_from_slice(aad);
    out
}

/// Seals `plaintext` under `key` into an envelope of `kind` naming `id`; `context` (the session
/// id for sessions) and `aad` are authenticated but not stored.
pub(crate) fn seal(
    kind: Kind,
    id: u32,
    key: &AesGcmKey,
    context: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SecurityError> {
    let mut out = Vec::with_capacity(MIN_LEN + plaintext.len());
    out.extend_from_slice(kind.magic());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&id.to_be_bytes());
    let nonce: [u8; AES_GCM_NONCE_LEN] = random_array()?;
    let ad = associated_data(&out, context, aad);
    let ciphertext = key.encrypt(&nonce, plaintext, &ad)?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Checks the magic, version and length of an envelope of `kind`.
pub(crate) fn parse(kind: Kind, bytes: &[u8]) -> Result<Parsed<'_>, SecurityError> {
    let what = kind.what();
    if bytes.len() < MIN_LEN {
        return Err(SecurityError::bad_format(
            what,
            format!(
                "{} bytes is shorter than the {MIN_LEN}-byte minimum",
                bytes.len()
            ),
        ));
    }
    if &bytes[..4] != kind.magic() {
        return Err(SecurityError::bad_format(what, "wrong magic bytes"));
    }
    if bytes[4] != ENVELOPE_VERSION {
        return Err(SecurityError::bad_format(
            what,
            format!(
                "version {} is not supported (this build reads {ENVELOPE_VERSION})",
                bytes[4]
            ),
        ));
    }
    let id = u32::from_be_bytes(bytes[5..9].try_into().expect("4 bytes"));
    let (header, rest) = bytes.split_at(HEADER_LEN);
    let (nonce, ciphertext) = rest.split_at(AES_GCM_NONCE_LEN);
    Ok(Parsed {
        id,
        header,
        nonce,
        ciphertext,
    })
}

/// Opens a parsed envelope with `key`.
pub(crate) fn open(
    parsed: &Parsed<'_>,
    key: &AesGcmKey,
    context: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, SecurityError> {
    let ad = associated_data(parsed.header, context, aad);
    key.decrypt(parsed.nonce, parsed.ciphertext, &ad)
        .map_err(|_| {
            SecurityError::AuthFailed("the envelope, its associated data or the key does not match")
        })
}
