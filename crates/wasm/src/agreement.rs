//! `AgreementEngine`: the council's Byzantine agreement ([`chrysalis_memory::Agreement`], PBFT
//! with Ed25519-signed messages) for JS, sans-IO like `SyncEngine`: give it time and messages,
//! send what it returns. It orders opaque values; the package's `MemorySystem` drives it over
//! its `SyncNode` to agree on council motions (`MemoryEngine.encodeMotion` / `applyMotion`).

use chrysalis_memory::byzantine::{Output, Recipient};
use chrysalis_memory::{Agreement, AgreementConfig, AgreementEvent, Membership};
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::SigningKey;
use crate::error::{JsResult, js};
use crate::input::{counts, hex, integer_option, now_ms, object, string_option, usize_option};
use crate::memory::{key_from_hex, strings};

#[wasm_bindgen(typescript_custom_section)]
const AGREEMENT_TS: &str = r#"
/** Timing of an {@link AgreementEngine}. */
export interface AgreementOptions {
  /** Membership changes decided before this membership (`MemoryEngine.council().epoch`; default 0): messages of other epochs never count. */
  epoch?: number;
  /** What the council governs, say `"room/document"` (default ""): signed into every message, so a council's messages never count in another council of the same members. */
  scope?: string;
  /** Distinct members whose requests every ordered value must carry (default and minimum f + 1, at most the members). */
  endorsements?: number;
  /** How long a known request may wait before the agent asks for a new view (default 2000 ms; doubles per failed view). */
  viewTimeoutMs?: number;
  /** How often in-flight messages are resent and the status broadcast (default 1000 ms). */
  retransmitMs?: number;
}
/** What the agreement did during a call. */
export type AgreementEvent =
  | { type: "decided"; seq: number; view: number; value: Uint8Array; endorsers: number[] }
  | { type: "view-changed"; view: number; leader: number }
  | { type: "requested"; value: Uint8Array; by: number };
/** What each {@link AgreementEngine} call returns: messages to send, events, and when to tick next. */
export interface AgreementOutput {
  /** `to` is a member index, or null for every member. */
  transmits: { to: number | null; bytes: Uint8Array }[];
  events: AgreementEvent[];
  wakeAt: number;
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
"#;

/// One member's replica of a council's agreement: PBFT for n ≥ 3f + 1 agents (any n ≥ 1
/// works; f = ⌊(n − 1)/3⌋), with view change on a faulty or silent leader and checkpoints.
#[wasm_bindgen]
pub struct AgreementEngine {
    agreement: Agreement,
}

fn output(out: Output, view: u64) -> JsValue {
    let transmits: Array = out
        .transmits
        .into_iter()
        .map(|t| {
            let to = match t.to {
                Recipient::Everyone => JsValue::NULL,
                Recipient::Member(i) => (i as f64).into(),
            };
            object(&[("to", to), ("bytes", Uint8Array::from(&t.bytes[..]).into())])
        })
        .collect();
    let events: Array = out
        .events
        .into_iter()
        .map(|e| match e {
            AgreementEvent::Decided {
                seq,
                value,
                endorsers,
            } => object(&[
                ("type", "decided".into()),
                ("seq", (seq as f64).into()),
                ("view", (view as f64).into()),
                ("value", Uint8Array::from(&value[..]).into()),
                ("endorsers", indices(&endorsers)),
            ]),
            AgreementEvent::Requested { value, by } => object(&[
                ("type", "requested".into()),
                ("value", Uint8Array::from(&value[..]).into()),
                ("by", (by as f64).into()),
            ]),
            AgreementEvent::ViewChanged { view, leader } => object(&[
                ("type", "view-changed".into()),
                ("view", (view as f64).into()),
                ("leader", (leader as f64).into()),
            ]),
        })
        .collect();
    object(&[
        ("transmits", transmits.into()),
        ("events", events.into()),
        ("wakeAt", (out.wake_at as f64).into()),
    ])
}

fn indices(members: &[usize]) -> JsValue {
    members
        .iter()
        .map(|&m| JsValue::from(m as f64))
        .collect::<Array>()
        .into()
}

#[wasm_bindgen]
impl AgreementEngine {
    /// The replica of `identity` (its seed is copied) in the council `members` (public keys in
    /// hex, in an order every member uses: index 0 leads view 0) of `options.epoch`. `now` is
    /// `Date.now()`.
    ///
    /// @throws {Error} `code: "NOT_MEMBER"` when `identity` is not among `members`;
    /// `"BAD_INPUT"` / `"BAD_ARGUMENT"` for bad members or options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        identity: &SigningKey,
        #[wasm_bindgen(unchecked_param_type = "string[]")] members: JsValue,
        #[wasm_bindgen(unchecked_param_type = "AgreementOptions | undefined")] options: JsValue,
        now: f64,
    ) -> JsResult<AgreementEngine> {
        let keys = strings(&members, "members")
            .map_err(js)?
            .iter()
            .map(|m| key_from_hex(m, "members[]"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(js)?;
        let d = AgreementConfig::default();
        let config = AgreementConfig {
            view_timeout_ms: integer_option(&options, "viewTimeoutMs", d.view_timeout_ms)
                .map_err(js)?,
            retransmit_ms: integer_option(&options, "retransmitMs", d.retransmit_ms).map_err(js)?,
            endorsements: usize_option(&options, "endorsements", d.endorsements).map_err(js)?,
            ..d
        };
        let key = chrysalis_crypto::SigningKey::from_seed(&identity.seed()[..]).map_err(js)?;
        let epoch = integer_option(&options, "epoch", 0).map_err(js)?;
        let scope = string_option(&options, "scope")
            .map_err(js)?
            .unwrap_or_default();
        let membership = Membership::at_epoch(keys, epoch)
            .map_err(js)?
            .within(&scope);
        Ok(AgreementEngine {
            agreement: Agreement::new(key, membership, config, now_ms(now)).map_err(js)?,
        })
    }

    /// Requests `value` (1 byte to 8 KiB) for ordering: this member's endorsement. It is
    /// ordered once `orderAt` members requested it; requesting a value already decided,
    /// or already requested by this member, changes nothing.
    ///
    /// @throws {Error} `code: "BAD_INPUT"` for an empty or oversized value, or when 16 requests
    /// of this member are still pending.
    #[wasm_bindgen(unchecked_return_type = "AgreementOutput")]
    pub fn propose(&mut self, now: f64, value: Vec<u8>) -> JsResult<JsValue> {
        let out = self.agreement.propose(now_ms(now), value).map_err(js)?;
        Ok(output(out, self.agreement.view()))
    }

    /// Handles a message from another member (anything malformed or forged is counted in
    /// `stats().rejected` and otherwise ignored).
    #[wasm_bindgen(js_name = handleMessage, unchecked_return_type = "AgreementOutput")]
    pub fn handle_message(&mut self, now: f64, bytes: &[u8]) -> JsValue {
        let out = self.agreement.handle_message(now_ms(now), bytes);
        output(out, self.agreement.view())
    }

    /// Fires the timers (view change, retransmission, status); call it at `wakeAt`.
    #[wasm_bindgen(js_name = handleTick, unchecked_return_type = "AgreementOutput")]
    pub fn handle_tick(&mut self, now: f64) -> JsValue {
        let out = self.agreement.handle_tick(now_ms(now));
        output(out, self.agreement.view())
    }

    /// Whether `value` has been decided and executed here.
    #[wasm_bindgen(js_name = isDecided)]
    pub fn is_decided(&self, value: &[u8]) -> bool {
        self.agreement.is_decided(value)
    }

    /// The current view.
    #[wasm_bindgen(getter)]
    pub fn view(&self) -> f64 {
        self.agreement.view() as f64
    }

    /// The index of the current view's leader in `members`.
    #[wasm_bindgen(getter)]
    pub fn leader(&self) -> usize {
        self.agreement.leader()
    }

    /// This agent's index in `members`.
    #[wasm_bindgen(getter)]
    pub fn index(&self) -> usize {
        self.agreement.index()
    }

    /// The members' public keys (hex), in index order.
    #[wasm_bindgen(getter, unchecked_return_type = "string[]")]
    pub fn members(&self) -> Array {
        let members = self.agreement.membership().members();
        members.iter().map(|m| JsValue::from(hex(m))).collect()
    }

    /// The highest slot executed (every slot up to it is decided).
    #[wasm_bindgen(getter)]
    pub fn executed(&self) -> f64 {
        self.agreement.executed() as f64
    }

    /// Requests known here and not yet decided.
    #[wasm_bindgen(getter)]
    pub fn pending(&self) -> usize {
        self.agreement.pending()
    }

    /// Distinct members whose requests every ordered value must carry (checked by everyone).
    #[wasm_bindgen(getter)]
    pub fn endorsements(&self) -> usize {
        self.agreement.endorsements()
    }

    /// Distinct members whose requests this agent waits for before it orders a value as the
    /// leader (`endorsements` at least; a council sets its threshold).
    #[wasm_bindgen(getter, js_name = orderAt)]
    pub fn order_at(&self) -> usize {
        self.agreement.order_at()
    }

    /// Sets `orderAt` (kept between `endorsements` and the member count); values already
    /// endorsed enough are ordered at once, so send what it returns.
    #[wasm_bindgen(js_name = setOrderAt, unchecked_return_type = "AgreementOutput")]
    pub fn set_order_at(&mut self, now: f64, count: usize) -> JsValue {
        let out = self.agreement.set_order_at(now_ms(now), count);
        output(out, self.agreement.view())
    }

    /// The indices of the members that requested `value` so far, while it is pending.
    #[wasm_bindgen(unchecked_return_type = "number[]")]
    pub fn requesters(&self, value: &[u8]) -> JsValue {
        indices(&self.agreement.requesters(value))
    }

    /// Counters: `{ sent, received, rejected: { CODE: n }, viewChanges, executed }`.
    #[wasm_bindgen(unchecked_return_type = "AgreementStats")]
    pub fn stats(&self) -> JsValue {
        let s = self.agreement.stats();
        object(&[
            ("sent", (s.sent as f64).into()),
            ("received", (s.received as f64).into()),
            ("rejected", counts(&s.rejected)),
            ("viewChanges", (s.view_changes as f64).into()),
            ("executed", (s.executed as f64).into()),
        ])
    }
}
