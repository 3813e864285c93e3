//! `RelayClient`: the peer's side of the relay protocol ([`chrysalis_relay_protocol`]) for JS.
//! The package's `SyncNode` opens the WebSocket when the client says so and hands over what
//! arrives; the client answers the challenge, tracks the room's peers, frames what is sent and
//! schedules reconnections.

use chrysalis_relay_protocol::{RelayClient as Client, RelayEvent, RelayState};
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::SigningKey;
use crate::error::{CodedError, JsResult, js};
use crate::input::{hex, now_ms, object};
use crate::memory::key_from_hex;

#[wasm_bindgen(typescript_custom_section)]
const RELAY_TS: &str = r#"
/** What a `RelayClient` asks of its pump, in order. */
export type RelayClientEvent =
  | { type: "send"; text: string }
  | { type: "opened" }
  | { type: "peer-joined"; peer: string }
  | { type: "peer-left"; peer: string }
  | { type: "signal"; from: string; data: unknown }
  | { type: "refused"; code: string; message: string };
"#;

/// One peer's relay session for one room, across reconnections (sans-IO: open a WebSocket
/// when `state` is `"waiting"` and `retryAt` has come, then call `opening`, and hand over
/// every message and the close).
#[wasm_bindgen]
pub struct RelayClient {
    client: Client,
    key: chrysalis_crypto::SigningKey,
}

fn events(events: Vec<RelayEvent>) -> Array {
    events
        .into_iter()
        .map(|event| match event {
            RelayEvent::SendText(text) => object(&[("type", "send".into()), ("text", text.into())]),
            RelayEvent::Opened => object(&[("type", "opened".into())]),
            RelayEvent::PeerJoined(peer) => {
                object(&[("type", "peer-joined".into()), ("peer", hex(&peer).into())])
            }
            RelayEvent::PeerLeft(peer) => {
                object(&[("type", "peer-left".into()), ("peer", hex(&peer).into())])
            }
            RelayEvent::Signal { from, data } => object(&[
                ("type", "signal".into()),
                ("from", hex(&from).into()),
                (
                    "data",
                    js_sys::JSON::parse(&data.to_string()).unwrap_or(JsValue::NULL),
                ),
            ]),
            RelayEvent::Refused { code, message } => object(&[
                ("type", "refused".into()),
                ("code", code.into()),
                ("message", message.into()),
            ]),
        })
        .collect()
}

#[wasm_bindgen]
impl RelayClient {
    /// A client of `room` (1 to 128 bytes) that authenticates as `identity`.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for an empty or over-long room name.
    #[wasm_bindgen(constructor)]
    pub fn new(room: &str, identity: &SigningKey) -> JsResult<RelayClient> {
        let key = chrysalis_crypto::SigningKey::from_seed(&identity.seed()[..]).map_err(js)?;
        let client = Client::new(room, key.public_key())
            .ok_or_else(|| js(CodedError::bad_argument("room must be 1 to 128 bytes")))?;
        Ok(RelayClient { client, key })
    }

    /// `"waiting"` (no socket), `"connecting"` or `"open"`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        match self.client.state() {
            RelayState::Waiting { .. } => "waiting",
            RelayState::Connecting => "connecting",
            RelayState::Open => "open",
        }
        .into()
    }

    /// While `"waiting"`: when to open the next socket (`Date.now()` ms).
    #[wasm_bindgen(getter, js_name = retryAt)]
    pub fn retry_at(&self) -> f64 {
        match self.client.state() {
            RelayState::Waiting { retry_at } => retry_at as f64,
            _ => 0.0,
        }
    }

    /// Control messages from the relay ignored so far (malformed, out of turn, bad ids).
    #[wasm_bindgen(getter)]
    pub fn ignored(&self) -> f64 {
        self.client.ignored() as f64
    }

    /// The pump opened a socket.
    pub fn opening(&mut self) {
        self.client.opening();
    }

    /// Handles a text message from the relay.
    #[wasm_bindgen(js_name = handleText, unchecked_return_type = "RelayClientEvent[]")]
    pub fn handle_text(&mut self, text: &str) -> Array {
        events(self.client.handle_text(&self.key, text))
    }

    /// A binary message from the relay: its sender (hex) and frame, or `undefined` when it is
    /// not a frame from a peer of this session.
    #[wasm_bindgen(
        js_name = handleBinary,
        unchecked_return_type = "{ from: string; frame: Uint8Array } | undefined"
    )]
    pub fn handle_binary(&self, bytes: &[u8]) -> JsValue {
        match self.client.handle_binary(bytes) {
            Some((from, frame)) => object(&[
                ("from", hex(&from).into()),
                ("frame", Uint8Array::from(frame).into()),
            ]),
            None => JsValue::UNDEFINED,
        }
    }

    /// The socket closed (or never opened) at `now`: returns the `peer-left` events of the
    /// peers lost and schedules the next attempt (`retryAt`, exponential backoff from 250 ms to
    /// 30 s with full jitter).
    #[wasm_bindgen(unchecked_return_type = "RelayClientEvent[]")]
    pub fn closed(&mut self, now: f64) -> JsResult<Array> {
        let random = u64::from_le_bytes(chrysalis_crypto::random_array::<8>().map_err(js)?);
        Ok(events(self.client.closed(now_ms(now), random)))
    }

    /// `frame` framed for every peer of the room.
    #[wasm_bindgen(js_name = toEveryone)]
    pub fn to_everyone(frame: &[u8]) -> Vec<u8> {
        Client::to_everyone(frame)
    }

    /// `frame` framed for the peer `peer` (hex).
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for a peer that is not 64 hex digits.
    #[wasm_bindgen(js_name = toPeer)]
    pub fn to_peer(peer: &str, frame: &[u8]) -> JsResult<Vec<u8>> {
        Ok(Client::to_peer(
            &key_from_hex(peer, "peer").map_err(js)?,
            frame,
        ))
    }

    /// WebRTC signalling `data` (JSON-serialisable) for `to` (hex), as the text to send;
    /// `undefined` unless the session is open.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` for a bad peer or data that is not JSON.
    pub fn signal(&self, to: &str, data: JsValue) -> JsResult<Option<String>> {
        let to = key_from_hex(to, "to").map_err(js)?;
        let text = js_sys::JSON::stringify(&data)
            .ok()
            .and_then(|t| t.as_string())
            .ok_or_else(|| js(CodedError::bad_argument("signalling data must be JSON")))?;
        let data = serde_json::from_str(&text)
            .map_err(|_| js(CodedError::bad_argument("signalling data must be JSON")))?;
        Ok(self.client.signal(&to, data))
    }
}
