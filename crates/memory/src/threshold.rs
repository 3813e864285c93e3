//! k-of-n acceptance and the council that decides who the n are.
//!
//! Approvals are CRDT records in the store (any member may sign one, they merge freely). A bead
//! is *accepted* once at least `k` distinct members of the current council have approved it.
//! The council itself — members, `k`, key rotations, facts accepted by vote — changes only by
//! [`Motion`]s decided through the Byzantine agreement and applied in slot order, so every
//! honest agent holds the same council after the same decisions.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::MemoryError;
use crate::bead::BeadId;
use crate::identity::{KeyRotation, PublicKey};
use crate::store::MemoryStore;

/// What the agreement decides about the council.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Motion {
    /// Admit an agent.
    Admit(PublicKey),
    /// Remove an agent.
    Remove(PublicKey),
    /// Replace a member's key (the rotation is signed by both keys).
    Rotate(KeyRotation),
    /// Change how many approvals accept a bead.
    SetThreshold(u32),
    /// Accept a bead as a fact by vote, whatever its approvals.
    AcceptFact(BeadId),
}

impl Motion {
    /// The motion as an agreement value.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("motions encode")
    }

    /// A motion from an agreement value.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MemoryError> {
        postcard::from_bytes(bytes).map_err(|e| MemoryError::Decode {
            what: "motion",
            reason: e.to_string(),
        })
    }
}

/// Whether a bead is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// Accepted: by `k` member approvals, or by a decided motion (`approvers` empty then).
    Accepted {
        /// The members whose approvals count.
        approvers: Vec<PublicKey>,
    },
    /// Waiting for more approvals.
    Pending {
        /// Member approvals so far.
        have: usize,
        /// Approvals needed.
        need: usize,
    },
}

/// The members and the approval threshold, as decided so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Council {
    members: BTreeSet<PublicKey>,
    threshold: usize,
    facts: BTreeSet<BeadId>,
    applied: u64,
    epoch: u64,
}

impl Council {
    /// The founding council: `members`, accepting at `threshold` approvals.
    pub fn new(
        members: impl IntoIterator<Item = PublicKey>,
        threshold: usize,
    ) -> Result<Self, MemoryError> {
        let members: BTreeSet<PublicKey> = members.into_iter().collect();
        if threshold == 0 || threshold > members.len() {
            return Err(MemoryError::bad_input(
                "threshold",
                format!(
                    "{threshold} of {} members; 1 to the member count",
                    members.len()
                ),
            ));
        }
        Ok(Council {
            members,
            threshold,
            facts: BTreeSet::new(),
            applied: 0,
            epoch: 0,
        })
    }

    /// The members.
    pub fn members(&self) -> impl Iterator<Item = &PublicKey> {
        self.members.iter()
    }

    /// Whether `key` is a member.
    pub fn is_member(&self, key: &PublicKey) -> bool {
        self.members.contains(key)
    }

    /// Approvals that accept a bead.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Distinct member endorsements a motion needs: the threshold `k`, but at most `n − f`
    /// (`f = ⌊(n − 1) / 3⌋`), so that `f` silent members can never keep the council from
    /// changing (a 4-of-4 council still passes motions with 3). Beads still need `k` approvals.
    pub fn motion_endorsements(&self) -> usize {
        let n = self.members.len();
        self.threshold.min(n - (n - 1) / 3)
    }

    /// Motions applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Membership changes (admit, remove, rotate) applied so far: the agreement of the new
    /// membership runs as [`Membership::at_epoch`](crate::Membership::at_epoch) of it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Applies a motion the agreement decided with the requests of `endorsers`. It is refused
    /// and changes nothing when fewer than [`Council::motion_endorsements`] distinct members
    /// endorsed it
    /// (`NotEndorsed`: a leader may order a value at the agreement's `f + 1` floor, below the
    /// council's `k`), or when it would break the council (removing the last member, a
    /// threshold above the member count, a rotation of a non-member or with bad signatures).
    /// Every honest agent applies decided motions in the same order, so it refuses alike.
    pub fn apply(&mut self, motion: &Motion, endorsers: &[PublicKey]) -> Result<(), MemoryError> {
        let have = endorsers
            .iter()
            .filter(|e| self.members.contains(*e))
            .collect::<BTreeSet<_>>()
            .len();
        let need = self.motion_endorsements();
        if have < need {
            return Err(MemoryError::NotEndorsed { have, need });
        }
        let mut next = self.clone();
        match motion {
            Motion::Admit(key) => {
                next.members.insert(*key);
            }
            Motion::Remove(key) => {
                next.members.remove(key);
                next.threshold = next.threshold.min(next.members.len());
            }
            Motion::Rotate(rotation) => {
                rotation.verify()?;
                if !next.members.remove(&rotation.old) {
                    return Err(MemoryError::NotMember("the rotated key".into()));
                }
                next.members.insert(rotation.new);
            }
            Motion::SetThreshold(k) => next.threshold = *k as usize,
            Motion::AcceptFact(id) => {
                next.facts.insert(*id);
            }
        }
        if next.members.is_empty() || next.threshold == 0 || next.threshold > next.members.len() {
            return Err(MemoryError::bad_input(
                "motion",
                "it would leave no valid council",
            ));
        }
        next.applied += 1;
        if next.members != self.members {
            next.epoch += 1;
        }
        *self = next;
        Ok(())
    }

    /// Whether a bead in `store` is accepted.
    pub fn acceptance(&self, store: &MemoryStore, id: &BeadId) -> Acceptance {
        let approvers: Vec<PublicKey> = store
            .approvers(id)
            .filter(|a| self.members.contains(*a))
            .copied()
            .collect();
        if self.facts.contains(id) || approvers.len() >= self.threshold {
            Acceptance::Accepted { approvers }
        } else {
            Acceptance::Pending {
                have: approvers.len(),
                need: self.threshold,
            }
        }
    }
}
