//! Secret values that are zeroized on drop and never printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroize;

/// A secret `T` on the heap, zeroized when dropped (built on `secrecy::SecretBox`).
///
/// It has no `Display`, and its `Debug` prints `LockedSecret([REDACTED])`; reading the value
/// takes an explicit [`expose`](LockedSecret::expose).
pub struct LockedSecret<T: Zeroize + ?Sized> {
    inner: SecretBox<T>,
}

impl<T: Zeroize> LockedSecret<T> {
    /// Moves `value` into a locked secret (the moved-from stack copy is not ours to wipe:
    /// build large secrets in place with [`LockedSecret::from_box`]).
    pub fn new(value: T) -> Self {
        LockedSecret {
            inner: SecretBox::new(Box::new(value)),
        }
    }
}

impl<T: Zeroize + ?Sized> LockedSecret<T> {
    /// Takes ownership of a boxed value without copying it.
    pub fn from_box(value: Box<T>) -> Self {
        LockedSecret {
            inner: SecretBox::new(value),
        }
    }

    /// Borrows the secret value.
    pub fn expose(&self) -> &T {
        self.inner.expose_secret()
    }

    /// Mutably borrows the secret value.
    pub fn expose_mut(&mut self) -> &mut T {
        secrecy::ExposeSecretMut::expose_secret_mut(&mut self.inner)
    }
}

impl LockedSecret<Vec<u8>> {
    /// Takes ownership of a byte vector without copying it (its buffer is zeroized on drop).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self::from_box(Box::new(bytes))
    }

    /// The number of secret bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether there are no secret bytes.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Compares with `other` in constant time.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        crate::constant_time_eq(self.expose(), other)
    }
}

impl<T: Zeroize + ?Sized> fmt::Debug for LockedSecret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockedSecret([REDACTED])")
    }
}

/// How much stack [`scrub_stack`] overwrites.
pub const STACK_SCRUB_BYTES: usize = 32 * 1024;

/// Overwrites [`STACK_SCRUB_BYTES`] of stack below the caller with zeros.
///
/// Key material copied into temporaries (inside this crate or the crates it builds on) stays
/// in dead stack frames after a call returns; on wasm32 that stack lives in linear memory that
/// any JS on the page can read. Call this at the end of operations that handled long-term keys.
#[inline(never)]
pub fn scrub_stack() {
    let mut area = [0u8; STACK_SCRUB_BYTES];
    area.zeroize();
    std::hint::black_box(&area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = LockedSecret::from_vec(b"hunter2-hunter2".to_vec());
        assert_eq!(format!("{secret:?}"), "LockedSecret([REDACTED])");
        assert_eq!(format!("{secret:#?}"), "LockedSecret([REDACTED])");
        assert_eq!(secret.expose(), b"hunter2-hunter2");
        assert!(secret.ct_eq(b"hunter2-hunter2"));
        assert_eq!(secret.len(), 15);
    }
}
