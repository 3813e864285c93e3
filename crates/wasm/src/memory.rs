//! `MemoryEngine`: an agent's memory for JS — the replicated bead store, its search index and
//! k-of-n acceptance ([`chrysalis_memory`]). The package's `MemorySystem` (pkg/memory.js) drives
//! it: it embeds text, shares the engine with a `SyncNode` (the engine is a `SyncDocument`) and
//! persists the engine's journal of deltas to IndexedDB.

use std::collections::BTreeSet;

use chrysalis_memory::{
    Acceptance, Bead, BeadDraft, BeadEmbedding, BeadId, Council, Filter, Identity, MemoryError,
    MemoryIndex, MemoryStore, Motion, Query, Ranking, StoreChange, agent_id, bead_id_hex,
};
use chrysalis_sync::Document;
use js_sys::{Array, Float32Array, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};

use crate::SigningKey;
use crate::error::{CodedError, JsResult, js};
use crate::input::{
    counts, hex, integer_option, now_ms, object, option, string_option, usize_option,
};
use crate::vector::hnsw_config;

impl From<MemoryError> for CodedError {
    fn from(err: MemoryError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

#[wasm_bindgen(typescript_custom_section)]
const MEMORY_TS: &str = r#"
/** A memory item as JS sees it. */
export interface MemoryBead {
  /** BLAKE3 of the canonical content, hex. */
  id: string;
  content: string;
  kind: string;
  tags: string[];
  /** The author's public key, hex. */
  author: string;
  /** The author's short printable id. */
  authorId: string;
  /** Creation time (ms since the epoch, the author's clock). */
  created: number;
  /** The embedding's model, or null for a bead without one. */
  model: string | null;
  /** The author's Ed25519 signature over the id, hex. */
  signature: string;
}
/** Which beads a recall may return; every condition must hold. */
export interface MemoryFilter {
  kinds?: string[];
  /** Every one of these tags. */
  tags?: string[];
  /** Authors' public keys in hex. */
  authors?: string[];
  /** Created at or after (ms). */
  after?: number;
  /** Created before (ms). */
  before?: number;
}
/** How a recall ranks: by meaning, by keywords, both (relative score fusion) or both by reciprocal rank. */
export type MemoryRanking = "vector" | "keyword" | "hybrid" | "rrf";
export interface MemoryRecallOptions {
  /** How many results (default 5). */
  k?: number;
  filter?: MemoryFilter;
  /** Default "hybrid" when the query has an embedding, else "keyword". */
  ranking?: MemoryRanking;
}
export interface MemoryHit {
  bead: MemoryBead;
  /** The ranking score (cosine, BM25 or fused). */
  score: number;
  /** Cosine similarity to the query, when known. */
  similarity: number | null;
  /** BM25 score, when the bead matched keywords. */
  keyword: number | null;
}
/** Whether a bead is accepted by the council (k-of-n member approvals). */
export interface MemoryAcceptance {
  accepted: boolean;
  /** Member approvals so far. */
  have: number;
  /** Approvals needed. */
  need: number;
  /** Approving members' public keys, hex. */
  approvers: string[];
}
export type MemoryChange = { type: "added" | "removed" | "updated" | "accepted"; id: string };
export interface MemoryEngineOptions {
  /** Council members' public keys in hex (default: this agent alone). */
  members?: string[];
  /** Member approvals that accept a bead (default 1). */
  threshold?: number;
  /** HNSW links per node (default 16). */
  m?: number;
  /** HNSW candidates while building (default 100). */
  efConstruction?: number;
  /** HNSW candidates while searching (default 128). */
  efSearch?: number;
  /** The embedding model whose vectors are indexed (default: the model of this agent's first remembered or recalled vector); a peer's bead never chooses it. */
  model?: { name: string; dims: number };
}
/** A council motion: what the council's agreement decides. */
export type CouncilMotion =
  | { type: "set-threshold"; threshold: number }
  | { type: "accept-fact"; id: string }
  | { type: "admit"; member: string }
  | { type: "remove"; member: string }
  /** Decoded only: rotations are signed by both keys and made in Rust. */
  | { type: "rotate"; old: string; new: string };
/** The council as decided so far. */
export interface CouncilState {
  /** Members' public keys (hex), sorted: the agreement's member order. */
  members: string[];
  /** Member approvals that accept a bead. */
  threshold: number;
  /** Member endorsements a motion needs: the threshold, at most n − f (so f silent members never block the council). */
  motionEndorsements: number;
  /** Motions applied. */
  applied: number;
  /** Membership changes applied (the agreement's epoch). */
  epoch: number;
}
export interface MemoryEngineStats {
  beads: number;
  /** Beads whose vector is of another model than the index's (keyword search only). */
  otherModel: number;
  model: string | null;
  dims: number;
  /** Deltas refused from peers, by reason (`ID_MISMATCH`, `BAD_SIGNATURE`, `DECODE`, …). */
  rejected: Record<string, number>;
}
"#;

/// One agent's memory: the store, the index and the council, in wasm.
#[wasm_bindgen]
pub struct MemoryEngine {
    me: Identity,
    store: MemoryStore,
    index: MemoryIndex,
    council: Council,
    accepted: BTreeSet<BeadId>,
    journal: Vec<Vec<u8>>,
    changes: Vec<JsValue>,
}

pub(crate) fn key_from_hex(text: &str, what: &str) -> Result<[u8; 32], CodedError> {
    let bad = || CodedError::bad_argument(format!("{what} must be 64 hex digits"));
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

pub(crate) fn strings(value: &JsValue, what: &str) -> Result<Vec<String>, CodedError> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let array = value
        .dyn_ref::<Array>()
        .ok_or_else(|| CodedError::bad_argument(format!("{what} must be an array of strings")))?;
    array
        .iter()
        .map(|v| {
            v.as_string().ok_or_else(|| {
                CodedError::bad_argument(format!("{what} must be an array of strings"))
            })
        })
        .collect()
}

fn text_option(options: &JsValue, name: &str, default: &str) -> Result<String, CodedError> {
    let value = option(options, name)?;
    if value.is_undefined() {
        return Ok(default.to_owned());
    }
    value
        .as_string()
        .ok_or_else(|| CodedError::bad_argument(format!("option {name} must be a string")))
}

/// An `EmbeddingVector` (a `Float32Array` with a `model` property) as (model, vector).
fn embedding(value: &JsValue) -> Result<Option<(String, Vec<f32>)>, CodedError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let vector = value.dyn_ref::<Float32Array>().ok_or_else(|| {
        CodedError::bad_argument("an embedding is a Float32Array with a model (an EmbeddingVector)")
    })?;
    let model = Reflect::get(value, &"model".into())
        .ok()
        .and_then(|m| m.as_string())
        .ok_or_else(|| CodedError::bad_argument("the embedding has no model name"))?;
    Ok(Some((model, vector.to_vec())))
}

fn bead_object(bead: &Bead) -> JsValue {
    let tags: Array = bead.tags.iter().map(|t| JsValue::from_str(t)).collect();
    object(&[
        ("id", bead_id_hex(&bead.id).into()),
        ("content", bead.content.as_str().into()),
        ("kind", bead.kind.as_str().into()),
        ("tags", tags.into()),
        ("author", hex(&bead.author).into()),
        ("authorId", agent_id(&bead.author).into()),
        ("created", (bead.created.millis as f64).into()),
        ("signature", hex(&bead.signature.0).into()),
        (
            "model",
            bead.embedding
                .as_ref()
                .map_or(JsValue::NULL, |e| e.model.as_str().into()),
        ),
    ])
}

/// A motion as JS sees it ([`CouncilMotion`] in the TS types).
fn motion_object(motion: &Motion) -> JsValue {
    match motion {
        Motion::SetThreshold(k) => {
            object(&[("type", "set-threshold".into()), ("threshold", (*k).into())])
        }
        Motion::AcceptFact(id) => object(&[
            ("type", "accept-fact".into()),
            ("id", bead_id_hex(id).into()),
        ]),
        Motion::Admit(key) => object(&[("type", "admit".into()), ("member", hex(key).into())]),
        Motion::Remove(key) => object(&[("type", "remove".into()), ("member", hex(key).into())]),
        Motion::Rotate(r) => object(&[
            ("type", "rotate".into()),
            ("old", hex(&r.old).into()),
            ("new", hex(&r.new).into()),
        ]),
    }
}

/// A motion from JS (rotations excepted: they carry two signatures and are made in Rust).
fn motion_from_object(value: &JsValue) -> Result<Motion, CodedError> {
    let field = |name| option(value, name);
    let kind = field("type")?.as_string().unwrap_or_default();
    Ok(match kind.as_str() {
        "set-threshold" => {
            let k = integer_option(value, "threshold", 0)?;
            Motion::SetThreshold(u32::try_from(k).map_err(|_| {
                CodedError::bad_argument("threshold must be a 32-bit unsigned integer")
            })?)
        }
        "accept-fact" => Motion::AcceptFact(key_from_hex(
            &field("id")?.as_string().unwrap_or_default(),
            "id",
        )?),
        "admit" | "remove" => {
            let key = key_from_hex(&field("member")?.as_string().unwrap_or_default(), "member")?;
            if kind == "admit" {
                Motion::Admit(key)
            } else {
                Motion::Remove(key)
            }
        }
        _ => {
            return Err(CodedError::bad_argument(
                "a motion's type is set-threshold, accept-fact, admit or remove",
            ));
        }
    })
}

fn change(kind: &str, id: &BeadId) -> JsValue {
    object(&[("type", kind.into()), ("id", bead_id_hex(id).into())])
}

fn filter(value: &JsValue) -> Result<Filter, CodedError> {
    let authors = strings(&option(value, "authors")?, "filter.authors")?
        .iter()
        .map(|a| key_from_hex(a, "filter.authors[]"))
        .collect::<Result<_, _>>()?;
    let time = |name| -> Result<Option<u64>, CodedError> {
        if option(value, name)?.is_undefined() {
            Ok(None)
        } else {
            integer_option(value, name, 0).map(Some)
        }
    };
    Ok(Filter {
        kinds: strings(&option(value, "kinds")?, "filter.kinds")?,
        tags: strings(&option(value, "tags")?, "filter.tags")?,
        authors,
        after: time("after")?,
        before: time("before")?,
    })
}

#[wasm_bindgen]
impl MemoryEngine {
    /// The memory of the agent `identity` (its seed is copied), from `state` (bytes from
    /// `toBytes`, or nothing for an empty memory).
    ///
    /// @throws {Error} `code: "DECODE"`, `"ID_MISMATCH"` or `"BAD_SIGNATURE"` for a damaged state;
    /// `"BAD_ARGUMENT"` / `"BAD_INPUT"` for bad options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        identity: &SigningKey,
        state: Option<Vec<u8>>,
        #[wasm_bindgen(unchecked_param_type = "MemoryEngineOptions | undefined")] options: JsValue,
    ) -> JsResult<MemoryEngine> {
        let me = Identity::from_seed(&identity.seed()[..]).map_err(js)?;
        let key = me.public_key();
        let store = match state {
            Some(bytes) if !bytes.is_empty() => {
                MemoryStore::from_bytes(&key, &bytes).map_err(js)?
            }
            _ => MemoryStore::new(&key),
        };
        let config = hnsw_config(&options)?;
        let members = strings(&option(&options, "members").map_err(js)?, "members")
            .map_err(js)?
            .iter()
            .map(|m| key_from_hex(m, "members[]"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(js)?;
        let members = if members.is_empty() {
            vec![key]
        } else {
            members
        };
        let threshold = usize_option(&options, "threshold", 1).map_err(js)?;
        let council = Council::new(members, threshold).map_err(js)?;
        let model = option(&options, "model").map_err(js)?;
        let model = if model.is_undefined() || model.is_null() {
            None
        } else {
            let name = string_option(&model, "name")
                .map_err(js)?
                .ok_or_else(|| js(CodedError::bad_argument("model.name must be a string")))?;
            Some((name, usize_option(&model, "dims", 0).map_err(js)?))
        };
        let index = MemoryIndex::build(&store, config, model);
        let mut engine = MemoryEngine {
            me,
            store,
            index,
            council,
            accepted: BTreeSet::new(),
            journal: Vec::new(),
            changes: Vec::new(),
        };
        engine.store.take_changes();
        let ids: Vec<BeadId> = engine.store.beads().map(|b| b.id).collect();
        for id in ids {
            engine.note_acceptance(id);
        }
        engine.changes.clear();
        Ok(engine)
    }

    /// This agent's short printable id.
    #[wasm_bindgen(getter, js_name = agentId)]
    pub fn agent_id(&self) -> String {
        self.me.id()
    }

    /// This agent's public key, hex.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> String {
        hex(&self.me.public_key())
    }

    /// Signs and stores a bead; returns it. The delta joins the journal (`takeJournal`).
    ///
    /// @throws {Error} `code: "BAD_INPUT"` for empty or over-long content, kind or tags, or a
    /// bad vector.
    #[wasm_bindgen(unchecked_return_type = "MemoryBead")]
    pub fn remember(
        &mut self,
        content: String,
        #[wasm_bindgen(unchecked_param_type = "{ kind?: string; tags?: string[] } | undefined")]
        options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | null | undefined")] vector: JsValue,
        now: f64,
    ) -> JsResult<JsValue> {
        let draft = BeadDraft {
            content,
            kind: text_option(&options, "kind", "note").map_err(js)?,
            tags: strings(&option(&options, "tags").map_err(js)?, "tags").map_err(js)?,
            embedding: embedding(&vector)
                .map_err(js)?
                .map(|(model, vector)| BeadEmbedding { model, vector }),
        };
        let (bead, delta) = self
            .store
            .remember(&self.me, draft, now_ms(now))
            .map_err(js)?;
        if let Some(e) = &bead.embedding {
            self.choose_model(&e.model, e.vector.len());
        }
        self.journal.push(delta);
        self.absorb();
        Ok(bead_object(&bead))
    }

    /// Forgets a bead this agent wrote, everywhere and for good (its signed forget removes the
    /// bead with this agent's metadata and approval of it); whether it was there.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an id that is not 64 hex digits;
    /// `"NOT_AUTHOR"` for another agent's bead.
    pub fn forget(&mut self, id: &str, now: f64) -> JsResult<bool> {
        let id = key_from_hex(id, "id").map_err(js)?;
        if self.store.bead(&id).is_none() {
            return Ok(false);
        }
        let delta = self.store.forget(&self.me, &id, now_ms(now)).map_err(js)?;
        self.journal.push(delta);
        self.absorb();
        Ok(true)
    }

    /// Signs this agent's approval of a bead; whether it was new.
    ///
    /// @throws {Error} `code: "BAD_INPUT"` for a bead not in memory.
    pub fn approve(&mut self, id: &str, now: f64) -> JsResult<bool> {
        let id = key_from_hex(id, "id").map_err(js)?;
        let delta = self.store.approve(&self.me, &id, now_ms(now)).map_err(js)?;
        let fresh = delta.is_some();
        self.journal.extend(delta);
        self.absorb();
        Ok(fresh)
    }

    /// The council's verdict on a bead.
    #[wasm_bindgen(unchecked_return_type = "MemoryAcceptance")]
    pub fn acceptance(&self, id: &str) -> JsResult<JsValue> {
        let id = key_from_hex(id, "id").map_err(js)?;
        let (accepted, have, need, approvers) = match self.council.acceptance(&self.store, &id) {
            Acceptance::Accepted { approvers } => {
                let n = approvers.len();
                (true, n, self.council.threshold(), approvers)
            }
            Acceptance::Pending { have, need } => (false, have, need, Vec::new()),
        };
        let approvers: Array = approvers.iter().map(|a| JsValue::from(hex(a))).collect();
        Ok(object(&[
            ("accepted", accepted.into()),
            ("have", (have as f64).into()),
            ("need", (need as f64).into()),
            ("approvers", approvers.into()),
        ]))
    }

    /// The best beads for a query: `text` for keywords, `vector` (an `EmbeddingVector` of the
    /// same model as the memories) for meaning.
    ///
    /// @throws {Error} `code: "EMBEDDING_MISMATCH"` for a vector of another model or size;
    /// `"BAD_ARGUMENT"` for bad options.
    #[wasm_bindgen(unchecked_return_type = "MemoryHit[]")]
    pub fn recall(
        &mut self,
        text: &str,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | null | undefined")] vector: JsValue,
        #[wasm_bindgen(unchecked_param_type = "MemoryRecallOptions | undefined")] options: JsValue,
    ) -> JsResult<Array> {
        let embedded = embedding(&vector).map_err(js)?;
        if let Some((model, vector)) = &embedded {
            self.choose_model(model, vector.len());
        }
        let default = if embedded.is_some() {
            "hybrid"
        } else {
            "keyword"
        };
        let ranking = match text_option(&options, "ranking", default)
            .map_err(js)?
            .as_str()
        {
            "vector" => Ranking::Vector,
            "keyword" => Ranking::Keyword,
            "hybrid" => Ranking::Hybrid,
            "rrf" => Ranking::ReciprocalRank,
            other => {
                return Err(js(CodedError::bad_argument(format!(
                    "ranking must be vector, keyword, hybrid or rrf, not {other}"
                ))));
            }
        };
        let filter = filter(&option(&options, "filter").map_err(js)?).map_err(js)?;
        let query = Query {
            text,
            embedding: embedded.as_ref().map(|(m, v)| (m.as_str(), v.as_slice())),
            k: usize_option(&options, "k", 5).map_err(js)?,
            filter: &filter,
            ranking,
        };
        let hits = self.index.search(&query).map_err(js)?;
        let number = |x: Option<f32>| x.map_or(JsValue::NULL, |v| f64::from(v).into());
        Ok(hits
            .iter()
            .filter_map(|hit| {
                let bead = self.store.bead(&hit.id)?;
                Some(object(&[
                    ("bead", bead_object(bead)),
                    ("score", f64::from(hit.score).into()),
                    ("similarity", number(hit.similarity)),
                    ("keyword", number(hit.keyword)),
                ]))
            })
            .collect())
    }

    /// A bead by id, or undefined.
    #[wasm_bindgen(unchecked_return_type = "MemoryBead | undefined")]
    pub fn bead(&self, id: &str) -> JsResult<JsValue> {
        let id = key_from_hex(id, "id").map_err(js)?;
        Ok(self.store.bead(&id).map_or(JsValue::UNDEFINED, bead_object))
    }

    /// Every bead, by id.
    #[wasm_bindgen(unchecked_return_type = "MemoryBead[]")]
    pub fn beads(&self) -> Array {
        self.store.beads().map(bead_object).collect()
    }

    /// What changed since the last call (local and replicated): beads added, removed,
    /// updated, and newly accepted.
    #[wasm_bindgen(js_name = takeChanges, unchecked_return_type = "MemoryChange[]")]
    pub fn take_changes(&mut self) -> Array {
        std::mem::take(&mut self.changes).into_iter().collect()
    }

    /// The deltas applied since the last call, local and from peers, oldest first: append
    /// them to durable storage to survive a reload.
    #[wasm_bindgen(js_name = takeJournal)]
    pub fn take_journal(&mut self) -> Array {
        std::mem::take(&mut self.journal)
            .into_iter()
            .map(|d| JsValue::from(Uint8Array::from(&d[..])))
            .collect()
    }

    /// The whole memory as bytes (a snapshot to persist).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.store.to_bytes()
    }

    /// Counters: `{ beads, otherModel, model, dims, rejected: { CODE: n } }`.
    #[wasm_bindgen(unchecked_return_type = "MemoryEngineStats")]
    pub fn stats(&self) -> JsValue {
        let (model, dims) = self
            .index
            .model()
            .map_or((JsValue::NULL, 0), |(m, d)| (m.into(), d));
        object(&[
            ("beads", (self.store.len() as f64).into()),
            ("otherModel", (self.index.other_model() as f64).into()),
            ("model", model),
            ("dims", (dims as f64).into()),
            ("rejected", counts(self.store.rejected())),
        ])
    }

    // ---- the council ----

    /// A council motion as an agreement value (for `AgreementEngine.propose`).
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an unknown type or a bad field.
    #[wasm_bindgen(js_name = encodeMotion)]
    pub fn encode_motion(
        #[wasm_bindgen(unchecked_param_type = "CouncilMotion")] motion: JsValue,
    ) -> JsResult<Vec<u8>> {
        Ok(motion_from_object(&motion).map_err(js)?.to_bytes())
    }

    /// The motion `value` encodes (from `encodeMotion`), without applying it: what another
    /// member asks the council to decide.
    ///
    /// @throws {Error} `code: "DECODE"` for a value that is not a motion.
    #[wasm_bindgen(js_name = decodeMotion, unchecked_return_type = "CouncilMotion")]
    pub fn decode_motion(value: &[u8]) -> JsResult<JsValue> {
        Ok(motion_object(&Motion::from_bytes(value).map_err(js)?))
    }

    /// Applies a motion the agreement decided (a `decided` event's value; every member applies
    /// the same ones in slot order) with the keys (hex) of the members who endorsed it, and
    /// returns it. Acceptance is recomputed for every bead (`takeChanges` reports the newly
    /// accepted).
    ///
    /// @throws {Error} `code: "NOT_ENDORSED"` when fewer distinct members endorsed it than the
    /// council's threshold (at most `n − f`: `council().motionEndorsements`); `"DECODE"` for a value that is not a motion; `"BAD_INPUT"` or
    /// `"BAD_SIGNATURE"` for a motion that would break the council. Every member refuses such
    /// a motion alike, and nothing changes.
    #[wasm_bindgen(js_name = applyMotion, unchecked_return_type = "CouncilMotion")]
    pub fn apply_motion(
        &mut self,
        value: &[u8],
        #[wasm_bindgen(unchecked_param_type = "string[]")] endorsers: JsValue,
    ) -> JsResult<JsValue> {
        let endorsers = strings(&endorsers, "endorsers")
            .and_then(|keys| {
                keys.iter()
                    .map(|k| key_from_hex(k, "endorsers[]"))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(js)?;
        let motion = Motion::from_bytes(value).map_err(js)?;
        self.council.apply(&motion, &endorsers).map_err(js)?;
        let ids: Vec<BeadId> = self.store.beads().map(|b| b.id).collect();
        for id in ids {
            self.note_acceptance(id);
        }
        Ok(motion_object(&motion))
    }

    /// The council as decided so far.
    #[wasm_bindgen(unchecked_return_type = "CouncilState")]
    pub fn council(&self) -> JsValue {
        let members: Array = self
            .council
            .members()
            .map(|m| JsValue::from(hex(m)))
            .collect();
        object(&[
            ("members", members.into()),
            ("threshold", (self.council.threshold() as f64).into()),
            (
                "motionEndorsements",
                (self.council.motion_endorsements() as f64).into(),
            ),
            ("applied", (self.council.applied() as f64).into()),
            ("epoch", (self.council.epoch() as f64).into()),
        ])
    }

    // ---- SyncDocument ----

    /// The store's version vector (encoded): part of the `SyncDocument` interface.
    #[wasm_bindgen(js_name = versionVector)]
    pub fn version_vector(&self) -> Vec<u8> {
        use chrysalis_crdt::Encode;
        self.store.version().to_bytes()
    }

    /// What a replica at `versionVector` lacks (encoded): part of the `SyncDocument` interface.
    ///
    /// @throws {Error} `code: "DECODE"` for bytes that are not a version vector.
    #[wasm_bindgen(js_name = deltaSince)]
    pub fn delta_since(&self, version_vector: &[u8]) -> JsResult<Vec<u8>> {
        use chrysalis_crdt::{Encode, ORSetDelta, VersionVector};
        let since = VersionVector::from_bytes(version_vector)
            .map_err(|e| js(CodedError::new("DECODE", e.to_string())))?;
        Ok(Document::delta_since(&self.store, &since)
            .unwrap_or_else(|| ORSetDelta::<chrysalis_memory::Record>::default().to_bytes()))
    }

    /// Joins a peer's delta after checking every record in it: part of the `SyncDocument`
    /// interface.
    ///
    /// @throws {Error} `code: "REFUSED"` for a delta with a forged, mismatched or undecodable
    /// record (nothing of it is stored; `stats().rejected` counts why).
    #[wasm_bindgen(js_name = applyDelta)]
    pub fn apply_delta(&mut self, delta: &[u8]) -> JsResult<()> {
        let grew = self
            .store
            .apply(delta)
            .map_err(|reason| js(CodedError::new("REFUSED", reason)))?;
        if grew {
            self.journal.push(delta.to_vec());
        }
        self.absorb();
        Ok(())
    }
}

impl MemoryEngine {
    /// Brings the index and the accepted set up to date with the store's changes.
    fn absorb(&mut self) {
        let changes = self.store.take_changes();
        self.index.update(&self.store, &changes);
        for c in changes {
            let (kind, id) = match c {
                StoreChange::Added(id) => ("added", id),
                StoreChange::Removed(id) => ("removed", id),
                StoreChange::Updated(id) => ("updated", id),
            };
            self.changes.push(change(kind, &id));
            self.note_acceptance(id);
        }
    }

    /// Updates the accepted set for bead `id`, reporting a newly accepted bead.
    /// Indexes vectors of this agent's own model: the first one it uses, unless configured.
    fn choose_model(&mut self, model: &str, dims: usize) {
        if self.index.model().is_none() {
            self.index.choose_model(&self.store, model, dims);
        }
    }

    fn note_acceptance(&mut self, id: BeadId) {
        let accepted = matches!(
            self.council.acceptance(&self.store, &id),
            Acceptance::Accepted { .. }
        );
        if accepted && self.store.bead(&id).is_some() && self.accepted.insert(id) {
            self.changes.push(change("accepted", &id));
        }
        if !accepted || self.store.bead(&id).is_none() {
            self.accepted.remove(&id);
        }
    }
}
