//! Capabilities: tokens that let one peer into one room of relays that trust their issuer.
//!
//! An application holds an issuer key; relays are configured to trust its public key and to
//! require a token in some rooms. A token names the room, the peer's key, read or read-write
//! access and an expiry, and is signed by the issuer. It is flat and fixed in layout (all
//! integers little-endian):
//!
//! ```text
//! 0    1   version (1)
//! 1    1   access: 1 read, 2 read-write
//! 2    8   expires_at, Unix seconds
//! 10   16  id (random; names the token for revocation)
//! 26   32  issuer's Ed25519 public key
//! 58   32  peer's Ed25519 public key
//! 90   1   room length n, 1..=128
//! 91   n   room name (UTF-8, byte-exact with the room the peer authenticates to)
//! 91+n 64  Ed25519 signature by the issuer over CAPABILITY_DOMAIN ‖ bytes[..91+n]
//! ```
//!
//! A token travels hex-encoded in the auth answer's `capability` field. [`Capability::check`]
//! reads it in the order the threat model asks: size, then the issuer's trust and the
//! signature over the raw bytes, then the fields.

use chrysalis_crypto::{SigningKey, ed25519_verify};

use crate::{MAX_ROOM_NAME, PeerId};

/// The token format's version.
pub const CAPABILITY_VERSION: u8 = 1;
/// Domain string of the issuer's signature.
pub const CAPABILITY_DOMAIN: &[u8] = b"chrysalis-relay capability v1";
/// Bytes before the room name.
const HEAD: usize = 91;
/// The signature's length.
const SIGNATURE: usize = 64;
/// The shortest token (a one-byte room name), in bytes.
pub const MIN_CAPABILITY: usize = HEAD + 1 + SIGNATURE;
/// The longest token (a [`MAX_ROOM_NAME`]-byte room name), in bytes; its hex form is twice
/// as long.
pub const MAX_CAPABILITY: usize = HEAD + MAX_ROOM_NAME + SIGNATURE;

/// What a capability lets its peer do in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive, and send only what catching up needs (digests, requests, heartbeats).
    Read,
    /// Everything.
    ReadWrite,
}

impl Access {
    fn to_byte(self) -> u8 {
        match self {
            Access::Read => 1,
            Access::ReadWrite => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Access::Read),
            2 => Some(Access::ReadWrite),
            _ => None,
        }
    }
}

/// A capability whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// What it allows.
    pub access: Access,
    /// Unix seconds at which it stops holding.
    pub expires_at: u64,
    /// Its id, for revocation.
    pub id: [u8; 16],
    /// The key that signed it.
    pub issuer: PeerId,
    /// The peer it admits.
    pub peer: PeerId,
    /// The room it admits to.
    pub room: String,
}

/// Why a token was refused: a stable code for the peer and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityRefusal {
    /// `CAPABILITY_INVALID` or `CAPABILITY_EXPIRED`.
    pub code: &'static str,
    /// What was wrong.
    pub message: String,
}

fn invalid(message: impl Into<String>) -> CapabilityRefusal {
    CapabilityRefusal {
        code: "CAPABILITY_INVALID",
        message: message.into(),
    }
}

impl Capability {
    /// Signs a token for `peer` in `room` with `issuer`'s key, hex-encoded as the auth answer
    /// carries it; `id` should be random. `None` if the room name is empty or too long.
    pub fn issue(
        issuer: &SigningKey,
        room: &str,
        peer: &PeerId,
        access: Access,
        expires_at: u64,
        id: [u8; 16],
    ) -> Option<String> {
        if room.is_empty() || room.len() > MAX_ROOM_NAME {
            return None;
        }
        let mut bytes = Vec::with_capacity(HEAD + room.len() + SIGNATURE);
        bytes.push(CAPABILITY_VERSION);
        bytes.push(access.to_byte());
        bytes.extend_from_slice(&expires_at.to_le_bytes());
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(&issuer.public_key());
        bytes.extend_from_slice(peer);
        bytes.push(room.len() as u8);
        bytes.extend_from_slice(room.as_bytes());
        let signature = issuer.sign(&[CAPABILITY_DOMAIN, &bytes].concat());
        bytes.extend_from_slice(&signature);
        Some(hex::encode(bytes))
    }

    /// Checks a hex token for `peer` joining `room` at `now` (Unix seconds) against the
    /// issuers this relay trusts: its size, its issuer, its signature over the raw bytes, then
    /// its fields. The first failure is the refusal.
    pub fn check(
        token: &str,
        trusted: &[PeerId],
        room: &str,
        peer: &PeerId,
        now: u64,
    ) -> Result<Capability, CapabilityRefusal> {
        if token.len() < 2 * MIN_CAPABILITY || token.len() > 2 * MAX_CAPABILITY {
            return Err(invalid(format!(
                "a capability is {MIN_CAPABILITY} to {MAX_CAPABILITY} bytes in hex"
            )));
        }
        let bytes = hex::decode(token).map_err(|_| invalid("a capability is hex"))?;
        let (signed, signature) = bytes.split_at(bytes.len() - SIGNATURE);
        if signed[0] != CAPABILITY_VERSION {
            return Err(invalid(format!(
                "capability version {}, this relay reads {CAPABILITY_VERSION}",
                signed[0]
            )));
        }
        let key = |at: usize| -> PeerId { signed[at..at + 32].try_into().expect("32 bytes") };
        let issuer = key(26);
        if !trusted.contains(&issuer) {
            return Err(invalid("the capability's issuer is not trusted here"));
        }
        if !ed25519_verify(&issuer, &[CAPABILITY_DOMAIN, signed].concat(), signature) {
            return Err(invalid("the capability's signature does not verify"));
        }
        let access = Access::from_byte(signed[1]).ok_or_else(|| invalid("unknown access"))?;
        let expires_at = u64::from_le_bytes(signed[2..10].try_into().expect("8 bytes"));
        let named = &signed[HEAD..];
        if usize::from(signed[HEAD - 1]) != named.len() {
            return Err(invalid("the room length does not match the token's size"));
        }
        if named != room.as_bytes() {
            return Err(invalid("the capability is for another room"));
        }
        if key(58) != *peer {
            return Err(invalid("the capability is for another peer"));
        }
        if now >= expires_at {
            return Err(CapabilityRefusal {
                code: "CAPABILITY_EXPIRED",
                message: format!("the capability expired at {expires_at} (Unix seconds)"),
            });
        }
        Ok(Capability {
            access,
            expires_at,
            id: signed[10..26].try_into().expect("16 bytes"),
            issuer,
            peer: *peer,
            room: room.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32]).unwrap()
    }

    #[test]
    fn a_token_admits_its_peer_to_its_room_until_it_expires() {
        let (issuer, peer) = (key(1), key(2).public_key());
        let trusted = [key(9).public_key(), issuer.public_key()];
        let token =
            Capability::issue(&issuer, "room", &peer, Access::Read, 1_000, [7; 16]).unwrap();
        assert_eq!(token.len(), 2 * (MIN_CAPABILITY + 3));
        let held = Capability::check(&token, &trusted, "room", &peer, 999).unwrap();
        assert_eq!(
            held,
            Capability {
                access: Access::Read,
                expires_at: 1_000,
                id: [7; 16],
                issuer: issuer.public_key(),
                peer,
                room: "room".into(),
            }
        );
        let code = |token: &str, trusted: &[PeerId], room: &str, peer: &PeerId, now: u64| {
            Capability::check(token, trusted, room, peer, now)
                .unwrap_err()
                .code
        };
        assert_eq!(
            code(&token, &trusted, "room", &peer, 1_000),
            "CAPABILITY_EXPIRED"
        );
        for (trusted, room, who) in [
            (&trusted[..1], "room", peer),
            (&trusted[..], "rook", peer),
            (&trusted[..], "roo", peer),
            (&trusted[..], "room", key(3).public_key()),
        ] {
            assert_eq!(
                code(&token, trusted, room, &who, 0),
                "CAPABILITY_INVALID",
                "{room}"
            );
        }
        // Any flipped bit, a wrong size, or a token that is not hex is refused.
        let bytes = hex::decode(&token).unwrap();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Capability::check(&hex::encode(flipped), &trusted, "room", &peer, 0).is_err(),
                "bit {bit}"
            );
        }
        for bad in [
            String::new(),
            token[..token.len() - 2].to_owned(),
            format!("{token}00"),
            "zz".repeat(MIN_CAPABILITY),
            "00".repeat(MAX_CAPABILITY + 1),
        ] {
            assert_eq!(code(&bad, &trusted, "room", &peer, 0), "CAPABILITY_INVALID");
        }
        let longest = "r".repeat(MAX_ROOM_NAME);
        let token =
            Capability::issue(&issuer, &longest, &peer, Access::ReadWrite, 9, [0; 16]).unwrap();
        assert_eq!(token.len(), 2 * MAX_CAPABILITY);
        assert_eq!(
            Capability::check(&token, &trusted, &longest, &peer, 0)
                .unwrap()
                .access,
            Access::ReadWrite
        );
        assert!(Capability::issue(&issuer, "", &peer, Access::Read, 9, [0; 16]).is_none());
        assert!(
            Capability::issue(
                &issuer,
                &format!("{longest}r"),
                &peer,
                Access::Read,
                9,
                [0; 16]
            )
            .is_none()
        );
    }
}
