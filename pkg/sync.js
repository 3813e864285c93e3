// `SyncNode`: replication of CRDTs between pages. Everything that decides runs in wasm
// (`RoomEngine`, the sans-IO `chrysalis-room` runtime: signed frames, gossip, anti-entropy,
// peer scoring, the relay protocol and its reconnection backoff, which link a frame takes, who
// offers a WebRTC channel, BroadcastChannel presence). This file is its pump: it opens the
// links the engine asks for — the relay WebSocket, WebRTC data channels, the BroadcastChannel —
// hands over what arrives on them, carries out the engine's actions and keeps its timer.
import { RoomEngine } from "./chrysalis_wasm.js";

function syncError(code, message) {
  return Object.assign(new Error(message), { code });
}

/**
 * A replica of named CRDTs that stays in sync with the other peers of a room. Create it with
 * `await SyncNode.join(options)`. Events (`node.on(type, fn)` or `addEventListener`, with
 * `event.detail`): `change` `{ doc, from }`, `peer-joined` / `peer-left` `{ peer, via }`,
 * `connection-state` `{ transport, state, peer?, code?, message? }`, `peer-banned` `{ peer, reason }`.
 */
export class SyncNode extends EventTarget {
  #engine;
  #room;
  #identity;
  #relayUrl;
  /** The WebSocket class (the page's, or e.g. the `ws` package's in Node.js). */
  #WebSocket;
  #timer;
  #closed = false;
  /** The engine's links: id → `{ socket }`, `{ pc, channel }` or `{ broadcast }`. */
  #links = new Map();

  /**
   * Joins `room`: opens the transports asked for and starts replicating.
   * @param {import("./index.js").SyncNodeOptions} options
   */
  static async join(options) {
    const node = new SyncNode(options);
    node.#run();
    return node;
  }

  constructor(options = {}) {
    super();
    const { room, identity, relayUrl, webrtc = false, broadcastChannel = false, WebSocket = globalThis.WebSocket, ...engineOptions } = options;
    if (!identity || typeof identity.sign !== "function" || typeof identity.publicKey !== "function") {
      throw syncError("BAD_ARGUMENT", "identity must be a SigningKey");
    }
    this.#room = room;
    this.#identity = identity;
    this.#relayUrl = relayUrl;
    this.#WebSocket = WebSocket;
    const links = { relay: !!relayUrl, webrtc, broadcast: broadcastChannel };
    this.#engine = new RoomEngine(identity, { ...engineOptions, ...links, room }, Date.now());
    globalThis.addEventListener?.("pagehide", () => this.close());
  }

  /** The room this node joined. */
  get room() {
    return this.#room;
  }

  /** This node's peer id (hex of its identity's public key). */
  get id() {
    return this.#engine.id;
  }

  /** The `SigningKey` this node signs with (the agent's identity). */
  get identity() {
    return this.#identity;
  }

  /** Subscribes `handler(detail)` to events of `type`; returns a function that unsubscribes. */
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Replicates `crdt` (a `GCounter`, `PNCounter`, `ORSet`, `LWWRegister`, `MVRegister`,
   * `SkillAccumulator` or `EpisodeMemory`) under `name`. After each local edit, pass the delta
   * the mutator returned to {@link SyncNode#change}.
   */
  share(name, crdt) {
    this.#engine.share(Date.now(), name, crdt);
    this.#run();
    return crdt;
  }

  /** Stops replicating `name`. */
  unshare(name) {
    return this.#engine.unshare(name);
  }

  /** Pushes `delta` (what a mutator of the shared CRDT `name` returned) to the peers. */
  change(name, delta) {
    this.#engine.localChange(Date.now(), name, delta);
    this.#run();
  }

  /** The connected peers: `[{ id, score, lastHeard, via: ["relay" | "webrtc" | "broadcast"] }]`. */
  peers() {
    return this.#engine.peers();
  }

  /**
   * Counters: the protocol's frames, bytes and drops by reason (`drops`), per transport frames
   * and bytes sent and received, the relay's connection state and each data channel's.
   */
  stats() {
    return this.#engine.stats();
  }

  /** Leaves the room: a goodbye to the other tabs, then every transport closes. */
  close() {
    if (this.#closed) return;
    this.#engine.close(Date.now());
    this.#run();
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#engine.free();
  }

  [Symbol.dispose]() {
    this.close();
  }

  // --- the pump ---

  /** Calls into the engine with `fn(engine, now)` (unless closed), then carries out its actions. */
  #call(fn) {
    if (this.#closed) return;
    fn(this.#engine, Date.now());
    this.#run();
  }

  #run() {
    if (this.#closed) return;
    try {
      for (const action of this.#engine.poll()) {
        try {
          this.#act(action);
        } catch {
          // A browser refusal (too many peer connections, a full send buffer) ends that link.
          if (action.link === undefined) continue;
          this.#close(action.link);
          queueMicrotask(() => this.#call((e, now) => e.linkClosed(now, action.link)));
        }
      }
    } finally {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#call((e, now) => e.tick(now)), Math.max(0, this.#engine.timeout - Date.now()));
    }
  }

  #act(action) {
    const { link } = action;
    switch (action.type) {
      case "open-relay":
        return this.#openRelay(link);
      case "open-data-channel":
        return this.#openDataChannel(link, action.initiator);
      case "open-broadcast":
        return this.#openBroadcast(link, action.name);
      case "close":
        return this.#close(link);
      case "send":
      case "send-text": {
        const payload = action.bytes ?? action.text;
        const { socket, channel, broadcast } = this.#links.get(link) ?? {};
        if (socket?.readyState === 1) socket.send(payload);
        else if (channel?.readyState === "open") channel.send(payload);
        else broadcast?.postMessage(payload);
        return;
      }
      case "signal":
        return this.#signal(link, action.data);
      case "event": {
        const { type, ...detail } = action.event;
        return this.dispatchEvent(new CustomEvent(type, { detail }));
      }
    }
  }

  #close(link) {
    const { socket, pc, channel, broadcast } = this.#links.get(link) ?? {};
    this.#links.delete(link);
    socket?.close(1000, "leaving");
    channel?.close();
    pc?.close();
    broadcast?.close();
  }

  #openRelay(link) {
    const socket = new this.#WebSocket(this.#relayUrl);
    socket.binaryType = "arraybuffer";
    this.#links.set(link, { socket });
    socket.onopen = () => this.#call((e, now) => e.linkOpened(now, link));
    socket.onmessage = ({ data }) =>
      this.#call((e, now) => (typeof data === "string" ? e.receiveText(now, link, data) : e.receive(now, link, new Uint8Array(data))));
    socket.onerror = () => {}; // a close follows (and the ws package throws errors nobody listens to)
    socket.onclose = () => {
      if (this.#links.get(link)?.socket !== socket) return;
      this.#links.delete(link);
      this.#call((e, now) => e.linkClosed(now, link));
    };
  }

  #openDataChannel(link, initiator) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const entry = { pc, channel: null };
    this.#links.set(link, entry);
    const gone = () => {
      if (this.#links.get(link) !== entry) return;
      this.#close(link);
      this.#call((e, now) => e.linkClosed(now, link));
    };
    const ready = (channel) => {
      entry.channel = channel;
      channel.binaryType = "arraybuffer";
      channel.onopen = () => this.#call((e, now) => e.linkOpened(now, link));
      channel.onclose = gone;
      channel.onmessage = ({ data }) => this.#call((e, now) => e.receive(now, link, new Uint8Array(data)));
    };
    const signal = (data) => this.#call((e) => e.localSignal(link, data));
    pc.onicecandidate = ({ candidate }) => candidate && signal({ kind: "candidate", candidate: candidate.toJSON() });
    pc.onconnectionstatechange = () => pc.connectionState === "failed" && gone();
    if (initiator) {
      ready(pc.createDataChannel("chrysalis-sync"));
      pc.createOffer()
        .then((offer) => pc.setLocalDescription(offer))
        .then(() => signal({ kind: "description", description: pc.localDescription.toJSON() }))
        .catch(gone);
    } else {
      pc.ondatachannel = ({ channel }) => ready(channel);
    }
    entry.gone = gone;
    entry.signal = signal;
  }

  /** The peer's signalling for the data channel `link`: a description (answered if an offer) or a candidate. */
  async #signal(link, data) {
    const entry = this.#links.get(link);
    if (!entry?.pc || !data || typeof data !== "object") return;
    try {
      if (data.kind === "description") {
        await entry.pc.setRemoteDescription(data.description);
        if (data.description.type === "offer") {
          await entry.pc.setLocalDescription(await entry.pc.createAnswer());
          entry.signal({ kind: "description", description: entry.pc.localDescription.toJSON() });
        }
      } else if (data.kind === "candidate") {
        await entry.pc.addIceCandidate(data.candidate);
      }
    } catch {
      entry.gone();
    }
  }

  #openBroadcast(link, name) {
    const broadcast = new BroadcastChannel(name);
    this.#links.set(link, { broadcast });
    broadcast.onmessage = ({ data }) => data instanceof Uint8Array && this.#call((e, now) => e.receive(now, link, data));
    // Open at once; reported after the actions being carried out.
    queueMicrotask(() => this.#call((e, now) => e.linkOpened(now, link)));
  }
}
