//! Capability tokens from hostile peers. The first byte picks the mode: the rest checked as a
//! token (raw, hex-encoded, or as the text it is), or the rest used to issue a valid token that
//! one input-chosen byte then changes. Nothing may panic; a token that passes is exactly the
//! one its issuer signs for those fields, and a changed token never passes.
#![no_main]

use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{Access, Capability};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let issuer = SigningKey::from_seed(&[1; 32]).unwrap();
    let trusted = [issuer.public_key()];
    let peer = SigningKey::from_seed(&[2; 32]).unwrap().public_key();
    let room = "room";
    if mode & 1 == 0 {
        let token = match mode & 2 {
            0 => to_hex(rest),
            _ => String::from_utf8_lossy(rest).into_owned(),
        };
        if let Ok(held) = Capability::check(&token, &trusted, room, &peer, 0) {
            let again = Capability::issue(
                &issuer,
                &held.room,
                &held.peer,
                held.access,
                held.expires_at,
                held.id,
            );
            assert_eq!(again.as_deref(), Some(token.to_lowercase().as_str()));
        }
        return;
    }
    let (Some(&at), Some(&flip)) = (rest.first(), rest.get(1)) else {
        return;
    };
    let room = String::from_utf8_lossy(rest.get(2..).unwrap_or_default()).into_owned();
    let access = if mode & 2 == 0 { Access::Read } else { Access::ReadWrite };
    let Some(token) = Capability::issue(&issuer, &room, &peer, access, u64::from(at) + 1, [at; 16])
    else {
        assert!(room.is_empty() || room.len() > 128);
        return;
    };
    let held = Capability::check(&token, &trusted, &room, &peer, 0).expect("a fresh token holds");
    assert_eq!((held.access, held.expires_at), (access, u64::from(at) + 1));
    let mut bytes = from_hex(&token);
    let i = usize::from(at) % bytes.len();
    bytes[i] ^= flip;
    let changed = Capability::check(&to_hex(&bytes), &trusted, &room, &peer, 0);
    assert_eq!(changed.is_ok(), flip == 0);
});

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
