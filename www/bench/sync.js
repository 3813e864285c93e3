// One replica of the replication benchmark: a set of strings shared with the other pages of a
// room, through Chrysalis (`SyncNode` over the relay) or Yjs (a Y.Map over y-websocket, bundled
// into /bench-build/yjs-sync.js by scripts/bench-sync.mjs). The driver calls `setup`, then
// `edit` in every page at once, then awaits `finished` and reads `size()` and `window.wire`; it
// may call `setup` again, which leaves the room before joining the next.
const EXPECTED = { value: Infinity };
let replica;

/** Joins the room with `library`: "chrysalis", "chrysalis-before" (an earlier build of the
 * package, in /bench-build/before/pkg, to compare against) or "yjs". */
window.setup = async ({ library, url, room, name, webrtc, expected }) => {
  replica?.close();
  replica = undefined;
  EXPECTED.value = expected;
  if (library.startsWith("chrysalis")) {
    const sdk = await import(library === "chrysalis-before" ? "/bench-build/before/pkg/index.js" : "/pkg/index.js");
    await sdk.initializeChrysalis();
    const node = await sdk.SyncNode.join({ room, relayUrl: url, identity: sdk.SigningKey.generate(), webrtc });
    const set = node.share("set", new sdk.ORSet(name));
    replica = {
      add: (key) => node.change("set", set.add(key)),
      size: () => set.size,
      // With WebRTC, a peer counts once its data channel is open.
      peers: () => node.peers().filter((p) => !webrtc || p.via.includes("webrtc")).length,
      batch: (fn) => fn(),
      onChange: (fn) => node.on("change", fn),
      close: () => node.close(),
    };
  } else {
    const { Y, WebsocketProvider } = await import("/bench-build/yjs-sync.js");
    const doc = new Y.Doc();
    const provider = new WebsocketProvider(url, room, doc, { disableBc: true });
    await new Promise((resolve) => provider.once("synced", resolve));
    // Announced now: an unchanged awareness state reaches the room's other pages only when it is
    // renewed, 15 s later.
    provider.awareness.setLocalStateField("name", name);
    const map = doc.getMap("set");
    replica = {
      add: (key) => map.set(key, true),
      size: () => map.size,
      peers: () => provider.awareness.getStates().size - 1,
      batch: (fn) => doc.transact(fn),
      onChange: (fn) => map.observe(fn),
      close: () => {
        provider.destroy();
        doc.destroy();
      },
    };
  }
  window.done = null;
  // Resolves with the time this replica held every key: the driver awaits it (polling the
  // pages would take the cores the pages need).
  window.finished = new Promise((resolve) => (finish = resolve));
  replica.onChange(checkDone);
};

let finish;
/** Milliseconds on a clock every page of this machine shares, finer than `Date.now()`. */
const now = () => performance.timeOrigin + performance.now();
const checkDone = () => {
  if (window.done === null && replica.size() >= EXPECTED.value) finish((window.done = now()));
};

/** The next task: a message to itself (timers are throttled in background pages, messages are not). */
const nextTask = () =>
  new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = resolve;
    channel.port2.postMessage(0);
  });

/**
 * Adds `count` unique keys from time `at` on (the driver gives every page the same, so the
 * order it reaches the pages in is not measured): `mode` "each", each its own change in one
 * task; "tasks", each its own change in a task of its own; "batched", one change (a Yjs
 * transaction). Resolves with the time of the first edit.
 */
window.edit = async ({ count, prefix, mode, at }) => {
  while (now() < at - 2) await new Promise((resolve) => setTimeout(resolve, at - 2 - now()));
  while (now() < at); // the last 2 ms, beyond a timer's precision
  const started = now();
  const run = () => {
    for (let i = 0; i < count; i += 1) replica.add(`${prefix}-${i}`);
  };
  if (mode === "batched") replica.batch(run);
  else if (mode === "each") run();
  else {
    for (let i = 0; i < count; i += 1) {
      replica.add(`${prefix}-${i}`);
      await nextTask();
    }
  }
  checkDone();
  return started;
};

window.size = () => replica.size();
window.now = now;
window.peerCount = () => replica.peers();
window.benchReady = true;
