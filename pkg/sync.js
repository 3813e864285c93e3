// `SyncNode`: replication of CRDTs between pages. The protocol runs in wasm (`SyncEngine`, the
// sans-IO `chrysalis-sync` node: signed frames, push gossip, anti-entropy, peer scoring); this
// file only moves its bytes over three transports at once and keeps its timer:
//
// - the relay (`crates/relay`): one WebSocket; its protocol (challenge auth, presence, framing,
//   reconnection backoff) runs in wasm (`RelayClient`, crates/relay-protocol);
// - WebRTC data channels to each peer (offer/answer/ICE through the relay's signalling), used
//   in preference to the relay while open, so edits keep flowing when the relay goes away;
// - a BroadcastChannel between tabs of one origin (presence by signed hello/bye and a
//   timeout), which needs no server at all. Any script of the origin can post there, so
//   presence is checked by the engine (signed, fresh, not replayed) and a frame counts only as
//   its signer's, whatever `from` the message claims.
import { RelayClient, SyncEngine } from "./chrysalis_wasm.js";

/** Frames above this go through the relay rather than a data channel (SCTP message limits). */
const MAX_DATA_CHANNEL_MESSAGE = 200_000;
const BROADCAST_HELLO_MS = 2000;
const BROADCAST_TIMEOUT_MS = 6000;
/** Tabs linked over the BroadcastChannel at most (each needs a signed hello). */
const MAX_BROADCAST_PEERS = 64;

const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));

function syncError(code, message) {
  return Object.assign(new Error(message), { code });
}

/**
 * A replica of named CRDTs that stays in sync with the other peers of a room. Create it with
 * `await SyncNode.join(options)`. Events (`node.on(type, fn)` or `addEventListener`, with
 * `event.detail`): `change` `{ doc, from }`, `peer-joined` / `peer-left` `{ peer, via }`,
 * `connection-state` `{ transport, state, peer? }`, `peer-banned` `{ peer, reason }`.
 */
export class SyncNode extends EventTarget {
  #engine;
  #room;
  #identity;
  #options;
  #timer;
  #closed = false;
  /** peer hex → Set of "relay" | "webrtc" | "broadcast" */
  #links = new Map();
  #relay = { socket: null, client: null, state: "off", retry: null };
  #rtc = new Map();
  #channel = null;
  #heard = new Map();
  #helloTimer = null;
  #traffic = {};

  /**
   * Joins `room`: connects the transports asked for and starts replicating.
   * @param {import("./index.js").SyncNodeOptions} options
   */
  static async join(options) {
    const node = new SyncNode(options);
    node.#start();
    return node;
  }

  constructor(options = {}) {
    super();
    const { room, identity, relayUrl, webrtc = false, broadcastChannel = false, ...engineOptions } = options;
    if (typeof room !== "string" || room.length === 0 || room.length > 128) {
      throw syncError("BAD_ARGUMENT", "room must be a string of 1 to 128 characters");
    }
    if (!identity || typeof identity.sign !== "function" || typeof identity.publicKey !== "function") {
      throw syncError("BAD_ARGUMENT", "identity must be a SigningKey");
    }
    if (!relayUrl && !broadcastChannel) {
      throw syncError("BAD_ARGUMENT", "give a relayUrl, broadcastChannel: true, or both");
    }
    if (webrtc && !relayUrl) throw syncError("BAD_ARGUMENT", "webrtc needs a relayUrl for signalling");
    this.#room = room;
    this.#identity = identity;
    this.#options = { relayUrl, webrtc, broadcastChannel };
    this.#engine = new SyncEngine(identity, { ...engineOptions, room }, Date.now());
    for (const name of ["relay", "webrtc", "broadcast"]) {
      this.#traffic[name] = { framesSent: 0, bytesSent: 0, framesReceived: 0, bytesReceived: 0 };
    }
  }

  /** The room this node joined. */
  get room() {
    return this.#room;
  }

  /** This node's peer id (hex of its identity's public key). */
  get id() {
    return toHex(this.#engine.id());
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
    this.#apply(this.#engine.share(Date.now(), name, crdt));
    return crdt;
  }

  /** Stops replicating `name`. */
  unshare(name) {
    return this.#engine.unshare(name);
  }

  /** Pushes `delta` (what a mutator of the shared CRDT `name` returned) to the peers. */
  change(name, delta) {
    this.#apply(this.#engine.localChange(Date.now(), name, delta));
  }

  /** The connected peers: `[{ id, score, lastHeard, via: ["relay" | "webrtc" | "broadcast"] }]`. */
  peers() {
    return this.#engine.peers().map((peer) => ({ ...peer, via: [...(this.#links.get(peer.id) ?? [])].sort() }));
  }

  /**
   * Counters: the protocol's frames, bytes and drops by reason (`drops`), and per transport
   * frames and bytes sent and received, with the relay's connection state.
   */
  stats() {
    return {
      ...this.#engine.stats(),
      transports: structuredClone(this.#traffic),
      relay: this.#relay.state,
      webrtc: Object.fromEntries([...this.#rtc].map(([peer, link]) => [peer, link.pc.connectionState])),
    };
  }

  /** Leaves the room: closes every transport and stops the timer. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#relay.retry);
    clearInterval(this.#helloTimer);
    this.#relay.socket?.close(1000, "leaving");
    this.#relay.client?.free();
    for (const peer of [...this.#rtc.keys()]) this.#closeRtc(peer);
    if (this.#channel) {
      this.#channel.postMessage({ type: "bye", bytes: this.#engine.presence(Date.now(), true) });
      this.#channel.close();
    }
    this.#engine.free();
  }

  [Symbol.dispose]() {
    this.close();
  }

  // --- the engine ---

  #start() {
    if (this.#options.relayUrl) this.#connectRelay();
    if (this.#options.broadcastChannel) this.#openBroadcast();
    this.#schedule(Date.now());
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #apply(out) {
    if (this.#closed) return;
    for (const t of out.transmits) this.#transmit(t.to ? toHex(t.to) : null, t.bytes);
    for (const event of out.events) {
      if (event.type === "change") this.#emit("change", { doc: event.doc, from: event.from });
      if (event.type === "peer-banned") {
        this.#closeRtc(event.peer);
        this.#emit("peer-banned", { peer: event.peer, reason: event.reason });
      }
    }
    this.#schedule(out.wakeAt);
  }

  #schedule(wakeAt) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (!this.#closed) this.#apply(this.#engine.handleTick(Date.now()));
    }, Math.max(0, wakeAt - Date.now()));
  }

  #receive(transport, from, bytes) {
    if (this.#closed) return;
    const traffic = this.#traffic[transport];
    traffic.framesReceived += 1;
    traffic.bytesReceived += bytes.length;
    this.#apply(this.#engine.handleMessage(Date.now(), fromHex(from), bytes));
  }

  /** A peer became reachable over `via`; the first link makes it a peer of the engine. */
  #link(peer, via) {
    if (peer === this.id || this.#closed) return;
    const links = this.#links.get(peer) ?? new Set();
    const fresh = links.size === 0;
    links.add(via);
    this.#links.set(peer, links);
    if (fresh) {
      this.#apply(this.#engine.addPeer(Date.now(), fromHex(peer)));
      this.#emit("peer-joined", { peer, via });
    }
  }

  #unlink(peer, via) {
    const links = this.#links.get(peer);
    if (!links?.delete(via) || this.#closed) return;
    if (links.size === 0) {
      this.#links.delete(peer);
      this.#engine.removePeer(fromHex(peer));
      this.#emit("peer-left", { peer, via });
    }
  }

  #count(transport, bytes) {
    this.#traffic[transport].framesSent += 1;
    this.#traffic[transport].bytesSent += bytes.length;
  }

  /** Sends a frame to one peer (`to`) or to every peer (`null`) over the best link of each. */
  #transmit(to, bytes) {
    const relayOpen = this.#relay.state === "open";
    const direct = (peer) => {
      const channel = this.#rtc.get(peer)?.channel;
      if (channel?.readyState === "open" && bytes.length <= MAX_DATA_CHANNEL_MESSAGE) {
        channel.send(bytes);
        this.#count("webrtc", bytes);
        return true;
      }
      return false;
    };
    if (to !== null) {
      const links = this.#links.get(to) ?? new Set();
      if (direct(to)) return;
      if (relayOpen && links.has("relay")) {
        this.#relay.socket.send(RelayClient.toPeer(to, bytes));
        this.#count("relay", bytes);
      } else if (links.has("broadcast")) {
        this.#channel.postMessage({ type: "frame", to, bytes });
        this.#count("broadcast", bytes);
      }
      return;
    }
    // To everyone: data channels where open; the relay for the rest of its peers (one
    // broadcast frame when none of them got it directly); one BroadcastChannel message for
    // tabs reachable only that way.
    const viaRelay = [];
    let viaBroadcast = false;
    let relayPeers = 0;
    for (const [peer, links] of this.#links) {
      if (links.has("relay")) relayPeers += 1;
      if (direct(peer)) continue;
      if (relayOpen && links.has("relay")) viaRelay.push(peer);
      else if (links.has("broadcast")) viaBroadcast = true;
    }
    if (viaRelay.length > 0 && viaRelay.length === relayPeers) {
      this.#relay.socket.send(RelayClient.toEveryone(bytes));
      this.#count("relay", bytes);
    } else {
      for (const peer of viaRelay) {
        this.#relay.socket.send(RelayClient.toPeer(peer, bytes));
        this.#count("relay", bytes);
      }
    }
    if (viaBroadcast) {
      this.#channel.postMessage({ type: "frame", to: null, bytes });
      this.#count("broadcast", bytes);
    }
  }

  // --- relay ---

  #relayState(state) {
    this.#relay.state = state;
    this.#emit("connection-state", { transport: "relay", state });
  }

  #connectRelay() {
    if (this.#closed) return;
    const client = (this.#relay.client ??= new RelayClient(this.#room, this.#identity));
    this.#relayState("connecting");
    const socket = new WebSocket(this.#options.relayUrl);
    socket.binaryType = "arraybuffer";
    this.#relay.socket = socket;
    client.opening();
    socket.onmessage = (message) => {
      if (this.#relay.socket !== socket || this.#closed) return;
      if (typeof message.data !== "string") {
        const received = client.handleBinary(new Uint8Array(message.data));
        if (received) this.#receive("relay", received.from, received.frame);
        return;
      }
      for (const event of client.handleText(message.data)) {
        if (event.type === "send") socket.send(event.text);
        else if (event.type === "opened") this.#relayState("open");
        else if (event.type === "peer-joined") this.#relayPeer(event.peer);
        else if (event.type === "peer-left") this.#unlink(event.peer, "relay");
        else if (event.type === "signal") this.#signal(event.from, event.data);
        else this.#emit("connection-state", { transport: "relay", state: "error", code: event.code, message: event.message });
      }
    };
    socket.onclose = () => {
      if (this.#relay.socket !== socket) return;
      this.#relay.socket = null;
      if (this.#closed) return;
      for (const { peer } of client.closed(Date.now())) this.#unlink(peer, "relay");
      this.#relayState("reconnecting");
      this.#relay.retry = setTimeout(() => this.#connectRelay(), Math.max(0, client.retryAt - Date.now()));
    };
  }

  #relayPeer(peer) {
    this.#link(peer, "relay");
    // One side offers: the smaller id, so two peers never both do.
    if (this.#options.webrtc && !this.#rtc.has(peer) && this.id < peer) this.#openRtc(peer, true);
  }

  #sendSignal(peer, data) {
    const text = this.#relay.client?.signal(peer, data);
    if (text) this.#relay.socket?.send(text);
  }

  // --- WebRTC ---

  #openRtc(peer, initiator) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const link = { pc, channel: null };
    this.#rtc.set(peer, link);
    const ready = (channel) => {
      link.channel = channel;
      channel.binaryType = "arraybuffer";
      channel.onopen = () => {
        this.#link(peer, "webrtc");
        this.#emit("connection-state", { transport: "webrtc", state: "open", peer });
      };
      channel.onclose = () => {
        this.#unlink(peer, "webrtc");
        this.#emit("connection-state", { transport: "webrtc", state: "closed", peer });
        if (this.#rtc.get(peer) === link) this.#rtc.delete(peer);
      };
      channel.onmessage = (message) => this.#receive("webrtc", peer, new Uint8Array(message.data));
    };
    pc.onicecandidate = (event) => {
      if (event.candidate) this.#sendSignal(peer, { kind: "candidate", candidate: event.candidate.toJSON() });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") this.#closeRtc(peer);
    };
    if (initiator) {
      ready(pc.createDataChannel("chrysalis-sync"));
      pc.createOffer()
        .then((offer) => pc.setLocalDescription(offer))
        .then(() => this.#sendSignal(peer, { kind: "description", description: pc.localDescription.toJSON() }))
        .catch(() => this.#closeRtc(peer));
    } else {
      pc.ondatachannel = (event) => ready(event.channel);
    }
    return link;
  }

  async #signal(peer, data) {
    if (!this.#options.webrtc || !data || typeof data !== "object") return;
    try {
      if (data.kind === "description") {
        const link = this.#rtc.get(peer) ?? this.#openRtc(peer, false);
        await link.pc.setRemoteDescription(data.description);
        if (data.description.type === "offer") {
          await link.pc.setLocalDescription(await link.pc.createAnswer());
          this.#sendSignal(peer, { kind: "description", description: link.pc.localDescription.toJSON() });
        }
      } else if (data.kind === "candidate") {
        await this.#rtc.get(peer)?.pc.addIceCandidate(data.candidate);
      }
    } catch {
      this.#closeRtc(peer);
    }
  }

  #closeRtc(peer) {
    const link = this.#rtc.get(peer);
    if (!link) return;
    this.#rtc.delete(peer);
    link.channel?.close();
    link.pc.close();
    this.#unlink(peer, "webrtc");
  }

  // --- BroadcastChannel ---

  #openBroadcast() {
    const channel = new BroadcastChannel(`chrysalis-sync:${this.#room}`);
    this.#channel = channel;
    const hello = () => channel.postMessage({ type: "hello", bytes: this.#engine.presence(Date.now(), false) });
    channel.onmessage = ({ data }) => {
      if (this.#closed || !data || !(data.bytes instanceof Uint8Array)) return;
      if (data.type === "hello" || data.type === "bye") {
        const presence = this.#engine.checkPresence(Date.now(), data.bytes);
        if (!presence) return;
        const { peer, leaving } = presence;
        if (leaving) {
          this.#heard.delete(peer);
          this.#unlink(peer, "broadcast");
          return;
        }
        const fresh = !this.#heard.has(peer);
        if (fresh && this.#heard.size >= MAX_BROADCAST_PEERS) return;
        this.#heard.set(peer, Date.now());
        if (fresh) {
          this.#link(peer, "broadcast");
          hello();
        }
      } else if (data.type === "frame" && (data.to === null || data.to === this.id)) {
        const traffic = this.#traffic.broadcast;
        traffic.framesReceived += 1;
        traffic.bytesReceived += data.bytes.length;
        this.#apply(this.#engine.handleUnattributed(Date.now(), data.bytes));
      }
    };
    hello();
    this.#emit("connection-state", { transport: "broadcast", state: "open" });
    this.#helloTimer = setInterval(() => {
      hello();
      for (const [peer, at] of this.#heard) {
        if (Date.now() - at > BROADCAST_TIMEOUT_MS) {
          this.#heard.delete(peer);
          this.#unlink(peer, "broadcast");
        }
      }
    }, BROADCAST_HELLO_MS);
    globalThis.addEventListener?.("pagehide", () => this.close());
  }
}
