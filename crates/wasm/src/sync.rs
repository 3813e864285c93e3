//! `RoomEngine`: one agent's sans-IO runtime in a room ([`chrysalis_room::Room`]: replication,
//! links, relay client, presence) for JS. The package's `SyncNode` class (pkg/sync.js) is its
//! pump: it opens the links the engine asks for (relay WebSocket, WebRTC data channels, the
//! BroadcastChannel), hands over what arrives, carries out the engine's actions and keeps its
//! timer. Every decision is the engine's.

use chrysalis_room::{
    LinkId, LinkKind, Output, Room, RoomConfig, RoomError, RoomEvent, StorageWrite,
};
use chrysalis_sync::{Document, SyncConfig, SyncError};
use js_sys::{Array, Function, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, prelude::*};

use crate::SigningKey;
use crate::error::{CodedError, JsResult, js};
use crate::input::{
    bool_option, counts, hex, integer_option, now_ms, object, string_option, strings_option,
    usize_option,
};
use crate::memory::{change_object, council_object};

impl From<SyncError> for CodedError {
    fn from(err: SyncError) -> Self {
        CodedError::new(err.code(), err.to_string())
    }
}

impl From<RoomError> for CodedError {
    fn from(err: RoomError) -> Self {
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
/** The protocol's counters, per transport traffic, and the links' states. */
export interface RoomStats {
  framesSent: number;
  bytesSent: number;
  framesReceived: number;
  bytesReceived: number;
  /** Deltas that made a document grow. */
  deltasApplied: number;
  /** Frames from a relay's archive of the room whose deltas were applied (pushes of peers that may have left). */
  archivedApplied: number;
  /** Frames dropped, whatever the reason. */
  dropped: number;
  /** Drops by reason: `BAD_SIGNATURE`, `REPLAYED`, `NOT_A_PEER`, `OVERSIZED`, `BANNED`, … */
  drops: Record<string, number>;
  /** Frames and bytes per transport. */
  transports: Record<RoomTransport, { framesSent: number; bytesSent: number; framesReceived: number; bytesReceived: number }>;
  /** The relay connection: `off`, `connecting`, `open` or `reconnecting`. */
  relay: string;
  /** The relay URL in use, or the one the next socket opens to (absent without a relay). */
  relayUrl?: string;
  /** Whether the relay lets this agent write (false with a read-only capability). */
  mayWrite: boolean;
  /** Each data channel's peer (hex) and state (`connecting`, `connected`). */
  webrtc: Record<string, string>;
}
/** Which links a room uses (`RoomEngine`), with the replication options. */
export interface RoomOptions extends SyncOptions {
  /** The relays' URLs (`ws://` or `wss://`, at most 16): the engine starts at one drawn at random and moves to the next whenever its socket closes. None: no relay. */
  relays?: string[];
  /** A capability (hex, see `issueCapability`) for rooms whose relays require one. */
  capability?: string;
  /** Open WebRTC data channels to relay peers (needs `relays`). */
  webrtc?: boolean;
  /** Use the BroadcastChannel between tabs of this origin. */
  broadcast?: boolean;
}
/** A transport: the relay's WebSocket, a WebRTC data channel, or the BroadcastChannel. */
export type RoomTransport = "relay" | "webrtc" | "broadcast";
/** What the application hears about. */
export type RoomEventDetail =
  | { type: "change"; doc: string; from: string }
  | { type: "peer-joined" | "peer-left"; peer: string; via: RoomTransport }
  | { type: "connection-state"; transport: RoomTransport; state: string; peer?: string; code?: string; message?: string }
  | { type: "peer-banned"; peer: string; reason: string }
  | { type: "memory-change"; memory: string; change: MemoryChange }
  | { type: "saved"; memory: string; write: number }
  | { type: "storage-error"; memory: string; code: string; message: string }
  | { type: "council"; memory: string; round: CouncilEventDetail };
/** What `issueCapability` signs: one peer's access to one room until `expiresAt` (Unix seconds). */
export interface CapabilityOptions {
  room: string;
  /** The peer's public key, hex. */
  peer: string;
  access: "read" | "write";
  expiresAt: number;
}
/** What the pump must do, in order (`link` ids are the engine's). */
export type RoomAction =
  | { type: "open-relay"; link: number; url: string }
  | { type: "open-data-channel"; link: number; peer: string; initiator: boolean }
  | { type: "open-broadcast"; link: number; name: string }
  | { type: "close"; link: number }
  | { type: "send"; link: number; bytes: Uint8Array }
  | { type: "send-text"; link: number; text: string }
  | { type: "signal"; link: number; data: unknown }
  | { type: "store"; memory: string; id: number; write: StorageWrite }
  | { type: "event"; event: RoomEventDetail };
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
    fn version(&self) -> Result<chrysalis_crdt::VersionVector, String> {
        use chrysalis_crdt::Encode;
        let bytes = self.bytes("versionVector", &[])?;
        chrysalis_crdt::VersionVector::from_bytes(&bytes)
            .map_err(|e| format!("versionVector() returned no version vector: {e}"))
    }

    fn delta_since(&self, since: &chrysalis_crdt::VersionVector) -> Option<Vec<u8>> {
        use chrysalis_crdt::Encode;
        // Nothing the peer lacks by version: skip the call (events outside the contiguous
        // vector, an OR-Set's cloud, reach the peer from their author's digests instead).
        let mine = self.version().ok()?;
        if mine.iter().all(|(replica, n)| n <= since.get(replica)) {
            return None;
        }
        let since = Uint8Array::from(since.to_bytes().as_slice());
        self.bytes("deltaSince", &[since.into()]).ok()
    }

    fn apply(&mut self, delta: &[u8]) -> Result<bool, String> {
        let before = self.version()?;
        self.call("applyDelta", &[Uint8Array::from(delta).into()])?;
        Ok(self.version()? != before)
    }
}

/// The replication options of `options` (see `SyncOptions`).
fn sync_config(options: &JsValue) -> Result<SyncConfig, CodedError> {
    let d = SyncConfig::default();
    Ok(SyncConfig {
        room: string_option(options, "room")?.unwrap_or_default(),
        fanout: usize_option(options, "fanout", d.fanout)?,
        broadcast_limit: usize_option(options, "broadcastLimit", d.broadcast_limit)?,
        gossip_hops: integer_option(options, "gossipHops", d.gossip_hops.into())?.min(16) as u8,
        flush_delay_ms: integer_option(options, "flushDelayMs", d.flush_delay_ms)?,
        anti_entropy_interval_ms: integer_option(
            options,
            "antiEntropyIntervalMs",
            d.anti_entropy_interval_ms,
        )?
        .max(10),
        anti_entropy_peers: usize_option(options, "antiEntropyPeers", d.anti_entropy_peers)?,
        heartbeat_interval_ms: integer_option(
            options,
            "heartbeatIntervalMs",
            d.heartbeat_interval_ms,
        )?,
        max_frame: usize_option(options, "maxFrame", d.max_frame)?,
        ban_threshold: -(integer_option(
            options,
            "banThreshold",
            d.ban_threshold.unsigned_abs().into(),
        )?
        .min(1 << 30) as i32),
        ban_duration_ms: integer_option(options, "banDurationMs", d.ban_duration_ms)?,
    })
}

impl RoomEngine {
    /// Replicates `doc` as `name` (a JS object behind `JsDocument`, or a package CRDT's shared
    /// state).
    pub(crate) fn share_document(
        &mut self,
        now: f64,
        name: &str,
        doc: Box<dyn Document>,
    ) -> JsResult<()> {
        self.room.share(now_ms(now), name, doc).map_err(js)
    }
}

/// One agent's runtime in one room, sans-IO: feed it what happened on its links and its timer,
/// carry out what `poll` returns. Most pages use the package's `SyncNode`, which does both.
#[wasm_bindgen]
pub struct RoomEngine {
    pub(crate) room: Room,
}

#[wasm_bindgen]
impl RoomEngine {
    /// The room `options.room` for the agent `identity` (its seed is copied; the key object
    /// stays usable), over the links `options` asks for (`relays`, `webrtc`, `broadcast`), with
    /// the replication options of `SyncOptions`. `now` is `Date.now()`. Its first actions open
    /// the links.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for a bad room name, bad relay URLs, WebRTC
    /// without a relay, or an option of the wrong type.
    #[wasm_bindgen(constructor)]
    pub fn new(
        identity: &SigningKey,
        #[wasm_bindgen(unchecked_param_type = "RoomOptions")] options: JsValue,
        now: f64,
    ) -> JsResult<RoomEngine> {
        let config = RoomConfig {
            sync: sync_config(&options).map_err(js)?,
            relays: strings_option(&options, "relays", chrysalis_room::MAX_RELAYS).map_err(js)?,
            capability: string_option(&options, "capability").map_err(js)?,
            webrtc: bool_option(&options, "webrtc", false).map_err(js)?,
            broadcast: bool_option(&options, "broadcast", false).map_err(js)?,
        };
        let key = chrysalis_crypto::SigningKey::from_seed(&identity.seed()[..]).map_err(js)?;
        let seed = u64::from_le_bytes(chrysalis_crypto::random_array::<8>().map_err(js)?);
        Ok(RoomEngine {
            room: Room::new(key, config, now_ms(now), seed).map_err(js)?,
        })
    }

    /// This agent's peer id (hex of its public key).
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        hex(&self.room.id())
    }

    /// Replicates `doc` (a CRDT object of this package) as `name`.
    ///
    /// @throws {Error} `code: "BAD_DOCUMENT_NAME"` for an empty, over-long or taken name.
    pub fn share(
        &mut self,
        now: f64,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "SyncDocument")] doc: JsValue,
    ) -> JsResult<()> {
        if !doc.is_object() {
            return Err(js(CodedError::bad_argument(
                "a document is a CRDT object (GCounter, ORSet, LWWRegister, …)",
            )));
        }
        self.share_document(now, name, Box::new(JsDocument { object: doc }))
    }

    /// Stops replicating `name`; returns whether it was shared.
    pub fn unshare(&mut self, name: &str) -> bool {
        self.room.unshare(name).is_some()
    }

    /// Sends the delta of a change just made to the shared document `name`.
    ///
    /// @throws {Error} `code: "UNKNOWN_DOCUMENT"`, `"DELTA_TOO_LARGE"` or `"CLOSED"`.
    #[wasm_bindgen(js_name = localChange)]
    pub fn local_change(&mut self, now: f64, name: &str, delta: Vec<u8>) -> JsResult<()> {
        self.room.local_change(now_ms(now), name, delta).map_err(js)
    }

    /// The link `link` opened.
    #[wasm_bindgen(js_name = linkOpened)]
    pub fn link_opened(&mut self, now: f64, link: u32) {
        self.room.link_opened(now_ms(now), LinkId(link));
    }

    /// The link `link` closed or failed to open.
    #[wasm_bindgen(js_name = linkClosed)]
    pub fn link_closed(&mut self, now: f64, link: u32) {
        self.room.link_closed(now_ms(now), LinkId(link));
    }

    /// Binary bytes arrived on `link` (anything malformed or forged is dropped and counted).
    pub fn receive(&mut self, now: f64, link: u32, bytes: &[u8]) {
        self.room.receive(now_ms(now), LinkId(link), bytes);
    }

    /// A text message arrived on `link` (the relay's control messages).
    #[wasm_bindgen(js_name = receiveText)]
    pub fn receive_text(&mut self, now: f64, link: u32, text: &str) {
        self.room.receive_text(now_ms(now), LinkId(link), text);
    }

    /// The data channel `link`'s peer connection produced signalling (a description or a
    /// candidate, JSON-serialisable) for its peer.
    #[wasm_bindgen(js_name = localSignal)]
    pub fn local_signal(&mut self, link: u32, data: JsValue) {
        let json = js_sys::JSON::stringify(&data)
            .ok()
            .and_then(|t| t.as_string())
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(data) = json {
            self.room.local_signal(LinkId(link), data);
        }
    }

    /// Timers: call at `timeout`.
    pub fn tick(&mut self, now: f64) {
        self.room.tick(now_ms(now));
    }

    /// When to call `tick` next (`Date.now()` ms).
    #[wasm_bindgen(getter)]
    pub fn timeout(&self) -> f64 {
        self.room.timeout() as f64
    }

    /// Leaves the room: a goodbye to the tabs, then every link is closed (see `poll`).
    pub fn close(&mut self, now: f64) {
        self.room.close(now_ms(now));
    }

    /// Everything the pump must do now, in order.
    #[wasm_bindgen(unchecked_return_type = "RoomAction[]")]
    pub fn poll(&mut self) -> Array {
        std::iter::from_fn(|| self.room.poll_output())
            .map(action)
            .collect()
    }

    /// The connected peers: `[{ id, score, lastHeard, via }]` (`id` in hex).
    #[wasm_bindgen(unchecked_return_type = "(SyncPeerInfo & { via: RoomTransport[] })[]")]
    pub fn peers(&self) -> Array {
        self.room
            .peers()
            .map(|(id, info, via)| {
                let via: Array = via.iter().map(|k| JsValue::from(k.name())).collect();
                object(&[
                    ("id", hex(&id).into()),
                    ("score", info.score.into()),
                    (
                        "lastHeard",
                        info.last_heard.map_or(JsValue::NULL, |t| (t as f64).into()),
                    ),
                    ("via", via.into()),
                ])
            })
            .collect()
    }

    /// The capability (hex) to present from the next relay socket on: a fresh one before the
    /// current expires (a live session closes when its capability does).
    #[wasm_bindgen(js_name = setCapability)]
    pub fn set_capability(&mut self, capability: Option<String>) {
        self.room.set_capability(capability);
    }

    /// Counters: the protocol's frames, bytes and drops by reason, per transport traffic, the
    /// relay's state and each data channel's.
    #[wasm_bindgen(unchecked_return_type = "RoomStats")]
    pub fn stats(&self) -> JsValue {
        let s = self.room.sync().stats();
        let transports = object(
            &[LinkKind::Relay, LinkKind::WebRtc, LinkKind::Broadcast].map(|kind| {
                let t = self.room.traffic(kind);
                (
                    kind.name(),
                    object(&[
                        ("framesSent", (t.frames_sent as f64).into()),
                        ("bytesSent", (t.bytes_sent as f64).into()),
                        ("framesReceived", (t.frames_received as f64).into()),
                        ("bytesReceived", (t.bytes_received as f64).into()),
                    ]),
                )
            }),
        );
        let relay = match self.room.relay_state() {
            None => "off",
            Some(chrysalis_relay_protocol::RelayState::Open) => "open",
            Some(chrysalis_relay_protocol::RelayState::Connecting) => "connecting",
            Some(chrysalis_relay_protocol::RelayState::Waiting { .. }) => "reconnecting",
        };
        let webrtc = js_sys::Object::new();
        for (peer, open) in self.room.data_channels() {
            let state = if open { "connected" } else { "connecting" };
            let _ = Reflect::set(&webrtc, &hex(&peer).into(), &state.into());
        }
        object(&[
            ("framesSent", (s.frames_sent as f64).into()),
            ("bytesSent", (s.bytes_sent as f64).into()),
            ("framesReceived", (s.frames_received as f64).into()),
            ("bytesReceived", (s.bytes_received as f64).into()),
            ("deltasApplied", (s.deltas_applied as f64).into()),
            ("archivedApplied", (s.archived_applied as f64).into()),
            ("dropped", (s.dropped() as f64).into()),
            ("drops", counts(&s.drops)),
            ("transports", transports),
            ("relay", relay.into()),
            ("relayUrl", self.room.relay_url().into()),
            ("mayWrite", self.room.may_write().into()),
            ("webrtc", webrtc.into()),
        ])
    }
}

/// An action as JS sees it ([`RoomAction`] in the TS types).
fn action(output: Output) -> JsValue {
    let link = |l: LinkId| JsValue::from(l.0);
    match output {
        Output::OpenRelay { link: l, url } => object(&[
            ("type", "open-relay".into()),
            ("link", link(l)),
            ("url", url.into()),
        ]),
        Output::OpenDataChannel {
            link: l,
            peer,
            initiator,
        } => object(&[
            ("type", "open-data-channel".into()),
            ("link", link(l)),
            ("peer", hex(&peer).into()),
            ("initiator", initiator.into()),
        ]),
        Output::OpenBroadcast { link: l, name } => object(&[
            ("type", "open-broadcast".into()),
            ("link", link(l)),
            ("name", name.into()),
        ]),
        Output::Close { link: l } => object(&[("type", "close".into()), ("link", link(l))]),
        Output::Send { link: l, bytes } => object(&[
            ("type", "send".into()),
            ("link", link(l)),
            ("bytes", Uint8Array::from(&bytes[..]).into()),
        ]),
        Output::SendText { link: l, text } => object(&[
            ("type", "send-text".into()),
            ("link", link(l)),
            ("text", text.into()),
        ]),
        Output::Signal { link: l, data } => object(&[
            ("type", "signal".into()),
            ("link", link(l)),
            (
                "data",
                js_sys::JSON::parse(&data.to_string()).unwrap_or(JsValue::NULL),
            ),
        ]),
        Output::Store { memory, id, write } => {
            let write = match write {
                StorageWrite::Append(entries) => {
                    let entries: Array = entries
                        .iter()
                        .map(|e| JsValue::from(Uint8Array::from(&e[..])))
                        .collect();
                    object(&[("kind", "append".into()), ("entries", entries.into())])
                }
                StorageWrite::Snapshot(bytes) => object(&[
                    ("kind", "snapshot".into()),
                    ("bytes", Uint8Array::from(&bytes[..]).into()),
                ]),
                StorageWrite::Council(bytes) => object(&[
                    ("kind", "council".into()),
                    ("bytes", Uint8Array::from(&bytes[..]).into()),
                ]),
            };
            object(&[
                ("type", "store".into()),
                ("memory", memory.into()),
                ("id", (id as f64).into()),
                ("write", write),
            ])
        }
        Output::Event(event) => object(&[("type", "event".into()), ("event", event_object(event))]),
    }
}

fn event_object(event: RoomEvent) -> JsValue {
    match event {
        RoomEvent::Changed { doc, from } => object(&[
            ("type", "change".into()),
            ("doc", doc.into()),
            ("from", hex(&from).into()),
        ]),
        RoomEvent::PeerJoined { peer, via } => object(&[
            ("type", "peer-joined".into()),
            ("peer", hex(&peer).into()),
            ("via", via.name().into()),
        ]),
        RoomEvent::PeerLeft { peer, via } => object(&[
            ("type", "peer-left".into()),
            ("peer", hex(&peer).into()),
            ("via", via.name().into()),
        ]),
        RoomEvent::ConnectionState {
            transport,
            state,
            peer,
            refusal,
        } => {
            let detail = object(&[
                ("type", "connection-state".into()),
                ("transport", transport.name().into()),
                ("state", state.into()),
            ]);
            if let Some(peer) = peer {
                let _ = Reflect::set(&detail, &"peer".into(), &hex(&peer).into());
            }
            if let Some((code, message)) = refusal {
                let _ = Reflect::set(&detail, &"code".into(), &code.into());
                let _ = Reflect::set(&detail, &"message".into(), &message.into());
            }
            detail
        }
        RoomEvent::PeerBanned { peer, reason } => object(&[
            ("type", "peer-banned".into()),
            ("peer", hex(&peer).into()),
            ("reason", reason.into()),
        ]),
        RoomEvent::Memory { memory, change } => object(&[
            ("type", "memory-change".into()),
            ("memory", memory.into()),
            ("change", change_object(&change)),
        ]),
        RoomEvent::Saved { memory, write } => object(&[
            ("type", "saved".into()),
            ("memory", memory.into()),
            ("write", (write as f64).into()),
        ]),
        RoomEvent::StorageFailed {
            memory,
            code,
            message,
        } => object(&[
            ("type", "storage-error".into()),
            ("memory", memory.into()),
            ("code", code.into()),
            ("message", message.into()),
        ]),
        RoomEvent::Council { memory, event } => object(&[
            ("type", "council".into()),
            ("memory", memory.into()),
            ("round", council_object(&event)),
        ]),
    }
}

/// A capability for one peer in one room, signed by `issuer` (the application's issuer key,
/// whose public key the relays trust with `--trust-issuer`), hex as `SyncNode`'s `capability`
/// option takes it. `options`: `room`, `peer` (hex public key), `access` (`"read"` or
/// `"write"`) and `expiresAt` (Unix seconds). Meant for the application's server.
///
/// @throws {Error} `code: "BAD_ARGUMENT"` for a room of more than 128 bytes, a peer that is
/// not 64 hex digits, another access, or an expiry that is not a non-negative integer.
#[wasm_bindgen(js_name = issueCapability)]
pub fn issue_capability(
    issuer: &SigningKey,
    #[wasm_bindgen(unchecked_param_type = "CapabilityOptions")] options: JsValue,
) -> JsResult<String> {
    use chrysalis_relay_protocol::{Access, Capability, parse_peer};
    let room = string_option(&options, "room")
        .map_err(js)?
        .unwrap_or_default();
    let peer = string_option(&options, "peer")
        .map_err(js)?
        .unwrap_or_default();
    let peer = parse_peer(&peer)
        .ok_or_else(|| js(CodedError::bad_argument("peer must be 64 hex digits")))?;
    let access = match string_option(&options, "access").map_err(js)?.as_deref() {
        Some("read") => Access::Read,
        Some("write") => Access::ReadWrite,
        _ => {
            return Err(js(CodedError::bad_argument(
                "access is \"read\" or \"write\"",
            )));
        }
    };
    let expires_at = integer_option(&options, "expiresAt", u64::MAX).map_err(js)?;
    if expires_at == u64::MAX {
        return Err(js(CodedError::bad_argument(
            "expiresAt (Unix seconds) is required",
        )));
    }
    let key = chrysalis_crypto::SigningKey::from_seed(&issuer.seed()[..]).map_err(js)?;
    let id = chrysalis_crypto::random_array::<16>().map_err(js)?;
    Capability::issue(&key, &room, &peer, access, expires_at, id)
        .ok_or_else(|| js(CodedError::bad_argument("a room name is 1 to 128 bytes")))
}
