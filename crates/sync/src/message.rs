//! The payloads the protocol puts in frames, one per [`FrameKind`](crate::FrameKind), in postcard.
//! Decoding is bounded by the frame's size limit and checks names and counts.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::SyncError;

/// The longest document name, in bytes.
pub const MAX_DOC_NAME: usize = 128;
/// The most documents one digest, request or deltas frame may name.
pub const MAX_DOCS_PER_FRAME: usize = 1024;

/// Fresh deltas (one or more documents), pushed to a few peers and forwarded while `hops` lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Gossip {
    pub hops: u8,
    pub deltas: DocList,
}

/// An application message: `bytes` on `channel` (a name like a document's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppMessage {
    pub channel: String,
    pub bytes: Vec<u8>,
}

impl AppMessage {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let message: AppMessage = decode(bytes)?;
        check_name(&message.channel)?;
        Ok(message)
    }
}

/// `(document, bytes)` pairs: encoded version vectors in a digest or request, encoded deltas in
/// a deltas frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DocList {
    /// In a reply, the sequence number of the digest or request it answers (else 0): deltas
    /// computed against a version vector are safe to apply only to the replica that sent it,
    /// not to a later incarnation of the same identity that restarted without its state.
    pub answers: u64,
    pub docs: Vec<(String, Vec<u8>)>,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("writing to a Vec cannot fail")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SyncError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(SyncError::BadPayload(format!(
            "{} bytes after the payload",
            rest.len()
        ))),
        Err(e) => Err(SyncError::BadPayload(e.to_string())),
    }
}

pub(crate) fn check_name(doc: &str) -> Result<(), SyncError> {
    if doc.is_empty() || doc.len() > MAX_DOC_NAME {
        return Err(SyncError::BadPayload(format!(
            "document name of {} bytes (1 to {MAX_DOC_NAME} allowed)",
            doc.len()
        )));
    }
    Ok(())
}

impl Gossip {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let gossip: Gossip = decode(bytes)?;
        gossip.deltas.check()?;
        Ok(gossip)
    }
}

impl DocList {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, SyncError> {
        let list: DocList = decode(bytes)?;
        list.check()?;
        Ok(list)
    }

    fn check(&self) -> Result<(), SyncError> {
        let list = self;
        if list.docs.len() > MAX_DOCS_PER_FRAME {
            return Err(SyncError::BadPayload(format!(
                "{} documents in one frame (at most {MAX_DOCS_PER_FRAME})",
                list.docs.len()
            )));
        }
        for (doc, _) in &list.docs {
            check_name(doc)?;
        }
        Ok(())
    }
}
