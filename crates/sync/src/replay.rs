//! Replay protection: a sliding window of sequence numbers per sender (as IPsec's anti-replay).
//! Windows outlive a sender's connection (a peer that leaves and rejoins cannot have its old
//! frames replayed), up to [`MAX_REMEMBERED_SENDERS`], the least recently heard forgotten first.

use std::collections::HashMap;

use crate::{PeerId, SyncError};

/// How many sequence numbers below the newest one are still told apart (late, reordered frames).
pub const REPLAY_WINDOW: u64 = 128;

/// How many senders' windows are kept.
pub const MAX_REMEMBERED_SENDERS: usize = 4096;

/// The newest sequence number and the window of recent ones seen per sender.
#[derive(Debug, Default, Clone)]
pub struct ReplayGuard {
    senders: HashMap<PeerId, Window>,
    /// Counts accepted frames; a window's `heard` is the count at its last one.
    clock: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    newest: u64,
    /// Bit `i` set: `newest - i` was accepted.
    seen: u128,
    heard: u64,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `seq` from `sender` once: a repeat is `Replayed`, one below the window `TooOld`.
    /// Call it only for frames whose signature verified, so forgers cannot move the window.
    pub fn accept(&mut self, sender: &PeerId, seq: u64) -> Result<(), SyncError> {
        self.clock += 1;
        let heard = self.clock;
        let Some(window) = self.senders.get_mut(sender) else {
            if self.senders.len() >= MAX_REMEMBERED_SENDERS
                && let Some(oldest) = self
                    .senders
                    .iter()
                    .min_by_key(|(_, w)| w.heard)
                    .map(|(p, _)| *p)
            {
                self.senders.remove(&oldest);
            }
            self.senders.insert(
                *sender,
                Window {
                    newest: seq,
                    seen: 1,
                    heard,
                },
            );
            return Ok(());
        };
        window.check(seq)?;
        if seq > window.newest {
            let shift = seq - window.newest;
            window.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                window.seen << shift
            };
            window.seen |= 1;
            window.newest = seq;
        } else {
            window.seen |= 1u128 << (window.newest - seq);
        }
        window.heard = heard;
        Ok(())
    }

    /// Whether `accept` would refuse `seq` from `sender` as a replay or too old, without
    /// changing anything: a receiver asks before it checks a signature.
    pub fn check(&self, sender: &PeerId, seq: u64) -> Result<(), SyncError> {
        self.senders.get(sender).map_or(Ok(()), |w| w.check(seq))
    }

    /// How many senders' windows are kept.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// Whether no sender's window is kept.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

impl Window {
    /// `Replayed` for a sequence number already accepted, `TooOld` below the window.
    fn check(&self, seq: u64) -> Result<(), SyncError> {
        if seq > self.newest {
            return Ok(());
        }
        let age = self.newest - seq;
        if age >= REPLAY_WINDOW {
            return Err(SyncError::TooOld {
                seq,
                newest: self.newest,
            });
        }
        if self.seen & (1u128 << age) != 0 {
            return Err(SyncError::Replayed(seq));
        }
        Ok(())
    }
}
