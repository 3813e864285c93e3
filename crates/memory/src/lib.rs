//! Agent memory for Chrysalis: what agents in web pages remember, find again, agree on and
//! share.
//!
//! - [`agent`]: one agent's memory as one value (store, index, council, accepted beads) and
//!   the document a sync node shares.
//! - [`identity`]: an agent is an Ed25519 key with a short printable id; attestations and key
//!   rotation are signed statements.
//! - [`bead`]: memory items, content-addressed (BLAKE3 of a canonical encoding) and signed.
//! - [`store`]: the replicated store, one OR-Set of signed records that a
//!   [`SyncNode`](chrysalis_sync::SyncNode) shares as a document; forged records are refused.
//! - [`index`]: the local search view (exact or [`hnsw`] vectors, [`bm25`] keywords, filters,
//!   reciprocal rank fusion), derived from the store and never replicated.
//! - [`fusion`]: near-duplicate beads shown as one, the same on every replica.
//! - [`threshold`]: k-of-n acceptance and the council that agreement governs.
//! - [`byzantine`]: PBFT-style agreement among `n ≥ 3f + 1` agents (sans-IO), for what must be
//!   agreed rather than merged.

pub mod agent;
pub mod bead;
pub mod bm25;
pub mod byzantine;
mod error;
pub mod fusion;
pub mod hnsw;
pub mod identity;
pub mod index;
pub mod store;
pub mod threshold;
pub mod vector;

pub use agent::{Memory, MemoryChange, MemoryConfig};
pub use bead::{Bead, BeadDraft, BeadEmbedding, BeadId, bead_id_hex};
pub use byzantine::{Agreement, AgreementConfig, AgreementEvent, AgreementStats, Membership};
pub use error::MemoryError;
pub use fusion::{Fused, FusionConfig, fuse};
pub use hnsw::{Hnsw, HnswConfig};
pub use identity::{Attestation, Identity, KeyRotation, PublicKey, Signature, agent_id};
pub use index::{Filter, Hit, MemoryIndex, Query, Ranking};
pub use store::{Approval, Entry, Forget, MemoryStore, MetaRecord, Record, StoreChange};
pub use threshold::{Acceptance, Council, Motion};
pub use vector::{Scored, dot, exact_top_k, unit};
