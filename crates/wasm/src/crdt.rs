//! CRDTs as JS classes: each holds its replica id, returns deltas as bytes from its mutators,
//! and exchanges state and deltas as versioned bytes.

use chrysalis_crdt::{
    Causality, Crdt as _, DeltaCrdt, Encode, GCounter as RawGCounter, LWWRegister as RawLww,
    MVRegister as RawMv, ORSet as RawORSet, ORSetDelta, PNCounter as RawPNCounter, ReplicaId,
    VersionVector,
};
use std::{
    cell::{Ref, RefCell, RefMut},
    rc::Rc,
};

use chrysalis_sync::Document;
use js_sys::{Array, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, prelude::*};

use crate::error::{CodedError, JsResult, js};

impl From<chrysalis_crdt::CrdtError> for CodedError {
    fn from(err: chrysalis_crdt::CrdtError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

#[wasm_bindgen(typescript_custom_section)]
const CRDT_TS: &str = r#"
/** A replica id: a name (hashed to 64 bits) or a non-negative safe integer. Unique per writer. */
export type ReplicaIdInput = string | number;
/** A value an ORSet holds. */
export type SetItem = string | Uint8Array;
"#;

/// Reads a replica id: a string is hashed, a number is used as is.
fn replica_id(value: &JsValue) -> Result<ReplicaId, CodedError> {
    if let Some(name) = value.as_string() {
        if name.is_empty() {
            return Err(CodedError::bad_argument("replicaId must not be empty"));
        }
        return Ok(ReplicaId::from_name(&name));
    }
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => {
            Ok(ReplicaId(n as u64))
        }
        _ => Err(CodedError::bad_argument(
            "replicaId must be a non-empty string or a non-negative safe integer",
        )),
    }
}

/// How two encoded version vectors relate: `"before"`, `"after"`, `"equal"` or `"concurrent"`.
///
/// @throws {Error} `code: "BAD_FORMAT"` when either is not an encoded version vector.
#[wasm_bindgen(js_name = compareVersionVectors, unchecked_return_type = "\"before\" | \"after\" | \"equal\" | \"concurrent\"")]
pub fn compare_version_vectors(a: &[u8], b: &[u8]) -> JsResult<String> {
    let a = VersionVector::from_bytes(a).map_err(js)?;
    let b = VersionVector::from_bytes(b).map_err(js)?;
    Ok(match a.compare(&b) {
        Causality::Before => "before",
        Causality::After => "after",
        Causality::Equal => "equal",
        Causality::Concurrent => "concurrent",
    }
    .into())
}

/// A CRDT's state, held by its JS object and by every room that replicates it, so a room joins
/// a peer's delta into it directly (no call out to JS). Wasm runs one call at a time and no
/// borrow outlives a call, so a borrow never meets another; a room that did meet one would get
/// an error, not a panic.
struct Shared<T>(Rc<RefCell<T>>);

impl<T> Shared<T> {
    fn new(state: T) -> Self {
        Shared(Rc::new(RefCell::new(state)))
    }

    fn get(&self) -> Ref<'_, T> {
        self.0.borrow()
    }

    fn get_mut(&self) -> RefMut<'_, T> {
        self.0.borrow_mut()
    }
}

const BUSY: &str = "the document is in use by another call";

impl<T: Document> Document for Shared<T> {
    fn version(&self) -> Result<VersionVector, String> {
        self.0.try_borrow().map_err(|_| BUSY.to_owned())?.version()
    }

    fn delta_since(&self, since: &VersionVector) -> Option<Vec<u8>> {
        self.0.try_borrow().ok()?.delta_since(since)
    }

    fn apply(&mut self, delta: &[u8]) -> Result<bool, String> {
        self.0
            .try_borrow_mut()
            .map_err(|_| BUSY.to_owned())?
            .apply(delta)
    }

    fn join_deltas(&self, deltas: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        match self.0.try_borrow() {
            Ok(doc) => doc.join_deltas(deltas),
            Err(_) => deltas,
        }
    }
}

/// The methods every CRDT class shares: version vector, deltas, merge and bytes.
macro_rules! crdt_class_common {
    ($class:ident, $raw:ty, $delta:ty) => {
        #[wasm_bindgen]
        impl $class {
            /// Internal (what `SyncNode.share` calls): replicates this CRDT in `engine` as
            /// `name`, the room holding the same state as this object.
            ///
            /// @throws {Error} `code: "BAD_DOCUMENT_NAME"` for an empty, over-long or taken name.
            #[wasm_bindgen(js_name = __shareIn, skip_typescript)]
            pub fn share_in(
                &self,
                engine: &mut crate::sync::RoomEngine,
                now: f64,
                name: &str,
            ) -> JsResult<()> {
                let shared = Shared(Rc::clone(&self.inner.0));
                engine.share_document(now, name, Box::new(shared))
            }

            /// This replica's version vector (encoded), to send to a peer for `deltaSince`.
            #[wasm_bindgen(js_name = versionVector)]
            pub fn version_vector(&self) -> Vec<u8> {
                self.inner.get().version_vector().to_bytes()
            }

            /// What a peer whose version vector is `versionVector` lacks, as delta bytes.
            ///
            /// @throws {Error} `code: "BAD_FORMAT"` when `versionVector` is not an encoded version vector.
            #[wasm_bindgen(js_name = deltaSince)]
            pub fn delta_since(
                &self,
                #[wasm_bindgen(js_name = versionVector)] version_vector: &[u8],
            ) -> JsResult<Vec<u8>> {
                let since = VersionVector::from_bytes(version_vector).map_err(js)?;
                Ok(DeltaCrdt::delta_since(&*self.inner.get(), &since).to_bytes())
            }

            /// Joins delta bytes (from a mutator or `deltaSince` of a peer).
            ///
            /// @throws {Error} `code: "BAD_FORMAT"` or `"TOO_LARGE"` for bytes that are not such a delta.
            #[wasm_bindgen(js_name = applyDelta)]
            pub fn apply_delta(&mut self, delta: &[u8]) -> JsResult<()> {
                let delta = <$delta>::from_bytes(delta).map_err(js)?;
                self.inner.get_mut().apply_delta(&delta);
                Ok(())
            }

            /// Joins another replica's whole state.
            pub fn merge(&mut self, other: &$class) {
                self.inner.get_mut().merge(&other.inner.get());
            }

            /// The whole state as versioned bytes.
            #[wasm_bindgen(js_name = toBytes)]
            pub fn to_bytes(&self) -> Vec<u8> {
                self.inner.get().to_bytes()
            }

            /// A replica from `toBytes()` output; `replicaId` is who writes through it.
            ///
            /// @throws {Error} `code: "BAD_FORMAT"` or `"TOO_LARGE"` for bytes that are not such a state.
            #[wasm_bindgen(js_name = fromBytes)]
            pub fn from_bytes(
                bytes: &[u8],
                #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
                replica: JsValue,
            ) -> JsResult<$class> {
                Ok($class {
                    replica: replica_id(&replica)?,
                    inner: Shared::new(<$raw>::from_bytes(bytes).map_err(js)?),
                })
            }
        }
    };
}

/// A grow-only counter.
#[wasm_bindgen]
pub struct GCounter {
    replica: ReplicaId,
    inner: Shared<RawGCounter>,
}

#[wasm_bindgen]
impl GCounter {
    /// An empty counter written by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<GCounter> {
        Ok(GCounter {
            replica: replica_id(&replica)?,
            inner: Shared::new(RawGCounter::new()),
        })
    }

    /// Adds `n` (default 1); returns the delta bytes to ship.
    pub fn increment(&mut self, n: Option<u32>) -> Vec<u8> {
        self.inner
            .get_mut()
            .increment(self.replica, u64::from(n.unwrap_or(1)))
            .to_bytes()
    }

    /// The total over every replica.
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> f64 {
        self.inner.get().value() as f64
    }
}

crdt_class_common!(GCounter, RawGCounter, RawGCounter);

/// A counter that goes up and down.
#[wasm_bindgen]
pub struct PNCounter {
    replica: ReplicaId,
    inner: Shared<RawPNCounter>,
}

#[wasm_bindgen]
impl PNCounter {
    /// An empty counter written by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<PNCounter> {
        Ok(PNCounter {
            replica: replica_id(&replica)?,
            inner: Shared::new(RawPNCounter::new()),
        })
    }

    /// Adds `n` (default 1); returns the delta bytes.
    pub fn increment(&mut self, n: Option<u32>) -> Vec<u8> {
        self.inner
            .get_mut()
            .add(self.replica, i64::from(n.unwrap_or(1)))
            .to_bytes()
    }

    /// Subtracts `n` (default 1); returns the delta bytes.
    pub fn decrement(&mut self, n: Option<u32>) -> Vec<u8> {
        self.inner
            .get_mut()
            .add(self.replica, -i64::from(n.unwrap_or(1)))
            .to_bytes()
    }

    /// Increments minus decrements over every replica.
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> f64 {
        self.inner.get().value() as f64
    }
}

crdt_class_common!(PNCounter, RawPNCounter, RawPNCounter);

/// An ORSet item: text or bytes (kept apart: `"a"` and the bytes of `"a"` are different items).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Item {
    Text(String),
    Bytes(Vec<u8>),
}

impl Item {
    fn from_js(value: &JsValue) -> Result<Item, CodedError> {
        if let Some(text) = value.as_string() {
            Ok(Item::Text(text))
        } else if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
            Ok(Item::Bytes(bytes.to_vec()))
        } else {
            Err(CodedError::bad_argument(
                "ORSet items are strings or Uint8Arrays",
            ))
        }
    }

    fn to_js(&self) -> JsValue {
        match self {
            Item::Text(text) => text.into(),
            Item::Bytes(bytes) => Uint8Array::from(&bytes[..]).into(),
        }
    }
}

/// An add-wins observed-remove set of strings and byte arrays; removes leave no tombstones.
#[wasm_bindgen]
pub struct ORSet {
    replica: ReplicaId,
    inner: Shared<RawORSet<Item>>,
}

#[wasm_bindgen]
impl ORSet {
    /// An empty set written by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<ORSet> {
        Ok(ORSet {
            replica: replica_id(&replica)?,
            inner: Shared::new(RawORSet::new()),
        })
    }

    /// Adds `item`; returns the delta bytes.
    pub fn add(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "SetItem")] item: JsValue,
    ) -> JsResult<Vec<u8>> {
        Ok(self
            .inner
            .get_mut()
            .add(self.replica, Item::from_js(&item)?)
            .to_bytes())
    }

    /// Removes `item`; returns the delta bytes, or `undefined` when it was absent.
    pub fn remove(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "SetItem")] item: JsValue,
    ) -> JsResult<Option<Vec<u8>>> {
        Ok(self
            .inner
            .get_mut()
            .remove(self.replica, &Item::from_js(&item)?)
            .map(|delta| delta.to_bytes()))
    }

    /// Whether `item` is present.
    pub fn has(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SetItem")] item: JsValue,
    ) -> JsResult<bool> {
        Ok(self.inner.get().contains(&Item::from_js(&item)?))
    }

    /// The items, strings first (sorted), then byte arrays (sorted).
    #[wasm_bindgen(unchecked_return_type = "SetItem[]")]
    pub fn values(&self) -> Array {
        self.inner.get().iter().map(Item::to_js).collect()
    }

    /// The number of items.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.get().len()
    }
}

crdt_class_common!(ORSet, RawORSet<Item>, ORSetDelta<Item>);

/// JSON text of a JS value (what registers store), checked to be JSON-serialisable.
fn json_of(value: &JsValue) -> Result<String, CodedError> {
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| CodedError::bad_argument("register values must be JSON-serialisable"))
}

fn value_of(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap_or(JsValue::UNDEFINED)
}

/// A last-writer-wins register of a JSON-serialisable value, ordered by a hybrid logical clock.
#[wasm_bindgen]
pub struct LWWRegister {
    replica: ReplicaId,
    inner: Shared<RawLww<String>>,
}

#[wasm_bindgen]
impl LWWRegister {
    /// An empty register written by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<LWWRegister> {
        Ok(LWWRegister {
            replica: replica_id(&replica)?,
            inner: Shared::new(RawLww::new()),
        })
    }

    /// Writes `value` (JSON-serialisable) at `now` (ms, default `Date.now()`); returns the delta bytes.
    pub fn set(&mut self, value: JsValue, now: Option<f64>) -> JsResult<Vec<u8>> {
        let millis = now.unwrap_or_else(js_sys::Date::now).max(0.0) as u64;
        Ok(self
            .inner
            .get_mut()
            .set(self.replica, json_of(&value)?, millis)
            .to_bytes())
    }

    /// The current value (`undefined` before the first write).
    pub fn get(&self) -> JsValue {
        self.inner
            .get()
            .get()
            .map_or(JsValue::UNDEFINED, |json| value_of(json))
    }
}

crdt_class_common!(LWWRegister, RawLww<String>, RawLww<String>);

/// A multi-value register: concurrent writes are all kept until a later write replaces them.
#[wasm_bindgen]
pub struct MVRegister {
    replica: ReplicaId,
    inner: Shared<RawMv<String>>,
}

#[wasm_bindgen]
impl MVRegister {
    /// An empty register written by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<MVRegister> {
        Ok(MVRegister {
            replica: replica_id(&replica)?,
            inner: Shared::new(RawMv::new()),
        })
    }

    /// Writes `value` (JSON-serialisable), replacing every value seen; returns the delta bytes.
    pub fn set(&mut self, value: JsValue) -> JsResult<Vec<u8>> {
        Ok(self
            .inner
            .get_mut()
            .set(self.replica, json_of(&value)?)
            .to_bytes())
    }

    /// The current values: one, or several after concurrent writes.
    pub fn values(&self) -> Array {
        self.inner
            .get()
            .values()
            .into_iter()
            .map(|json| value_of(json))
            .collect()
    }
}

crdt_class_common!(MVRegister, RawMv<String>, RawMv<String>);

/// Per-skill levels that only grow; concurrent raises keep the higher level.
#[wasm_bindgen]
pub struct SkillAccumulator {
    replica: ReplicaId,
    inner: Shared<chrysalis_crdt::SkillAccumulator>,
}

#[wasm_bindgen]
impl SkillAccumulator {
    /// No skills yet; raised by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<SkillAccumulator> {
        Ok(SkillAccumulator {
            replica: replica_id(&replica)?,
            inner: Shared::new(Default::default()),
        })
    }

    /// Raises `skill` to `level` if higher than now; returns the delta bytes.
    ///
    /// @throws {Error} `code: "BAD_VALUE"` for a negative or non-finite level.
    pub fn raise(&mut self, skill: &str, level: f64) -> JsResult<Vec<u8>> {
        Ok(self
            .inner
            .get_mut()
            .raise(self.replica, skill, level)
            .map_err(js)?
            .to_bytes())
    }

    /// The level of `skill` (0 when never raised).
    pub fn level(&self, skill: &str) -> f64 {
        self.inner.get().level(skill)
    }

    /// Every skill name with its level, by name.
    #[wasm_bindgen(unchecked_return_type = "Array<{ skill: string, level: number }>")]
    pub fn skills(&self) -> Array {
        self.inner
            .get()
            .skills()
            .map(|(name, skill)| {
                let entry = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&entry, &"skill".into(), &name.into());
                let _ = js_sys::Reflect::set(&entry, &"level".into(), &skill.level.into());
                JsValue::from(entry)
            })
            .collect()
    }
}

crdt_class_common!(
    SkillAccumulator,
    chrysalis_crdt::SkillAccumulator,
    chrysalis_crdt::SkillAccumulator
);

/// Episodes with causal links; merging keeps every episode once, `ordered()` respects the links.
#[wasm_bindgen]
pub struct EpisodeMemory {
    replica: ReplicaId,
    inner: Shared<chrysalis_crdt::EpisodeMemory>,
}

#[wasm_bindgen]
impl EpisodeMemory {
    /// No episodes yet; recorded by `replicaId`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = replicaId, unchecked_param_type = "ReplicaIdInput")]
        replica: JsValue,
    ) -> JsResult<EpisodeMemory> {
        Ok(EpisodeMemory {
            replica: replica_id(&replica)?,
            inner: Shared::new(Default::default()),
        })
    }

    /// Records episode `id` following the episodes in `links`, at `now` (ms, default
    /// `Date.now()`); returns the delta bytes (empty when `id` exists).
    pub fn record(
        &mut self,
        id: &str,
        content: &str,
        links: Option<Vec<String>>,
        now: Option<f64>,
    ) -> Vec<u8> {
        let millis = now.unwrap_or_else(js_sys::Date::now).max(0.0) as u64;
        self.inner
            .get_mut()
            .record(self.replica, id, content, links.unwrap_or_default(), millis)
            .to_bytes()
    }

    /// The episode `id`: `{ content, links, at }` (`at` in ms), or `undefined`.
    #[wasm_bindgen(
        unchecked_return_type = "{ content: string, links: string[], at: number } | undefined"
    )]
    pub fn get(&self, id: &str) -> JsValue {
        let episodes = self.inner.get();
        let Some(episode) = episodes.get(id) else {
            return JsValue::UNDEFINED;
        };
        let entry = js_sys::Object::new();
        let links: Array = episode
            .links
            .iter()
            .map(|l| JsValue::from(l.as_str()))
            .collect();
        let _ = js_sys::Reflect::set(&entry, &"content".into(), &episode.content.as_str().into());
        let _ = js_sys::Reflect::set(&entry, &"links".into(), &links);
        let _ = js_sys::Reflect::set(&entry, &"at".into(), &(episode.at.millis as f64).into());
        entry.into()
    }

    /// Every episode id, each after the episodes it links to; the same order on every replica.
    pub fn ordered(&self) -> Vec<String> {
        self.inner
            .get()
            .ordered()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The number of episodes.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.get().len()
    }
}

crdt_class_common!(
    EpisodeMemory,
    chrysalis_crdt::EpisodeMemory,
    chrysalis_crdt::EpisodeMemory
);

fn node_hash(hex: &str) -> Result<chrysalis_crdt::NodeHash, CodedError> {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<_>>()
        .filter(|b: &Vec<u8>| b.len() == 32)
        .ok_or_else(|| {
            CodedError::bad_argument(format!("{hex:?} is not a 64-character hex node hash"))
        })?;
    Ok(chrysalis_crdt::NodeHash(
        bytes.try_into().expect("32 bytes"),
    ))
}

/// A content-addressed Merkle DAG (BLAKE3 node hashes, as hex strings in JS).
#[wasm_bindgen]
pub struct MerkleDag {
    inner: chrysalis_crdt::MerkleDag,
}

#[wasm_bindgen]
impl MerkleDag {
    /// An empty DAG.
    #[wasm_bindgen(constructor)]
    pub fn new() -> MerkleDag {
        MerkleDag {
            inner: chrysalis_crdt::MerkleDag::new(),
        }
    }

    /// Appends a node after the current heads; returns its hash.
    pub fn append(&mut self, payload: Vec<u8>) -> String {
        self.inner.append(payload).to_hex()
    }

    /// The heads (nodes without children), as hex hashes.
    pub fn heads(&self) -> Vec<String> {
        self.inner.heads().iter().map(|h| h.to_hex()).collect()
    }

    /// The payload of node `hash`, or `undefined`.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` when `hash` is not a hex node hash.
    pub fn payload(&self, hash: &str) -> JsResult<Option<Vec<u8>>> {
        Ok(self.inner.get(&node_hash(hash)?).map(|n| n.payload.clone()))
    }

    /// Every node hash, parents before children, the same order on every replica.
    #[wasm_bindgen(js_name = topologicalOrder)]
    pub fn topological_order(&self) -> Vec<String> {
        self.inner
            .topological_order()
            .iter()
            .map(|h| h.to_hex())
            .collect()
    }

    /// The nodes a peer with heads `remoteHeads` lacks, as bytes for `insertNodes`.
    pub fn missing(
        &self,
        #[wasm_bindgen(js_name = remoteHeads)] remote_heads: Vec<String>,
    ) -> JsResult<Vec<u8>> {
        let heads = remote_heads
            .iter()
            .map(|h| node_hash(h))
            .collect::<Result<Vec<_>, _>>()?;
        let nodes = self
            .inner
            .missing(&heads)
            .into_iter()
            .map(|(_, node)| node)
            .collect();
        Ok(chrysalis_crdt::DagNodes(nodes).to_bytes())
    }

    /// Inserts nodes from a peer's `missing`, checking every hash and parent; returns how many were new.
    ///
    /// @throws {Error} `code: "BAD_FORMAT"`, `"HASH_MISMATCH"` or `"MISSING_PARENTS"`.
    #[wasm_bindgen(js_name = insertNodes)]
    pub fn insert_nodes(&mut self, bytes: &[u8]) -> JsResult<usize> {
        let nodes = chrysalis_crdt::DagNodes::from_bytes(bytes).map_err(js)?;
        self.inner.insert_all(&nodes).map_err(js)
    }

    /// Joins another DAG.
    pub fn merge(&mut self, other: &MerkleDag) {
        self.inner.merge(&other.inner);
    }

    /// The whole DAG as bytes.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }

    /// A DAG from `toBytes()` output (every hash and parent re-checked).
    ///
    /// @throws {Error} `code: "BAD_FORMAT"`, `"HASH_MISMATCH"` or `"MISSING_PARENTS"`.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<MerkleDag> {
        Ok(MerkleDag {
            inner: chrysalis_crdt::MerkleDag::from_bytes(bytes).map_err(js)?,
        })
    }

    /// The number of nodes.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.len()
    }
}

impl Default for MerkleDag {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen(typescript_custom_section)]
const RESOLVER_TS: &str = r#"
/** A conflict type. */
export type ConflictType = "direct-contradiction" | "causal-ordering" | "semantic-inconsistency" | "merge-failure";
/** A resolution strategy. */
export type ResolutionStrategy = "last-writer-wins" | "first-writer-wins" | "majority-vote" | "semantic-merge" | "manual-review";
/** One replica's claim about a key: a JSON value, when (ms), by whom, and optionally what it had seen. */
export interface ConflictClaim {
  value: unknown;
  at: number;
  replica: ReplicaIdInput;
  /** An encoded version vector (`versionVector()` of any CRDT class). */
  clock?: Uint8Array;
}
/** The verdict of `resolveClaims`. */
export interface ConflictVerdict {
  kind: ConflictType;
  /** The value chosen, when resolved. */
  value?: unknown;
  /** The review-queue index, when queued for manual review. */
  queued?: number;
}
"#;

fn conflict_type(name: &str) -> Result<chrysalis_crdt::ConflictType, CodedError> {
    use chrysalis_crdt::ConflictType as C;
    Ok(match name {
        "direct-contradiction" => C::DirectContradiction,
        "causal-ordering" => C::CausalOrdering,
        "semantic-inconsistency" => C::SemanticInconsistency,
        "merge-failure" => C::MergeFailure,
        other => {
            return Err(CodedError::bad_argument(format!(
                "unknown conflict type {other:?}"
            )));
        }
    })
}

fn conflict_type_name(kind: chrysalis_crdt::ConflictType) -> &'static str {
    use chrysalis_crdt::ConflictType as C;
    match kind {
        C::DirectContradiction => "direct-contradiction",
        C::CausalOrdering => "causal-ordering",
        C::SemanticInconsistency => "semantic-inconsistency",
        C::MergeFailure => "merge-failure",
    }
}

fn strategy(name: &str) -> Result<chrysalis_crdt::ResolutionStrategy, CodedError> {
    use chrysalis_crdt::ResolutionStrategy as S;
    Ok(match name {
        "last-writer-wins" => S::LastWriterWins,
        "first-writer-wins" => S::FirstWriterWins,
        "majority-vote" => S::MajorityVote,
        "semantic-merge" => S::SemanticMerge,
        "manual-review" => S::ManualReview,
        other => {
            return Err(CodedError::bad_argument(format!(
                "unknown resolution strategy {other:?}"
            )));
        }
    })
}

fn set_prop(object: &js_sys::Object, key: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(object, &key.into(), value);
}

/// Detects and settles conflicting claims about a key, the same way on every replica.
#[wasm_bindgen]
pub struct ConflictResolver {
    inner: chrysalis_crdt::ConflictResolver<String>,
}

#[wasm_bindgen]
impl ConflictResolver {
    /// A resolver using `strategy` (default `"last-writer-wins"`) for every conflict type.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an unknown strategy.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ResolutionStrategy")] default_strategy: Option<
            String,
        >,
    ) -> JsResult<ConflictResolver> {
        let chosen = strategy(default_strategy.as_deref().unwrap_or("last-writer-wins"))?;
        Ok(ConflictResolver {
            inner: chrysalis_crdt::ConflictResolver::new(chosen),
        })
    }

    /// Uses `strategy` for conflicts of `kind`.
    #[wasm_bindgen(js_name = setStrategy)]
    pub fn set_strategy(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "ConflictType")] kind: &str,
        #[wasm_bindgen(js_name = strategy, unchecked_param_type = "ResolutionStrategy")]
        strategy_name: &str,
    ) -> JsResult<()> {
        self.inner
            .set_strategy(conflict_type(kind)?, strategy(strategy_name)?);
        Ok(())
    }

    /// The function `"semantic-merge"` calls with the candidate values (canonical order); it
    /// returns the merged value, or `undefined` to give up (a `"merge-failure"`).
    #[wasm_bindgen(js_name = setSemanticMerge)]
    pub fn set_semantic_merge(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "(values: unknown[]) => unknown")]
        merge: js_sys::Function,
    ) {
        self.inner.set_semantic_merge(move |values: &[&String]| {
            let array: Array = values.iter().map(|v| value_of(v)).collect();
            let merged = merge.call1(&JsValue::UNDEFINED, &array).ok()?;
            if merged.is_undefined() {
                None
            } else {
                json_of(&merged).ok()
            }
        });
    }

    /// A check of whether two different values can both hold; when it returns false the
    /// conflict is a `"semantic-inconsistency"`.
    #[wasm_bindgen(js_name = setConsistencyCheck)]
    pub fn set_consistency_check(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "(a: unknown, b: unknown) => boolean")]
        check: js_sys::Function,
    ) {
        self.inner
            .set_consistency_check(move |a: &String, b: &String| {
                check
                    .call2(&JsValue::UNDEFINED, &value_of(a), &value_of(b))
                    .is_ok_and(|v| v.is_truthy())
            });
    }

    /// Detects the conflict among `claims` about `key` and settles it; `undefined` when the
    /// claims agree.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for malformed claims.
    #[wasm_bindgen(js_name = resolveClaims, unchecked_return_type = "ConflictVerdict | undefined")]
    pub fn resolve_claims(
        &mut self,
        key: &str,
        #[wasm_bindgen(unchecked_param_type = "ConflictClaim[]")] claims: Array,
    ) -> JsResult<JsValue> {
        let mut parsed = Vec::with_capacity(claims.length() as usize);
        for claim in claims.iter() {
            let get = |name: &str| {
                js_sys::Reflect::get(&claim, &name.into()).unwrap_or(JsValue::UNDEFINED)
            };
            let at = get("at")
                .as_f64()
                .filter(|t| *t >= 0.0)
                .ok_or_else(|| CodedError::bad_argument("a claim needs `at`, milliseconds"))?;
            let clock = match get("clock").dyn_into::<Uint8Array>() {
                Ok(bytes) => Some(VersionVector::from_bytes(&bytes.to_vec()).map_err(js)?),
                Err(_) => None,
            };
            parsed.push(chrysalis_crdt::Claim {
                value: json_of(&get("value"))?,
                at: chrysalis_crdt::Hlc {
                    millis: at as u64,
                    logical: 0,
                    replica: replica_id(&get("replica"))?,
                },
                clock,
            });
        }
        let Some(conflict) = self.inner.detect(key, parsed) else {
            return Ok(JsValue::UNDEFINED);
        };
        Ok(self.verdict(conflict).into())
    }

    /// The conflict among an MV-register's concurrent values, settled; `undefined` without one.
    #[wasm_bindgen(js_name = resolveRegister, unchecked_return_type = "ConflictVerdict | undefined")]
    pub fn resolve_register(&mut self, key: &str, register: &MVRegister) -> JsValue {
        match self.inner.detect_in_register(key, &register.inner.get()) {
            Some(conflict) => self.verdict(conflict).into(),
            None => JsValue::UNDEFINED,
        }
    }

    fn verdict(&mut self, conflict: chrysalis_crdt::Conflict<String>) -> js_sys::Object {
        let verdict = js_sys::Object::new();
        let (kind, resolution) = self.inner.resolve(conflict);
        set_prop(&verdict, "kind", &conflict_type_name(kind).into());
        match resolution {
            chrysalis_crdt::Resolution::Resolved(value) => {
                set_prop(&verdict, "value", &value_of(&value))
            }
            chrysalis_crdt::Resolution::Queued(index) => {
                set_prop(&verdict, "queued", &(index as f64).into())
            }
        }
        verdict
    }

    /// The conflicts waiting for manual review: `{ key, kind, values }` each.
    #[wasm_bindgen(js_name = reviewQueue, unchecked_return_type = "Array<{ key: string, kind: ConflictType, values: unknown[] }>")]
    pub fn review_queue(&self) -> Array {
        self.inner
            .review_queue()
            .iter()
            .map(|conflict| {
                let entry = js_sys::Object::new();
                set_prop(&entry, "key", &conflict.key.as_str().into());
                set_prop(&entry, "kind", &conflict_type_name(conflict.kind).into());
                let values: Array = conflict.claims.iter().map(|c| value_of(&c.value)).collect();
                set_prop(&entry, "values", &values);
                JsValue::from(entry)
            })
            .collect()
    }

    /// Removes conflict `index` from the review queue once a person settled it; returns whether it existed.
    #[wasm_bindgen(js_name = takeReviewed)]
    pub fn take_reviewed(&mut self, index: usize) -> bool {
        self.inner.take_reviewed(index).is_some()
    }
}
