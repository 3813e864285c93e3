// `SyncNode`: the pump of one agent's `RoomEngine` (the sans-IO `chrysalis-room` runtime in wasm,
// where every decision is made: frames, gossip, anti-entropy, scoring, the relay protocol, link
// choice, presence, hosted memories and their councils). It opens the links the engine asks for
// (relay WebSocket, WebRTC data channels, BroadcastChannel), hands over what arrives, makes the
// engine's storage writes through each memory's storage in order, and keeps the engine's timer.
import { RoomEngine } from "./chrysalis_wasm.js";

/** Each node's way into its engine, for `MemorySystem` (not exported from the package). */
const pumps = new WeakMap();

/** Runs `fn(engine, now)` on `node`'s engine, then carries out its actions; returns what `fn` returned. */
export function drive(node, fn) {
  return pumps.get(node).call(fn);
}

/** Opens memory `name` in `node`'s engine from `storage` (`{ load(), write(write) }`), which then receives its writes. */
export async function openMemory(node, name, options, storage) {
  const stored = await node.flushed().then(() => storage.load()); // after writes of an earlier opening
  return drive(node, (engine, now) => {
    engine.openMemory(now, name, options, stored);
    pumps.get(node).storages.set(name, storage);
  });
}

const syncError = (code, message) => Object.assign(new Error(message), { code });

/** Dispatches a `CustomEvent` of `type` with `detail` on `target`. */
export const emit = (target, type, detail) => target.dispatchEvent(new CustomEvent(type, { detail }));

/** An `EventTarget` with `on(type, handler)`: `handler(event.detail)`, and a function that unsubscribes. */
export class Emitter extends EventTarget {
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }
}

/** A replica of named CRDTs kept in sync with the room's other peers (`await SyncNode.join(options)`; events in `SyncNodeEvents`). */
export class SyncNode extends Emitter {
  #engine;
  #options; // room, identity and WebSocket (the page's, or the `ws` package's in Node.js)
  #timer;
  #closed = false;
  #running = false;
  #soon; // "queued": a tick waits in a microtask; "running": it runs
  /** The engine's links (id → `{ socket }`, `{ pc, channel }` or `{ broadcast }`), hosted memories' storage by name, and the chain of storage writes. */
  #links = new Map();
  #storages = new Map();
  #writes = Promise.resolve();

  /** Joins `room`: opens the transports asked for and starts replicating (`SyncNodeOptions`). */
  static async join(options) {
    const node = new SyncNode(options);
    node.#run();
    return node;
  }

  constructor(options = {}) {
    super();
    const { room, identity, relayUrl, webrtc = false, broadcastChannel = false, WebSocket = globalThis.WebSocket, ...engineOptions } = options;
    if (typeof identity?.sign !== "function" || typeof identity.publicKey !== "function") throw syncError("BAD_ARGUMENT", "identity must be a SigningKey");
    this.#options = { room, identity, WebSocket };
    const relays = relayUrl === undefined ? [] : [relayUrl].flat(); // the engine checks them and chooses
    const links = { relays, webrtc, broadcast: broadcastChannel };
    this.#engine = new RoomEngine(identity, { ...engineOptions, ...links, room }, Date.now());
    pumps.set(this, {
      storages: this.#storages,
      call: (fn) => {
        if (this.#closed) throw syncError("CLOSED", "the node was closed");
        return this.#call(fn);
      },
    });
    globalThis.addEventListener?.("pagehide", () => this.close());
  }

  /** The room this node joined. */
  get room() {
    return this.#options.room;
  }
  /** This node's peer id (hex of its identity's public key). */
  get id() {
    return this.#engine.id;
  }
  /** The `SigningKey` this node signs with (the agent's identity). */
  get identity() {
    return this.#options.identity;
  }

  /** Replicates `crdt` as `name` (a CRDT of this package hands the engine its state; any other object is called back); pass each local edit's delta to {@link SyncNode#change}. */
  share(name, crdt) {
    if (typeof crdt?.__shareIn === "function") crdt.__shareIn(this.#engine, Date.now(), name);
    else this.#engine.share(Date.now(), name, crdt);
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

  /** The capability (hex, from `issueCapability`) presented from the next relay connection on: pass a fresh one before the current expires. */
  setCapability(capability) {
    this.#engine.setCapability(capability ?? undefined);
  }

  /** The connected peers: `[{ id, score, lastHeard, via: ["relay" | "webrtc" | "broadcast"] }]`. */
  peers() {
    return this.#engine.peers();
  }

  /** Counters: frames, bytes and drops by reason, per transport traffic, the links' states. */
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

  /** Resolves once every storage write asked for so far is done. */
  flushed() {
    return this.#writes;
  }

  /** Calls into the engine with `fn(engine, now)` (unless closed), then carries out its actions. */
  #call(fn) {
    if (this.#closed) return;
    try {
      return fn(this.#engine, Date.now());
    } finally {
      this.#run();
    }
  }

  /** Carries out the engine's actions in order; a call from inside an action (an event handler) only queues them, so writes reach storage in the order asked. */
  #run() {
    if (this.#closed || this.#running) return;
    this.#running = true;
    try {
      for (let actions; !this.#closed && (actions = this.#engine.poll()).length > 0; ) {
        for (const action of actions) {
          try {
            this.#act(action);
          } catch { // a browser refusal (too many peer connections, a full send buffer) ends that link
            if (action.link === undefined) continue;
            this.#close(action.link);
            queueMicrotask(() => this.#call((e, now) => e.linkClosed(now, action.link)));
          }
        }
      }
    } finally {
      this.#running = false;
      this.#schedule();
    }
  }

  /** The engine's next tick: one due now runs once this task ends (the task's changes go out together), never twice in a row; later ones on a timer. */
  #schedule(wait = this.#closed ? 1 : this.#engine.timeout - Date.now(), tick = () => this.#call((e, now) => e.tick(now))) {
    clearTimeout(this.#timer);
    if (this.#closed || this.#soon === "queued") return;
    // Capped: a wait beyond setTimeout's 32-bit range (an engine with nothing to wake for) would fire at once.
    if (wait > 0 || this.#soon) return void (this.#timer = setTimeout(tick, Math.min(Math.max(0, wait), 2 ** 31 - 1)));
    this.#soon = "queued";
    queueMicrotask(() => ((this.#soon = "running"), tick(), (this.#soon = undefined))); // a throw leaves ticks to the timer
  }

  #act(action) {
    const { link } = action;
    switch (action.type) {
      case "open-relay":
        return this.#openRelay(link, action.url);
      case "open-data-channel":
        return this.#openDataChannel(link, action.initiator);
      case "open-broadcast":
        return this.#openBroadcast(link, action.name);
      case "close":
        return this.#close(link);
      case "send":
      case "send-text": {
        const { socket, channel, broadcast } = this.#links.get(link) ?? {};
        const target = socket?.readyState === 1 ? socket : channel?.readyState === "open" ? channel : null;
        return target ? target.send(action.bytes ?? action.text) : broadcast?.postMessage(action.bytes);
      }
      case "signal":
        return this.#signal(link, action.data);
      case "store":
        return this.#store(action);
      case "event": {
        const { type, ...detail } = action.event;
        return emit(this, type, detail);
      }
    }
  }

  /** A hosted memory's write, after the ones before it, if the engine still wants it; its outcome goes back to the engine. */
  #store({ memory, id, write }) {
    const storage = this.#storages.get(memory);
    this.#writes = this.#writes
      .then(async () => {
        if (!storage || !this.#call((e) => e.writeWanted(id))) return;
        const failed = await Promise.resolve(write).then((w) => storage.write(w)).then(() => null, (error) => error ?? "storage failed");
        this.#call((e, now) => (failed ? e.storageFailed(now, id, failed) : e.stored(now, id)));
      })
      .catch((error) => emit(this, "storage-error", { memory, code: error.code, message: error.message })); // the engine refused the outcome; later writes go on
  }

  #close(link) {
    const { socket, pc, channel, broadcast } = this.#links.get(link) ?? {};
    this.#links.delete(link);
    socket?.close(1000, "leaving");
    channel?.close();
    pc?.close();
    broadcast?.close();
  }

  #openRelay(link, url) {
    const socket = new this.#options.WebSocket(url);
    socket.binaryType = "arraybuffer";
    this.#links.set(link, { socket });
    socket.onopen = () => this.#call((e, now) => e.linkOpened(now, link));
    socket.onmessage = ({ data }) => this.#call((e, now) => (typeof data === "string" ? e.receiveText(now, link, data) : e.receive(now, link, new Uint8Array(data))));
    socket.onerror = () => {}; // a close follows (and the ws package throws errors nobody listens to)
    socket.onclose = () => {
      if (this.#links.get(link)?.socket !== socket) return;
      this.#links.delete(link);
      this.#call((e, now) => e.linkClosed(now, link));
    };
  }

  #openDataChannel(link, initiator) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const entry = { pc };
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
    Object.assign(entry, { gone, signal });
    if (!initiator) return (pc.ondatachannel = ({ channel }) => ready(channel));
    ready(pc.createDataChannel("chrysalis-sync"));
    pc.createOffer()
      .then((offer) => pc.setLocalDescription(offer))
      .then(() => signal({ kind: "description", description: pc.localDescription.toJSON() }))
      .catch(gone);
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
    queueMicrotask(() => this.#call((e, now) => e.linkOpened(now, link))); // open at once; reported after the actions being carried out
  }
}
