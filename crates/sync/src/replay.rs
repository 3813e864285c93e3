//! Replay protection: a sliding window of sequence numbers per sender (as IPsec's anti-replay).

use std::collections::HashMap;

use crate::{PeerId, SyncError};

/// How many sequence numbers below the newest one are still told apart (late, reordered frames).
pub const REPLAY_WINDOW: u64 = 128;

/// The newest sequence number and the window of recent ones seen per sender.
#[derive(Debug, Default, Clone)]
pub struct ReplayGuard {
    senders: HashMap<PeerId, Window>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    newest: u64,
    /// Bit `i` set: `newest - i` was accepted.
    seen: u128,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `seq` from `sender` once: a repeat is `Replayed`, one below the window `TooOld`.
    /// Call it only for frames whose signature verified, so forgers cannot move the window.
    pub fn accept(&mut self, sender: &PeerId, seq: u64) -> Result<(), SyncError> {
        let Some(window) = self.senders.get_mut(sender) else {
            self.senders.insert(
                *sender,
                Window {
                    newest: seq,
                    seen: 1,
                },
            );
            return Ok(());
        };
        if seq > window.newest {
            let shift = seq - window.newest;
            window.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                window.seen << shift
            };
            window.seen |= 1;
            window.newest = seq;
            return Ok(());
        }
        let age = window.newest - seq;
        if age >= REPLAY_WINDOW {
            return Err(SyncError::TooOld {
                seq,
                newest: window.newest,
            });
        }
        let bit = 1u128 << age;
        if window.seen & bit != 0 {
            return Err(SyncError::Replayed(seq));
        }
        window.seen |= bit;
        Ok(())
    }

    /// Forgets `sender` (e.g. after it was disconnected); it starts afresh when it comes back.
    pub fn forget(&mut self, sender: &PeerId) {
        self.senders.remove(sender);
    }
}
