//! The versioned binary encoding shared by every type: `tag | version | postcard body`.
//!
//! Decoding never panics: it bounds the input size, checks the tag and version, rejects
//! trailing bytes, and each type then checks its own invariants. Postcard's length prefixes
//! cannot force large allocations (serde caps pre-allocation), and the input bound caps the rest.

use serde::{Serialize, de::DeserializeOwned};

use crate::CrdtError;

/// The encoding version this crate writes and reads.
pub const ENCODING_VERSION: u8 = 1;
/// The largest encoded state or delta accepted (64 MiB).
pub const MAX_ENCODED_LEN: usize = 64 << 20;

/// A type with a binary encoding.
pub trait Encode: Sized {
    /// The first byte of this type's encoding.
    const TAG: u8;
    /// The type's name in errors.
    const NAME: &'static str;

    /// The versioned encoding.
    fn to_bytes(&self) -> Vec<u8>;

    /// Decodes untrusted bytes; every failure is a typed error.
    fn from_bytes(bytes: &[u8]) -> Result<Self, CrdtError>;
}

/// `tag | version | postcard(value)`.
pub(crate) fn encode<T: Serialize>(tag: u8, value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![tag, ENCODING_VERSION]).expect("writing to a Vec cannot fail")
}

/// The inverse of [`encode`], with the checks above.
pub(crate) fn decode<T: DeserializeOwned>(
    tag: u8,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CrdtError> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(CrdtError::TooLarge {
            what,
            actual: bytes.len(),
            limit: MAX_ENCODED_LEN,
        });
    }
    let [found_tag, version, body @ ..] = bytes else {
        return Err(CrdtError::bad_format(
            what,
            "shorter than the 2-byte header",
        ));
    };
    if *found_tag != tag {
        return Err(CrdtError::bad_format(
            what,
            format!("type tag {found_tag:#04x}, expected {tag:#04x}"),
        ));
    }
    if *version != ENCODING_VERSION {
        return Err(CrdtError::bad_format(
            what,
            format!("version {version} is not supported (this build reads {ENCODING_VERSION})"),
        ));
    }
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| CrdtError::bad_format(what, e.to_string()))?;
    if !rest.is_empty() {
        return Err(CrdtError::bad_format(
            what,
            format!("{} trailing bytes", rest.len()),
        ));
    }
    Ok(value)
}

/// Implements [`Encode`] for a serde type with an invariant check.
macro_rules! impl_encode {
    ($ty:ty, $tag:expr, $name:expr, $check:expr) => {
        impl $crate::encoding::Encode for $ty {
            const TAG: u8 = $tag;
            const NAME: &'static str = $name;

            fn to_bytes(&self) -> Vec<u8> {
                $crate::encoding::encode(Self::TAG, self)
            }

            fn from_bytes(bytes: &[u8]) -> Result<Self, $crate::CrdtError> {
                let value: Self = $crate::encoding::decode(Self::TAG, Self::NAME, bytes)?;
                let check: fn(&Self) -> Result<(), String> = $check;
                check(&value)
                    .map_err(|reason| $crate::CrdtError::bad_format(Self::NAME, reason))?;
                Ok(value)
            }
        }
    };
}
pub(crate) use impl_encode;
