//! `SyncEngine`: the sans-IO replication node ([`chrysalis_sync::SyncNode`]) for JS. The
//! package's `SyncNode` class (pkg/index.js) drives it: it owns the transports (relay WebSocket,
//! WebRTC data channels, BroadcastChannel) and the timer, and moves bytes in and out.

use chrysalis_sync::{Document, Event, Output, PeerId, Recipient, SyncConfig, SyncError, SyncNode};
use js_sys::{Array, Function, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};

use crate::SigningKey;
use crate::error::{CodedError, JsResult, js};
use crate::input::{counts, hex, integer_option, now_ms, object, string_option, usize_option};

impl From<SyncError> for CodedError {
    fn from(err: SyncError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

#[wasm_bindgen(typescript_custom_section)]
const SYNC_TS: &str = r#"
/** Tuning of the replication protocol (all optional non-negative integers). */
export interface SyncOptions {
  /** The room's name: every frame's signature covers it, so frames of another room are refused (`SyncNode.join` sets it). */
  room?: string;
  /** Peers a forwarded push goes to in rooms above `broadcastLimit` (default 6). */
  fanout?: number;
  /** Up to this many peers, a change is one frame to everyone (default 64). */
  broadcastLimit?: number;
  /** Times a push is forwarded in large rooms (default 3). */
  gossipHops?: number;
  /** Changes within this many ms go out together in one signed frame (default 0). */
  flushDelayMs?: number;
  /** Milliseconds between anti-entropy rounds (default 1000). */
  antiEntropyIntervalMs?: number;
  /** Peers that get a digest each round (default 2). */
  antiEntropyPeers?: number;
  /** A peer sent nothing for this long gets a heartbeat (default 5000). */
  heartbeatIntervalMs?: number;
  /** Largest frame sent or accepted, in bytes (default 1 MiB). */
  maxFrame?: number;
  /** Penalty points after which a misbehaving peer is banned (default 100). */
  banThreshold?: number;
  /** How long a ban lasts (default 60000 ms). */
  banDurationMs?: number;
}
/** What can be shared: any CRDT class of this package (they all have these methods). */
export interface SyncDocument {
  versionVector(): Uint8Array;
  deltaSince(versionVector: Uint8Array): Uint8Array;
  applyDelta(delta: Uint8Array): void;
}
/** A connected peer as the protocol sees it. */
export interface SyncPeerInfo {
  /** Its id: the hex of its Ed25519 public key. */
  id: string;
  /** Good frames raise it (to 20), bad ones lower it; a ban comes at -banThreshold. */
  score: number;
  /** When its last valid frame arrived (`Date.now()` ms), or null. */
  lastHeard: number | null;
}
/** The protocol's counters. */
export interface SyncEngineStats {
  framesSent: number;
  bytesSent: number;
  framesReceived: number;
  bytesReceived: number;
  /** Deltas that made a document grow. */
  deltasApplied: number;
  /** Frames dropped, whatever the reason. */
  dropped: number;
  /** Drops by reason: `BAD_SIGNATURE`, `REPLAYED`, `SENDER_MISMATCH`, `OVERSIZED`, `BANNED`, … */
  drops: Record<string, number>;
}
/** What each engine call returns: frames to send, events, and when to tick next. */
export interface SyncOutput {
  transmits: { to: Uint8Array | null; bytes: Uint8Array }[];
  events: ({ type: "change"; doc: string; from: string } | { type: "peer-banned"; peer: string; reason: string })[];
  wakeAt: number;
}
"#;

/// A JS CRDT object (`GCounter`, `ORSet`, … of this package, or anything with the same three
/// methods) as a replicated document.
struct JsDocument {
    object: JsValue,
}

impl JsDocument {
    fn call(&self, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
        let function: Function = Reflect::get(&self.object, &method.into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| format!("the document has no {method}() method"))?;
        let args: Array = args.iter().collect();
        function
            .apply(&self.object, &args)
            .map_err(|e| describe(&e))
    }

    fn bytes(&self, method: &str, args: &[JsValue]) -> Result<Vec<u8>, String> {
        let value = self.call(method, args)?;
        value
            .dyn_into::<Uint8Array>()
            .map(|a| a.to_vec())
            .map_err(|_| format!("{method}() did not return a Uint8Array"))
    }
}

fn describe(error: &JsValue) -> String {
    Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| "the document threw".into())
}

impl Document for JsDocument {
    fn version(&self) -> chrysalis_crdt::VersionVector {
        use chrysalis_crdt::Encode;
        self.bytes("versionVector", &[])
            .ok()
            .and_then(|b| chrysalis_crdt::VersionVector::from_bytes(&b).ok())
            .unwrap_or_default()
    }

    fn delta_since(&self, since: &chrysalis_crdt::VersionVector) -> Option<Vec<u8>> {
        use chrysalis_crdt::Encode;
        // Nothing the peer lacks by version: skip the call (events outside the contiguous
        // vector, an OR-Set's cloud, reach the peer from their author's digests instead).
        let mine = self.version();
        if mine.iter().all(|(replica, n)| n <= since.get(replica)) {
            return None;
        }
        let since = Uint8Array::from(since.to_bytes().as_slice());
        self.bytes("deltaSince", &[since.into()]).ok()
    }

    fn apply(&mut self, delta: &[u8]) -> Result<bool, String> {
        let before = self.version();
        self.call("applyDelta", &[Uint8Array::from(delta).into()])?;
        Ok(self.version() != before)
    }
}

/// The replication protocol for one identity, sans-IO: give it time and bytes, send what it
/// returns. Most pages use the package's `SyncNode` instead, which drives this for them.
#[wasm_bindgen]
pub struct SyncEngine {
    node: SyncNode,
}

fn peer_id(bytes: &[u8]) -> JsResult<PeerId> {
    bytes.try_into().map_err(|_| {
        js(CodedError::new(
            "BAD_LENGTH",
            format!("a peer id is 32 bytes, got {}", bytes.len()),
        ))
    })
}

#[wasm_bindgen]
impl SyncEngine {
    /// An engine signing as `identity` (its seed is copied; the key object stays usable).
    /// `options`: `room`, `fanout`, `broadcastLimit`, `gossipHops`, `flushDelayMs`,
    /// `antiEntropyIntervalMs`, `antiEntropyPeers`, `heartbeatIntervalMs`, `maxFrame`,
    /// `banThreshold` (as a positive number of points), `banDurationMs`. `now` is `Date.now()`.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an option that is not a non-negative integer.
    #[wasm_bindgen(constructor)]
    pub fn new(
        identity: &SigningKey,
        #[wasm_bindgen(unchecked_param_type = "SyncOptions | undefined")] options: JsValue,
        now: f64,
    ) -> JsResult<SyncEngine> {
        let d = SyncConfig::default();
        let config = SyncConfig {
            room: string_option(&options, "room")
                .map_err(js)?
                .unwrap_or_default(),
            fanout: usize_option(&options, "fanout", d.fanout).map_err(js)?,
            broadcast_limit: usize_option(&options, "broadcastLimit", d.broadcast_limit)
                .map_err(js)?,
            gossip_hops: integer_option(&options, "gossipHops", d.gossip_hops.into())
                .map_err(js)?
                .min(16) as u8,
            flush_delay_ms: integer_option(&options, "flushDelayMs", d.flush_delay_ms)
                .map_err(js)?,
            anti_entropy_interval_ms: integer_option(
                &options,
                "antiEntropyIntervalMs",
                d.anti_entropy_interval_ms,
            )
            .map_err(js)?
            .max(10),
            anti_entropy_peers: usize_option(&options, "antiEntropyPeers", d.anti_entropy_peers)
                .map_err(js)?,
            heartbeat_interval_ms: integer_option(
                &options,
                "heartbeatIntervalMs",
                d.heartbeat_interval_ms,
            )
            .map_err(js)?,
            max_frame: usize_option(&options, "maxFrame", d.max_frame).map_err(js)?,
            ban_threshold: -(integer_option(
                &options,
                "banThreshold",
                d.ban_threshold.unsigned_abs().into(),
            )
            .map_err(js)?
            .min(1 << 30) as i32),
            ban_duration_ms: integer_option(&options, "banDurationMs", d.ban_duration_ms)
                .map_err(js)?,
        };
        let key = chrysalis_crypto::SigningKey::from_seed(&identity.seed()[..]).map_err(js)?;
        let seed = u64::from_le_bytes(chrysalis_crypto::random_array::<8>().map_err(js)?);
        Ok(SyncEngine {
            node: SyncNode::new(key, config, now_ms(now), seed),
        })
    }

    /// This engine's peer id (the identity's public key, 32 bytes).
    pub fn id(&self) -> Vec<u8> {
        self.node.id().to_vec()
    }

    /// Replicates `doc` (a CRDT object of this package) as `name`.
    ///
    /// @throws {Error} `code: "BAD_DOCUMENT_NAME"` for an empty, over-long or taken name.
    #[wasm_bindgen(unchecked_return_type = "SyncOutput")]
    pub fn share(
        &mut self,
        now: f64,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "SyncDocument")] doc: JsValue,
    ) -> JsResult<JsValue> {
        if !doc.is_object() {
            return Err(js(CodedError::bad_argument(
                "a document is a CRDT object (GCounter, ORSet, LWWRegister, …)",
            )));
        }
        let out = self
            .node
            .share(now_ms(now), name, Box::new(JsDocument { object: doc }))
            .map_err(js)?;
        Ok(output(out))
    }

    /// Stops replicating `name`; returns whether it was shared.
    pub fn unshare(&mut self, name: &str) -> bool {
        self.node.unshare(name).is_some()
    }

    /// Pushes the delta of a change just made to the shared document `name`.
    ///
    /// @throws {Error} `code: "UNKNOWN_DOCUMENT"` or `"DELTA_TOO_LARGE"`.
    #[wasm_bindgen(js_name = localChange, unchecked_return_type = "SyncOutput")]
    pub fn local_change(&mut self, now: f64, name: &str, delta: Vec<u8>) -> JsResult<JsValue> {
        let out = self
            .node
            .local_change(now_ms(now), name, delta)
            .map_err(js)?;
        Ok(output(out))
    }

    /// A peer became reachable.
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` unless `peer` is 32 bytes.
    #[wasm_bindgen(js_name = addPeer, unchecked_return_type = "SyncOutput")]
    pub fn add_peer(&mut self, now: f64, peer: &[u8]) -> JsResult<JsValue> {
        Ok(output(self.node.add_peer(now_ms(now), peer_id(peer)?)))
    }

    /// A peer is no longer reachable.
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` unless `peer` is 32 bytes.
    #[wasm_bindgen(js_name = removePeer)]
    pub fn remove_peer(&mut self, peer: &[u8]) -> JsResult<()> {
        self.node.remove_peer(&peer_id(peer)?);
        Ok(())
    }

    /// A frame that arrived from `from`. Bad frames are dropped and counted, never thrown.
    ///
    /// @throws {Error} `code: "BAD_LENGTH"` unless `from` is 32 bytes.
    #[wasm_bindgen(js_name = handleMessage, unchecked_return_type = "SyncOutput")]
    pub fn handle_message(&mut self, now: f64, from: &[u8], bytes: &[u8]) -> JsResult<JsValue> {
        Ok(output(self.node.handle_message(
            now_ms(now),
            peer_id(from)?,
            bytes,
        )))
    }

    /// A frame from a medium that does not name its sender (a BroadcastChannel): it counts as
    /// its signer's only if its signature verifies; a bad one is counted, and scored against
    /// nobody.
    #[wasm_bindgen(js_name = handleUnattributed, unchecked_return_type = "SyncOutput")]
    pub fn handle_unattributed(&mut self, now: f64, bytes: &[u8]) -> JsValue {
        output(self.node.handle_unattributed(now_ms(now), bytes))
    }

    /// A signed presence announcement (a hello, or a goodbye when `leaving`) to post on a
    /// BroadcastChannel.
    pub fn presence(&mut self, now: f64, leaving: bool) -> Vec<u8> {
        self.node.presence(now_ms(now), leaving)
    }

    /// A peer's announcement from `presence`: `{ peer, leaving }` (`peer` in hex) when it is
    /// signed in this room, fresh and not a replay; otherwise null.
    #[wasm_bindgen(js_name = checkPresence, unchecked_return_type = "{ peer: string; leaving: boolean } | null")]
    pub fn check_presence(&mut self, now: f64, bytes: &[u8]) -> JsValue {
        match self.node.check_presence(now_ms(now), bytes) {
            Some((peer, leaving)) => {
                object(&[("peer", hex(&peer).into()), ("leaving", leaving.into())])
            }
            None => JsValue::NULL,
        }
    }

    /// Timers: call at the `wakeAt` of the last output.
    #[wasm_bindgen(js_name = handleTick, unchecked_return_type = "SyncOutput")]
    pub fn handle_tick(&mut self, now: f64) -> JsValue {
        output(self.node.handle_tick(now_ms(now)))
    }

    /// The connected peers: `[{ id, score, lastHeard }]` (`id` in hex).
    #[wasm_bindgen(unchecked_return_type = "SyncPeerInfo[]")]
    pub fn peers(&self) -> Array {
        self.node
            .peers()
            .map(|(id, info)| {
                object(&[
                    ("id", hex(&id).into()),
                    ("score", info.score.into()),
                    (
                        "lastHeard",
                        info.last_heard.map_or(JsValue::NULL, |t| (t as f64).into()),
                    ),
                ])
            })
            .collect()
    }

    /// Traffic counters: `{ framesSent, bytesSent, framesReceived, bytesReceived,
    /// deltasApplied, dropped, drops: { CODE: n } }`.
    #[wasm_bindgen(unchecked_return_type = "SyncEngineStats")]
    pub fn stats(&self) -> JsValue {
        let s = self.node.stats();
        object(&[
            ("framesSent", (s.frames_sent as f64).into()),
            ("bytesSent", (s.bytes_sent as f64).into()),
            ("framesReceived", (s.frames_received as f64).into()),
            ("bytesReceived", (s.bytes_received as f64).into()),
            ("deltasApplied", (s.deltas_applied as f64).into()),
            ("dropped", (s.dropped() as f64).into()),
            ("drops", counts(&s.drops)),
        ])
    }
}

/// `{ transmits: [{ to: Uint8Array | null, bytes }], events: [...], wakeAt }`.
fn output(out: Output) -> JsValue {
    let transmits: Array = out
        .transmits
        .into_iter()
        .map(|t| {
            let to = match t.to {
                Recipient::Peer(id) => Uint8Array::from(&id[..]).into(),
                Recipient::Everyone => JsValue::NULL,
            };
            object(&[("to", to), ("bytes", Uint8Array::from(&t.bytes[..]).into())])
        })
        .collect();
    let events: Array = out
        .events
        .into_iter()
        .map(|event| match event {
            Event::Changed { doc, from } => object(&[
                ("type", "change".into()),
                ("doc", doc.into()),
                ("from", hex(&from).into()),
            ]),
            Event::PeerBanned { peer, reason } => object(&[
                ("type", "peer-banned".into()),
                ("peer", hex(&peer).into()),
                ("reason", reason.into()),
            ]),
        })
        .collect();
    object(&[
        ("transmits", transmits.into()),
        ("events", events.into()),
        ("wakeAt", (out.wake_at as f64).into()),
    ])
}
