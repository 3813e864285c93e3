//! Agent memory for Chrysalis.
//!
//! - [`byzantine`]: PBFT-style agreement among `n ≥ 3f + 1` agents (sans-IO), for what must be
//!   agreed rather than merged.

pub mod byzantine;
mod error;

pub use byzantine::{Agreement, AgreementConfig, AgreementEvent, AgreementStats, Membership};
pub use error::MemoryError;
