//! The payloads the protocol puts in frames, one per [`FrameKind`](crate::FrameKind), in postcard.
//! Decoding is bounded by the frame's size limit and checks names and counts. Decoded payloads
//! borrow names and bytes from the frame (postcard writes a byte slice like a sequence of bytes,
//! so the wire is what owned `Vec<u8>`s gave).

use serde::{Deserialize, Serialize};

use crate::SyncError;

/// The longest document name, in bytes.
pub const MAX_DOC_NAME: usize = 128;
/// The most documents one digest, request or deltas frame may name.
pub const MAX_DOCS_PER_FRAME: usize = 1024;

/// Fresh deltas (one or more documents), pushed to a few peers and forwarded while `hops` lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Gossip<'a> {
    pub hops: u8,
    #[serde(borrow)]
    pub deltas: DocList<'a>,
}

/// An application message: `bytes` on `channel` (a name like a document's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AppMessage<'a> {
    pub channel: &'a str,
    pub bytes: &'a [u8],
}

impl<'a> AppMessage<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, SyncError> {
        let message: AppMessage = decode(bytes)?;
        check_name(message.channel)?;
        Ok(message)
    }
}

/// `(document, bytes)` pairs: encoded version vectors in a digest or request, encoded deltas in
/// a deltas frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DocList<'a> {
    /// In a digest or request, a random id of this ask; in a reply, the id of the ask it
    /// answers: deltas computed against a version vector are safe to apply only to the
    /// replica that sent it, not to a later incarnation of the same identity, another instance
    /// of it, or a document shared again under the same name.
    pub answers: u64,
    #[serde(borrow)]
    pub docs: Vec<(&'a str, &'a [u8])>,
}

impl<'a> DocList<'a> {
    /// A list borrowing owned entries, to encode.
    pub(crate) fn of(answers: u64, docs: &'a [(String, Vec<u8>)]) -> Self {
        let docs = docs
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        DocList { answers, docs }
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("writing to a Vec cannot fail")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SyncError> {
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

impl<'a> Gossip<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, SyncError> {
        let gossip: Gossip = decode(bytes)?;
        gossip.deltas.check()?;
        Ok(gossip)
    }
}

impl<'a> DocList<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, SyncError> {
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
        for &(doc, _) in &list.docs {
            check_name(doc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Borrowed slices and strings go on the wire as the owned `Vec<u8>` and `String` did, so
    /// frames stay readable by peers of the same frame version whichever side borrows.
    #[test]
    fn borrowed_lists_keep_the_owned_wire_format() {
        #[derive(Serialize)]
        struct Owned {
            answers: u64,
            docs: Vec<(String, Vec<u8>)>,
        }
        let owned = Owned {
            answers: 7,
            docs: vec![("doc".into(), vec![1, 2, 255]), ("b".into(), vec![])],
        };
        let bytes = encode(&owned);
        let list = DocList::decode(&bytes).unwrap();
        assert_eq!(list.answers, 7);
        assert_eq!(list.docs, vec![("doc", &[1u8, 2, 255][..]), ("b", &[][..])]);
        assert_eq!(encode(&DocList::of(7, &owned.docs)), bytes);
    }
}
