// CRDT benchmark cases: Chrysalis against Yjs, Automerge and Loro on equivalent workloads.
import { GCounter, ORSet } from "/pkg/index.js";
import * as Y from "yjs";
import * as Automerge from "@automerge/automerge/slim";
import { automergeWasmBase64 } from "@automerge/automerge/automerge.wasm.base64";
import initLoro, { LoroDoc } from "loro-crdt";

/** A seeded pseudo-random generator (mulberry32), so every library gets the same operations. */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Four implementations of a replicated set of string keys behind one small interface. */
function adapters() {
  return {
    Chrysalis: {
      create: (i) => ({ set: new ORSet(`writer-${i}`) }),
      add: (r, key) => r.set.add(key),
      remove: (r, key) => r.set.remove(key),
      has: (r, key) => r.set.has(key),
      merge: (into, from) => into.set.merge(from.set),
      size: (r) => r.set.toBytes().length,
    },
    Yjs: {
      create: (i) => {
        const doc = new Y.Doc();
        doc.clientID = i + 1;
        return { doc, map: doc.getMap("m") };
      },
      add: (r, key) => r.map.set(key, true),
      remove: (r, key) => r.map.delete(key),
      has: (r, key) => r.map.has(key),
      merge: (into, from) => Y.applyUpdate(into.doc, Y.encodeStateAsUpdate(from.doc, Y.encodeStateVector(into.doc))),
      size: (r) => Math.min(Y.encodeStateAsUpdate(r.doc).length, Y.encodeStateAsUpdateV2(r.doc).length),
    },
    Automerge: {
      create: (i) => ({ doc: Automerge.init({ actor: (i + 1).toString(16).padStart(32, "0") }), pending: [] }),
      add: (r, key) => r.pending.push([key, true]),
      remove: (r, key) => r.pending.push([key, false]),
      has: (r, key) => {
        flush(r);
        return key in r.doc;
      },
      merge: (into, from) => {
        flush(into);
        flush(from);
        into.doc = Automerge.merge(into.doc, from.doc);
      },
      size: (r) => {
        flush(r);
        return Automerge.save(r.doc).length;
      },
    },
    Loro: {
      create: (i) => {
        const doc = new LoroDoc();
        doc.setPeerId(BigInt(i + 1));
        return { doc, map: doc.getMap("m") };
      },
      add: (r, key) => r.map.set(key, true),
      remove: (r, key) => r.map.delete(key),
      has: (r, key) => r.map.get(key) !== undefined,
      merge: (into, from) => {
        from.doc.commit();
        into.doc.commit();
        into.doc.import(from.doc.export({ mode: "update", from: into.doc.oplogVersion() }));
      },
      size: (r) => {
        r.doc.commit();
        return r.doc.export({ mode: "snapshot" }).length;
      },
    },
  };
}

/** Automerge batches a replica's pending edits into one change. */
function flush(r) {
  if (r.pending.length) {
    const edits = r.pending.splice(0);
    r.doc = Automerge.change(r.doc, (d) => {
      for (const [key, present] of edits) {
        if (present) d[key] = true;
        else delete d[key];
      }
    });
  }
}

/** 10 writers, 10k random adds/removes over 2k keys, all merged every 500 operations. */
function manyWriters(lib) {
  const random = prng(42);
  const writers = Array.from({ length: 10 }, (_, i) => lib.create(i));
  const syncAll = () => {
    for (const w of writers.slice(1)) lib.merge(writers[0], w);
    for (const w of writers.slice(1)) lib.merge(w, writers[0]);
  };
  for (let op = 0; op < 10_000; op++) {
    const w = writers[Math.floor(random() * writers.length)];
    const key = `key-${Math.floor(random() * 2000)}`;
    if (random() < 0.3 && lib.has(w, key)) lib.remove(w, key);
    else lib.add(w, key);
    if (op % 500 === 499) syncAll();
  }
  syncAll();
  return lib.size(writers[0]);
}

/** One writer adds 100k keys and removes them all. */
function addRemove(lib) {
  const r = lib.create(0);
  for (let i = 0; i < 100_000; i++) lib.add(r, `k${i}`);
  lib.size(r); // commit the adds as their own batch
  for (let i = 0; i < 100_000; i++) lib.remove(r, `k${i}`);
  return lib.size(r);
}

/** Throughput cases ({ name, input, ours, anchors }) and size cases ({ name, sizes }). */
export async function crdtCases() {
  await Automerge.initializeBase64Wasm(automergeWasmBase64);
  await initLoro();
  const libs = adapters();

  // Counter: increment on one replica, ship the delta, apply it on another. Every library starts
  // a fresh pair of replicas every COUNTER_RUN increments: the anchors keep each increment in
  // their history, so their cost per increment grew with how many earlier rounds had run (the
  // Automerge ratio read 1,111×, 1,633× and 2,036× in three runs).
  const COUNTER_RUN = 1000;
  const counterPairs = {
    ours: () => ({ a: new GCounter("a"), b: new GCounter("b") }),
    yjs: () => {
      const pair = { a: new Y.Doc(), b: new Y.Doc(), n: 0, update: null };
      pair.b.on("update", (u) => (pair.update = u));
      return pair;
    },
    am: () => {
      const a = Automerge.from({ n: new Automerge.Counter(0) });
      return { a, b: Automerge.clone(a) };
    },
    loro: () => {
      const pair = { a: new LoroDoc(), b: new LoroDoc(), update: null };
      pair.b.subscribeLocalUpdates((u) => (pair.update = u));
      pair.counter = pair.b.getCounter("n");
      return pair;
    },
  };
  /** `step(pair)` on a pair from `make`, replaced by a fresh one every COUNTER_RUN calls (the old one freed). */
  const inRuns = (make, step) => {
    let pair = make();
    let calls = 0;
    return () => {
      if (++calls % COUNTER_RUN === 0) {
        pair.a.free?.();
        pair.b.free?.();
        pair = make();
      }
      step(pair);
    };
  };
  const counter = {
    name: "Counter increment → delta → apply on a peer",
    input: `1 op (fresh replicas every ${COUNTER_RUN.toLocaleString("en-US")})`,
    ours: inRuns(counterPairs.ours, (p) => p.a.applyDelta(p.b.increment(1))),
    anchors: [
      ["Yjs (Y.Map)", inRuns(counterPairs.yjs, (p) => {
        p.b.getMap("c").set("b", ++p.n);
        Y.applyUpdate(p.a, p.update);
      })],
      ["Automerge (Counter)", inRuns(counterPairs.am, (p) => {
        p.b = Automerge.change(p.b, (d) => d.n.increment(1));
        [p.a] = Automerge.applyChanges(p.a, [Automerge.getLastLocalChange(p.b)]);
      })],
      ["Loro (LoroCounter)", inRuns(counterPairs.loro, (p) => {
        p.counter.increment(1);
        p.b.commit();
        p.a.import(p.update);
      })],
    ],
  };

  // Sets of 10k keys: load replica A's state and merge replica B's (5k keys each).
  const half = (i) => Array.from({ length: 5000 }, (_, k) => `${i}-${k}`);
  const build = (lib, i) => {
    const r = lib.create(i);
    for (const key of half(i)) lib.add(r, key);
    return r;
  };
  const setA = build(libs.Chrysalis, 0).set.toBytes();
  const setB = build(libs.Chrysalis, 1).set.toBytes();
  const [yA, yB] = [0, 1].map((i) => Y.encodeStateAsUpdate(build(libs.Yjs, i).doc));
  const [aA, aB] = [0, 1].map((i) => {
    const r = build(libs.Automerge, i);
    flush(r);
    return Automerge.save(r.doc);
  });
  const [lA, lB] = [0, 1].map((i) => {
    const r = build(libs.Loro, i);
    r.doc.commit();
    return r.doc.export({ mode: "snapshot" });
  });
  const merge10k = {
    name: "Set of 10k keys: load A, merge B",
    input: "5k + 5k keys",
    ours: () => {
      const set = ORSet.fromBytes(setA, "reader");
      set.merge(ORSet.fromBytes(setB, "other"));
      set.free();
    },
    anchors: [
      ["Yjs (Y.Map)", () => {
        const doc = new Y.Doc();
        Y.applyUpdate(doc, yA);
        Y.applyUpdate(doc, yB);
        doc.destroy();
      }],
      ["Automerge (map)", () => Automerge.merge(Automerge.load(aA), Automerge.load(aB))],
      ["Loro (LoroMap)", () => {
        const doc = new LoroDoc();
        doc.import(lA);
        doc.import(lB);
        doc.free();
      }],
    ],
  };

  const sizes = [];
  for (const [name, run] of [
    ["Set/map after 10k random ops by 10 writers (2k keys)", manyWriters],
    ["After adding and removing 100k keys (one writer)", addRemove],
  ]) {
    const ourSize = run(libs.Chrysalis);
    sizes.push({
      name,
      ours: ourSize,
      anchors: ["Yjs", "Automerge", "Loro"].map((lib) => [lib, run(libs[lib])]),
    });
  }
  return { throughput: [counter, merge10k], sizes };
}
