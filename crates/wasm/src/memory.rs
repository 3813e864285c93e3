//! The memory face of `RoomEngine`: an agent's memories, hosted by its Room
//! ([`chrysalis_room`]: the replicated bead store, its search index, k-of-n acceptance, the
//! journal and snapshots, the council's log and agreement). The package's `MemorySystem`
//! (pkg/memory.js) embeds text, calls these methods and keeps the storage the engine writes to.

use chrysalis_memory::{
    Acceptance, Bead, BeadDraft, BeadEmbedding, Filter, MemoryChange, MemoryConfig, MemoryError,
    Motion, Query, Ranking, agent_id, bead_id_hex,
};
use chrysalis_room::{CouncilEvent, MemoryOptions, Stored};
use js_sys::{Array, Float32Array, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};

use crate::RoomEngine;
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
/** How `RoomEngine.openMemory` opens a memory. */
export interface MemoryOptions {
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
  /** Journal entries after which the snapshot is rewritten and the journal cleared (default 200). */
  compactEvery?: number;
  /** How long a known motion may wait before the council asks for a new view (default 2000 ms; doubles per failed view). */
  viewTimeoutMs?: number;
  /** How often the council's in-flight messages are resent (default 1000 ms). */
  retransmitMs?: number;
}
/** A write the pump makes durable, then reports with `RoomEngine.stored(now, id)`, in order. */
export type StorageWrite =
  | { kind: "append"; entries: Uint8Array[] }
  | { kind: "snapshot"; bytes: Uint8Array }
  | { kind: "council"; bytes: Uint8Array };
/** What a memory's storage held when it was opened (`RoomEngine.openMemory`). */
export interface StoredMemory {
  snapshot?: Uint8Array | null;
  journal?: Uint8Array[];
  council?: Uint8Array | null;
}
/** The agreement's counters. */
export interface AgreementStats {
  /** Messages sent (a broadcast counts once per recipient). */
  sent: number;
  received: number;
  /** Messages refused, by reason (`BAD_SIGNATURE`, `EQUIVOCATION`, `WRONG_MEMBERSHIP`, …). */
  rejected: Record<string, number>;
  viewChanges: number;
  /** Slots executed (no-ops included). */
  executed: number;
}
/** What a memory's council agreement did (`RoomEngine` events of type `council`). */
export type CouncilEventDetail =
  | { type: "requested"; id: string; motion: CouncilMotion; by: string }
  | { type: "decided"; seq: number; view: number; id: string; motion: CouncilMotion | null; endorsers: string[]; refused: { code: string; message: string } | null }
  | { type: "view-changed"; view: number; leader: string };
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
export interface MemoryStats {
  beads: number;
  /** Beads whose vector is of another model than the index's (keyword search only). */
  otherModel: number;
  model: string | null;
  dims: number;
  /** Deltas refused from peers, by reason (`ID_MISMATCH`, `BAD_SIGNATURE`, `DECODE`, …). */
  rejected: Record<string, number>;
  /** Journal entries since the last snapshot. */
  journal: number;
  /** Storage writes asked for and not yet reported complete. */
  writes: number;
}
/** The council and, for a member, its agreement. */
export interface CouncilInfo extends CouncilState {
  /** Whether this agent is a member. */
  member: boolean;
  agreement: { view: number; leader: string; executed: number; pending: number; endorsements: number; orderAt: number; stats: AgreementStats } | null;
}
"#;

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
pub(crate) fn motion_object(motion: &Motion) -> JsValue {
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

/// A memory change as JS sees it ([`MemoryChange`] in the TS types).
pub(crate) fn change_object(change: &MemoryChange) -> JsValue {
    object(&[
        ("type", change.kind().into()),
        ("id", bead_id_hex(&change.id()).into()),
    ])
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

/// The options of `RoomEngine.openMemory` (see `MemoryOptions` in the TS types).
fn memory_options(options: &JsValue) -> Result<MemoryOptions, CodedError> {
    let members = strings(&option(options, "members")?, "members")?
        .iter()
        .map(|m| key_from_hex(m, "members[]"))
        .collect::<Result<Vec<_>, _>>()?;
    let model = option(options, "model")?;
    let model = if model.is_undefined() || model.is_null() {
        None
    } else {
        let name = string_option(&model, "name")?
            .ok_or_else(|| CodedError::bad_argument("model.name must be a string"))?;
        Some((name, usize_option(&model, "dims", 0)?))
    };
    let d = MemoryOptions::default();
    let agreement = chrysalis_memory::AgreementConfig {
        view_timeout_ms: integer_option(options, "viewTimeoutMs", d.agreement.view_timeout_ms)?,
        retransmit_ms: integer_option(options, "retransmitMs", d.agreement.retransmit_ms)?,
        ..d.agreement
    };
    Ok(MemoryOptions {
        memory: MemoryConfig {
            members,
            threshold: usize_option(options, "threshold", 1)?,
            hnsw: Default::default(),
            model,
        },
        agreement,
        compact_every: usize_option(options, "compactEvery", d.compact_every)?,
    })
}

fn byte_arrays(value: &JsValue, what: &str) -> Result<Vec<Vec<u8>>, CodedError> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let bad = || CodedError::bad_argument(format!("{what} must be an array of Uint8Arrays"));
    value
        .dyn_ref::<Array>()
        .ok_or_else(bad)?
        .iter()
        .map(|v| {
            v.dyn_into::<Uint8Array>()
                .map(|a| a.to_vec())
                .map_err(|_| bad())
        })
        .collect()
}

fn bead_id(id: &str) -> Result<chrysalis_memory::BeadId, JsValue> {
    key_from_hex(id, "id").map_err(js)
}

/// A council event as JS sees it (`CouncilEventDetail` in the TS types).
pub(crate) fn council_object(event: &CouncilEvent) -> JsValue {
    match event {
        CouncilEvent::Requested { value, motion, by } => object(&[
            ("type", "requested".into()),
            ("id", hex(value).into()),
            ("motion", motion_object(motion)),
            ("by", hex(by).into()),
        ]),
        CouncilEvent::Decided {
            seq,
            view,
            value,
            motion,
            endorsers,
            refused,
        } => {
            let endorsers: Array = endorsers.iter().map(|k| JsValue::from(hex(k))).collect();
            object(&[
                ("type", "decided".into()),
                ("seq", (*seq as f64).into()),
                ("view", (*view as f64).into()),
                ("id", hex(value).into()),
                (
                    "motion",
                    motion.as_ref().map_or(JsValue::NULL, motion_object),
                ),
                ("endorsers", endorsers.into()),
                (
                    "refused",
                    refused.as_ref().map_or(JsValue::NULL, |(code, message)| {
                        object(&[
                            ("code", (*code).into()),
                            ("message", message.as_str().into()),
                        ])
                    }),
                ),
            ])
        }
        CouncilEvent::ViewChanged { view, leader } => object(&[
            ("type", "view-changed".into()),
            ("view", (*view as f64).into()),
            ("leader", hex(leader).into()),
        ]),
    }
}

fn motion_id(id: &str) -> Result<Vec<u8>, JsValue> {
    let bad = || {
        js(CodedError::bad_argument(
            "a motion id is the hex of its value",
        ))
    };
    if !id.len().is_multiple_of(2) || !id.is_ascii() {
        return Err(bad());
    }
    (0..id.len() / 2)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).map_err(|_| bad()))
        .collect()
}

#[wasm_bindgen]
impl RoomEngine {
    /// This agent's short printable id (what its memories show as a bead's `authorId`).
    #[wasm_bindgen(getter, js_name = agentId)]
    pub fn agent_id(&self) -> String {
        agent_id(&self.room.id())
    }

    /// Opens memory `name` from what its storage held (`stored`), replicates it with the room
    /// and, when this agent is on its council, runs the council's agreement. The memory signs
    /// as this engine's identity.
    ///
    /// @throws {Error} `code: "DECODE"`, `"ID_MISMATCH"` or `"BAD_SIGNATURE"` for a damaged
    /// snapshot; `"BAD_ARGUMENT"` / `"BAD_INPUT"` for bad options, a damaged journal or a name
    /// already open.
    #[wasm_bindgen(js_name = openMemory)]
    pub fn open_memory(
        &mut self,
        now: f64,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "MemoryOptions | undefined")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "StoredMemory | undefined")] stored: JsValue,
    ) -> JsResult<()> {
        let mut config = memory_options(&options).map_err(js)?;
        config.memory.hnsw = hnsw_config(&options)?;
        let bytes = |field: &str| -> Result<Option<Vec<u8>>, JsValue> {
            let value = option(&stored, field).map_err(js)?;
            if value.is_undefined() || value.is_null() {
                return Ok(None);
            }
            value
                .dyn_into::<Uint8Array>()
                .map(|a| Some(a.to_vec()))
                .map_err(|_| {
                    js(CodedError::bad_argument(format!(
                        "stored.{field} must be a Uint8Array"
                    )))
                })
        };
        let stored = Stored {
            snapshot: bytes("snapshot")?,
            journal: byte_arrays(&option(&stored, "journal").map_err(js)?, "stored.journal")
                .map_err(js)?,
            council: bytes("council")?,
        };
        self.room
            .open_memory(now_ms(now), name, config, stored)
            .map_err(js)
    }

    /// Stops hosting memory `name` (it is no longer replicated); whether it was open.
    #[wasm_bindgen(js_name = closeMemory)]
    pub fn close_memory(&mut self, name: &str) -> bool {
        self.room.close_memory(name)
    }

    /// The pump completed storage write `id` (writes complete in the order they were asked):
    /// local changes it held go to peers, and their `saved` event follows.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` when `id` is not the next write to complete.
    pub fn stored(&mut self, now: f64, id: f64) -> JsResult<()> {
        self.room.stored(now_ms(now), id as u64).map_err(js)
    }

    /// The pump's storage failed write `id` with `error` (its `code` and `message` are read, a
    /// string is the message): its memory stops (a `storage-error` event; later local changes
    /// throw `STORAGE_FAILED` until it is reopened).
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` when `id` is not the next write to complete.
    #[wasm_bindgen(js_name = storageFailed)]
    pub fn storage_failed(&mut self, now: f64, id: f64, error: JsValue) -> JsResult<()> {
        let field = |name: &str| {
            js_sys::Reflect::get(&error, &name.into())
                .ok()
                .and_then(|v| v.as_string())
        };
        let code = field("code").unwrap_or_else(|| "STORAGE".into());
        let message = field("message")
            .or_else(|| error.as_string())
            .unwrap_or_else(|| "the storage failed".into());
        self.room
            .storage_failed(now_ms(now), id as u64, &code, &message)
            .map_err(js)
    }

    /// Whether the pump should still carry out write `id` (not once its memory's storage failed).
    #[wasm_bindgen(js_name = writeWanted)]
    pub fn write_wanted(&self, id: f64) -> bool {
        self.room.write_wanted(id as u64)
    }

    /// Signs and stores a bead in memory `name`: `{ bead, write }`, where `write` is the
    /// storage write whose `saved` event says it is durable (and sent).
    ///
    /// @throws {Error} `code: "BAD_INPUT"` for empty or over-long content, kind or tags, or a
    /// bad vector; `"UNKNOWN_MEMORY"`; `"STORAGE_FAILED"` once the memory's storage failed.
    #[wasm_bindgen(unchecked_return_type = "{ bead: MemoryBead; write: number }")]
    pub fn remember(
        &mut self,
        now: f64,
        name: &str,
        content: String,
        #[wasm_bindgen(unchecked_param_type = "{ kind?: string; tags?: string[] } | undefined")]
        options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | null | undefined")] vector: JsValue,
    ) -> JsResult<JsValue> {
        let draft = BeadDraft {
            content,
            kind: text_option(&options, "kind", "note").map_err(js)?,
            tags: strings(&option(&options, "tags").map_err(js)?, "tags").map_err(js)?,
            embedding: embedding(&vector)
                .map_err(js)?
                .map(|(model, vector)| BeadEmbedding { model, vector }),
        };
        let (bead, write) = self.room.remember(now_ms(now), name, draft).map_err(js)?;
        Ok(object(&[
            ("bead", bead_object(&bead)),
            ("write", (write as f64).into()),
        ]))
    }

    /// Forgets a bead this agent wrote, everywhere and for good: `{ found, write }`.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an id that is not 64 hex digits;
    /// `"NOT_AUTHOR"` for another agent's bead; `"STORAGE_FAILED"`.
    #[wasm_bindgen(unchecked_return_type = "{ found: boolean; write: number }")]
    pub fn forget(&mut self, now: f64, name: &str, id: &str) -> JsResult<JsValue> {
        let (found, write) = self
            .room
            .forget(now_ms(now), name, &bead_id(id)?)
            .map_err(js)?;
        Ok(object(&[
            ("found", found.into()),
            ("write", (write as f64).into()),
        ]))
    }

    /// Signs this agent's approval of a bead: `{ fresh, write }`.
    ///
    /// @throws {Error} `code: "BAD_INPUT"` for a bead not in memory; `"STORAGE_FAILED"`.
    #[wasm_bindgen(unchecked_return_type = "{ fresh: boolean; write: number }")]
    pub fn approve(&mut self, now: f64, name: &str, id: &str) -> JsResult<JsValue> {
        let (fresh, write) = self
            .room
            .approve(now_ms(now), name, &bead_id(id)?)
            .map_err(js)?;
        Ok(object(&[
            ("fresh", fresh.into()),
            ("write", (write as f64).into()),
        ]))
    }

    /// The council's verdict on a bead of memory `name`.
    #[wasm_bindgen(unchecked_return_type = "MemoryAcceptance")]
    pub fn acceptance(&self, name: &str, id: &str) -> JsResult<JsValue> {
        let memory = self.memory(name)?;
        let (accepted, have, need, approvers) = match memory.acceptance(&bead_id(id)?) {
            Acceptance::Accepted { approvers } => {
                let n = approvers.len();
                (true, n, memory.council().threshold(), approvers)
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

    /// The best beads of memory `name` for a query: `text` for keywords, `vector` (an
    /// `EmbeddingVector` of the memories' model) for meaning.
    ///
    /// @throws {Error} `code: "EMBEDDING_MISMATCH"` for a vector of another model or size;
    /// `"BAD_ARGUMENT"` for bad options.
    #[wasm_bindgen(unchecked_return_type = "MemoryHit[]")]
    pub fn recall(
        &mut self,
        name: &str,
        text: &str,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | null | undefined")] vector: JsValue,
        #[wasm_bindgen(unchecked_param_type = "MemoryRecallOptions | undefined")] options: JsValue,
    ) -> JsResult<Array> {
        let embedded = embedding(&vector).map_err(js)?;
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
        let hits = self.room.recall(name, &query).map_err(js)?;
        let memory = self.memory(name)?;
        let number = |x: Option<f32>| x.map_or(JsValue::NULL, |v| f64::from(v).into());
        Ok(hits
            .iter()
            .filter_map(|hit| {
                let bead = memory.store().bead(&hit.id)?;
                Some(object(&[
                    ("bead", bead_object(bead)),
                    ("score", f64::from(hit.score).into()),
                    ("similarity", number(hit.similarity)),
                    ("keyword", number(hit.keyword)),
                ]))
            })
            .collect())
    }

    /// A bead of memory `name` by id, or undefined.
    #[wasm_bindgen(unchecked_return_type = "MemoryBead | undefined")]
    pub fn bead(&self, name: &str, id: &str) -> JsResult<JsValue> {
        let id = bead_id(id)?;
        Ok(self
            .memory(name)?
            .store()
            .bead(&id)
            .map_or(JsValue::UNDEFINED, bead_object))
    }

    /// Every bead of memory `name`.
    #[wasm_bindgen(unchecked_return_type = "MemoryBead[]")]
    pub fn beads(&self, name: &str) -> JsResult<Array> {
        Ok(self
            .memory(name)?
            .store()
            .beads()
            .map(bead_object)
            .collect())
    }

    /// Proposes a council motion (`set-threshold` or `accept-fact`) for memory `name`; its id
    /// (the `id` of the `decided` council event).
    ///
    /// @throws {Error} `code: "NOT_MEMBER"` for an agent not on the council; `"NOT_SUPPORTED"`
    /// for a membership change; `"BAD_ARGUMENT"` for a bad motion; `"BAD_INPUT"` when 16 of
    /// this member's requests are pending; `"STORAGE_FAILED"`.
    pub fn propose(
        &mut self,
        now: f64,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "CouncilMotion")] motion: JsValue,
    ) -> JsResult<String> {
        let motion = motion_from_object(&motion).map_err(js)?;
        let value = self.room.propose(now_ms(now), name, &motion).map_err(js)?;
        Ok(hex(&value))
    }

    /// Endorses another member's pending motion (the `id` of its `requested` council event);
    /// returns the motion.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` when no pending motion has this id;
    /// `"STORAGE_FAILED"`.
    #[wasm_bindgen(unchecked_return_type = "CouncilMotion")]
    pub fn endorse(&mut self, now: f64, name: &str, id: &str) -> JsResult<JsValue> {
        let value = motion_id(id)?;
        let motion = self.room.endorse(now_ms(now), name, &value).map_err(js)?;
        Ok(motion_object(&motion))
    }

    /// The council of memory `name` and, for a member, its agreement.
    #[wasm_bindgen(unchecked_return_type = "CouncilInfo")]
    pub fn council(&self, name: &str) -> JsResult<JsValue> {
        let memory = self.memory(name)?;
        let council = memory.council();
        let members: Array = council.members().map(|m| JsValue::from(hex(m))).collect();
        let agreement = self.room.agreement(name).map_or(JsValue::NULL, |a| {
            let s = a.stats();
            let stats = object(&[
                ("sent", (s.sent as f64).into()),
                ("received", (s.received as f64).into()),
                ("rejected", counts(&s.rejected)),
                ("viewChanges", (s.view_changes as f64).into()),
                ("executed", (s.executed as f64).into()),
            ]);
            let leader = a.membership().members()[a.leader()];
            object(&[
                ("view", (a.view() as f64).into()),
                ("leader", hex(&leader).into()),
                ("executed", (a.executed() as f64).into()),
                ("pending", (a.pending() as f64).into()),
                ("endorsements", (a.endorsements() as f64).into()),
                ("orderAt", (a.order_at() as f64).into()),
                ("stats", stats),
            ])
        });
        Ok(object(&[
            ("members", members.into()),
            ("threshold", (council.threshold() as f64).into()),
            (
                "motionEndorsements",
                (council.motion_endorsements() as f64).into(),
            ),
            ("applied", (council.applied() as f64).into()),
            ("epoch", (council.epoch() as f64).into()),
            ("member", council.is_member(&self.room.id()).into()),
            ("agreement", agreement),
        ]))
    }

    /// Counters of memory `name`: `{ beads, otherModel, model, dims, rejected, journal, writes }`.
    #[wasm_bindgen(js_name = memoryStats, unchecked_return_type = "MemoryStats")]
    pub fn memory_stats(&self, name: &str) -> JsResult<JsValue> {
        let memory = self.memory(name)?;
        let (journal, writes) = self.room.journal(name).unwrap_or_default();
        let (model, dims) = memory
            .index()
            .model()
            .map_or((JsValue::NULL, 0), |(m, d)| (m.into(), d));
        Ok(object(&[
            ("beads", (memory.store().len() as f64).into()),
            ("otherModel", (memory.index().other_model() as f64).into()),
            ("model", model),
            ("dims", (dims as f64).into()),
            ("rejected", counts(memory.store().rejected())),
            ("journal", (journal as f64).into()),
            ("writes", (writes as f64).into()),
        ]))
    }
}

impl RoomEngine {
    fn memory(&self, name: &str) -> Result<&chrysalis_memory::Memory, JsValue> {
        self.room
            .memory(name)
            .ok_or_else(|| js(chrysalis_room::RoomError::UnknownMemory))
    }
}
