// The demo page: everything runs through the `chrysalis-sdk` package served at /pkg/.
import {
  initializeChrysalis, Hasher, SigningKey, ed25519Verify, scryptAsync, seal, open, SecurityContext,
  GCounter, PNCounter, ORSet, LWWRegister, MVRegister, SkillAccumulator, EpisodeMemory, MerkleDag,
  EmbeddingService, cosineSimilarity, SyncNode, MemorySystem,
} from "/pkg/index.js";

const $ = (id) => document.getElementById(id);

/** An element with properties and children. */
function make(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** A button that runs `onClick`, then `render`. */
function makeButton(text, className, onClick, render) {
  const b = make("button", { textContent: text, className });
  b.addEventListener("click", () => {
    onClick();
    render();
  });
  return b;
}
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const CHUNK = 1 << 20;

function hashText() {
  const hasher = new Hasher($("hash-algorithm").value);
  try {
    $("hash-output").textContent = hex(hasher.update(new TextEncoder().encode($("hash-text").value)).digest());
  } finally {
    hasher.free();
  }
}

/** Hashes a file in chunks, yielding to the page between chunks and showing progress. */
async function hashFile(file) {
  const progress = $("file-progress");
  progress.hidden = false;
  progress.value = 0;
  const hasher = new Hasher($("hash-algorithm").value);
  try {
    for (let offset = 0; offset < file.size; offset += CHUNK) {
      const chunk = new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer());
      hasher.update(chunk);
      progress.value = Math.min(1, (offset + chunk.length) / file.size);
    }
    progress.value = 1;
    $("file-output").textContent = `${file.name} (${file.size} bytes), ${hasher.algorithm}: ${hex(hasher.digest())}`;
  } finally {
    hasher.free();
  }
}

const unhex = (text) => Uint8Array.from(text.trim().match(/../g) ?? [], (b) => parseInt(b, 16));
const utf8 = (text) => new TextEncoder().encode(text);

function setupSigning() {
  let key = SigningKey.generate();
  let signature = new Uint8Array();
  const showKey = () => ($("sign-public").textContent = `public key ${hex(key.publicKey())}`);
  $("sign-generate").addEventListener("click", () => {
    key.free();
    key = SigningKey.generate();
    showKey();
  });
  $("sign-button").addEventListener("click", () => {
    signature = key.sign(utf8($("sign-message").value));
    $("sign-signature").textContent = hex(signature);
  });
  $("verify-button").addEventListener("click", () => {
    const valid = ed25519Verify(key.publicKey(), utf8($("sign-message").value), signature);
    $("verify-result").textContent = valid ? "✓ valid signature" : "✗ invalid: the message or key changed since signing";
    $("verify-result").dataset.status = valid ? "ready" : "error";
  });
  showKey();
}

/** Derives an AES-256 key from the passphrase with sliced scrypt, showing progress. */
async function deriveKey() {
  const progress = $("enc-progress");
  progress.hidden = false;
  const salt = utf8("chrysalis-demo-salt"); // a real app stores a random salt with the data
  const key = await scryptAsync($("enc-passphrase").value, salt, { logN: 15, r: 8, p: 1, dkLen: 32 }, {
    onProgress: (fraction) => (progress.value = fraction),
  });
  return key;
}

function setupEncryption() {
  $("enc-button").addEventListener("click", async () => {
    const key = await deriveKey();
    $("enc-sealed").value = hex(seal(key, utf8($("enc-plaintext").value)));
    key.fill(0);
  });
  $("dec-button").addEventListener("click", async () => {
    const result = $("dec-result");
    const key = await deriveKey();
    try {
      result.textContent = `✓ ${new TextDecoder().decode(open(key, unhex($("enc-sealed").value)))}`;
      result.dataset.status = "ready";
    } catch (error) {
      result.textContent = `✗ ${error.code}: ${error.message}`;
      result.dataset.status = "error";
    } finally {
      key.fill(0);
    }
  });
}

const VAULT_STORE = "chrysalis-demo-vault";

function setupVault() {
  let ctx = new SecurityContext();
  const status = (text, ok = true) => {
    $("vault-status").textContent = text;
    $("vault-status").dataset.status = ok ? "ready" : "error";
  };
  const guard = (action) => async () => {
    try {
      await action();
    } catch (error) {
      status(`${error.code ?? "ERROR"}: ${error.message}`, false);
    }
  };
  const render = () => {
    const list = $("vault-keys");
    list.replaceChildren();
    if (ctx.locked) return;
    for (const provider of ctx.listProviders()) {
      const item = document.createElement("li");
      item.textContent = `${provider}: ${ctx.redactedApiKey(provider)} `;
      const remove = document.createElement("button");
      remove.textContent = "Remove";
      remove.addEventListener("click", guard(() => {
        ctx.removeApiKey(provider);
        render();
        status(`Removed the ${provider} key.`);
      }));
      item.append(remove);
      list.append(item);
    }
  };
  const replace = (next) => {
    ctx.free();
    ctx = next;
    render();
  };
  $("vault-store").addEventListener("click", guard(() => {
    const provider = $("vault-provider").value;
    ctx.storeApiKey(provider, $("vault-key").value);
    $("vault-key").value = "";
    render();
    status(`Stored the ${provider} key.`);
  }));
  $("vault-export").addEventListener("click", guard(() => {
    const blob = ctx.exportVault($("vault-passphrase").value);
    $("vault-blob").value = btoa(String.fromCharCode(...blob));
    status(`Exported ${blob.length} sealed bytes.`);
  }));
  $("vault-import").addEventListener("click", guard(() => {
    const blob = Uint8Array.from(atob($("vault-blob").value.trim()), (c) => c.charCodeAt(0));
    replace(SecurityContext.unlock(blob, $("vault-passphrase").value));
    status(`Imported: ${ctx.listProviders().length} keys.`);
  }));
  $("vault-save").addEventListener("click", guard(async () => {
    await ctx.persist(VAULT_STORE, $("vault-passphrase").value);
    status("Saved the sealed vault in IndexedDB.");
  }));
  $("vault-load").addEventListener("click", guard(async () => {
    replace(await SecurityContext.load(VAULT_STORE, $("vault-passphrase").value));
    status(`Loaded from IndexedDB: ${ctx.listProviders().length} keys.`);
  }));
  $("vault-lock").addEventListener("click", () => {
    ctx.lock();
    render();
    status("Locked: every key is wiped from memory. Import or load to continue.");
  });
}

/** Builds one replica's panel; returns its CRDTs and a `render()` for the panel. */
function crdtReplica(root, name) {
  const r = {
    views: new GCounter(name),
    counter: new PNCounter(name),
    set: new ORSet(name),
    lww: new LWWRegister(name),
    mv: new MVRegister(name),
    skills: new SkillAccumulator(name),
    episodes: new EpisodeMemory(name),
  };
  const dag = new MerkleDag();
  const viewsValue = make("strong", { className: "views-value" });
  const skillName = make("input", { className: "skill-name", placeholder: "skill", value: "planning" });
  const skillLevel = make("input", { className: "skill-level", type: "number", step: "0.1", value: "0.5" });
  const skillsValue = make("span", { className: "skills-value" });
  const episodeInput = make("input", { className: "episode-input", placeholder: "what happened" });
  const episodesValue = make("span", { className: "episodes-value" });
  const dagInput = make("input", { className: "dag-input", placeholder: "note" });
  const dagValue = make("span", { className: "dag-value" });
  let episodeCount = 0;
  const counterValue = make("strong", { className: "counter-value" });
  const setItems = make("span", { className: "set-items" });
  const lwwValue = make("strong", { className: "lww-value" });
  const mvValues = make("strong", { className: "mv-values" });
  const setInput = make("input", { className: "set-input", placeholder: "item" });
  const lwwInput = make("input", { className: "lww-input", placeholder: "value" });
  const mvInput = make("input", { className: "mv-input", placeholder: "value" });
  const button = (text, className, onClick) => makeButton(text, className, onClick, () => render());
  function render() {
    viewsValue.textContent = String(r.views.value);
    skillsValue.textContent = r.skills.skills().map(({ skill, level }) => `${skill} ${level}`).join(", ") || "—";
    episodesValue.textContent = r.episodes.ordered().map((id) => r.episodes.get(id).content).join(" → ") || "—";
    dagValue.textContent = `${dag.size} nodes, ${dag.heads().length} head(s): ${dag
      .topologicalOrder()
      .map((h) => new TextDecoder().decode(dag.payload(h)))
      .join(", ")}`;
    counterValue.textContent = String(r.counter.value);
    setItems.replaceChildren(
      ...r.set.values().map((item) => {
        const chip = make("span", { className: "chip", textContent: `${item} ` });
        chip.append(button("×", "set-remove", () => r.set.remove(item)));
        return chip;
      }),
    );
    lwwValue.textContent = JSON.stringify(r.lww.get() ?? null);
    mvValues.textContent = r.mv.values().map((v) => JSON.stringify(v)).join(" | ") || "—";
  }
  root.append(
    make("h3", { textContent: `Replica ${name}` }),
    make("div", { className: "row" }, ["G-Counter ", viewsValue, button("+1", "views-inc", () => r.views.increment())]),
    make("div", { className: "row" }, ["PN-Counter ", counterValue, button("+1", "inc", () => r.counter.increment()), button("−1", "dec", () => r.counter.decrement())]),
    make("div", { className: "row" }, ["OR-Set ", setInput, button("Add", "set-add", () => setInput.value && r.set.add(setInput.value))]),
    make("div", { className: "row" }, [setItems]),
    make("div", { className: "row" }, ["LWW ", lwwInput, button("Set", "lww-set", () => r.lww.set(lwwInput.value)), lwwValue]),
    make("div", { className: "row" }, ["MV ", mvInput, button("Set", "mv-set", () => r.mv.set(mvInput.value)), mvValues]),
    make("div", { className: "row" }, ["Skills ", skillName, skillLevel, button("Raise", "skill-raise", () => r.skills.raise(skillName.value, Number(skillLevel.value))), skillsValue]),
    make("div", { className: "row" }, [
      "Episodes ",
      episodeInput,
      button("Record", "episode-record", () => {
        const last = r.episodes.ordered().at(-1);
        r.episodes.record(`${name}-${++episodeCount}`, episodeInput.value, last ? [last] : []);
      }),
    ]),
    make("div", { className: "row" }, [episodesValue]),
    make("div", { className: "row" }, ["Merkle DAG ", dagInput, button("Append", "dag-append", () => dag.append(new TextEncoder().encode(dagInput.value)))]),
    make("div", { className: "row" }, [dagValue]),
  );
  render();
  return { r, dag, render };
}

function setupCrdts() {
  const a = crdtReplica($("replica-a"), "A");
  const b = crdtReplica($("replica-b"), "B");
  const sync = (from, to, label) => {
    let bytes = 0;
    for (const type of Object.keys(from.r)) {
      const delta = from.r[type].deltaSince(to.r[type].versionVector());
      bytes += delta.length;
      to.r[type].applyDelta(delta);
    }
    const nodes = from.dag.missing(to.dag.heads());
    bytes += nodes.length;
    to.dag.insertNodes(nodes);
    to.render();
    $("sync-status").textContent = `${label}: ${bytes} bytes of deltas`;
  };
  $("sync-ab").addEventListener("click", () => sync(a, b, "A → B"));
  $("sync-ba").addEventListener("click", () => sync(b, a, "B → A"));
}

/** The built-in corpus the demo searches by meaning. */
const CORPUS = [
  "Replicas of a CRDT converge without a coordinator.",
  "The vault keeps API keys encrypted under a passphrase.",
  "Agents gossip their state to peers over WebRTC.",
  "The user prefers dark mode and short answers.",
  "Paris is the capital of France.",
  "Bake the bread at 220 degrees for thirty minutes.",
  "A strong password is long and never reused.",
  "The football match ended in a draw.",
  "Sentence embeddings map text to vectors that capture meaning.",
  "Cats sleep for most of the day.",
];

const LOCAL_MODEL = {
  kind: "local",
  modelUrl: "/models/all-MiniLM-L6-v2/model.onnx",
  modelSha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
  tokenizerUrl: "/models/all-MiniLM-L6-v2/tokenizer.json",
  tokenizerSha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
};

let embeddingService;
/** The page's one embedding service (the model loads once for every panel). */
function localEmbeddings(onProgress) {
  embeddingService ??= EmbeddingService.create({ providers: [LOCAL_MODEL] }, { onProgress }).catch((error) => {
    embeddingService = undefined;
    throw error;
  });
  return embeddingService;
}

function setupEmbeddings() {
  const progress = $("embed-progress");
  const status = $("embed-status");
  const input = $("embed-text");
  let service;
  let corpus;
  let pending = 0;
  const search = async () => {
    const ticket = ++pending;
    const started = performance.now();
    const query = await service.embed(input.value);
    if (ticket !== pending) return; // a newer keystroke is on its way
    const ms = performance.now() - started;
    $("embed-vector").textContent = `${query.model}, ${query.dims} dimensions, ${ms.toFixed(1)} ms: [${Array.from(query.slice(0, 6), (x) => x.toFixed(3)).join(", ")}, …]`;
    const ranked = CORPUS.map((text, i) => ({ text, score: cosineSimilarity(query, corpus[i]) })).sort((a, b) => b.score - a.score);
    $("embed-results").replaceChildren(
      ...ranked.slice(0, 5).map(({ text, score }) => {
        const li = document.createElement("li");
        li.textContent = `${score.toFixed(3)}  ${text}`;
        return li;
      }),
    );
  };
  $("embed-load").addEventListener("click", async () => {
    $("embed-load").disabled = true;
    progress.hidden = false;
    status.dataset.status = "running";
    const loaded = {};
    try {
      service = await localEmbeddings((p) => {
            if (p.phase === "download") {
              loaded[p.file] = p;
              const done = Object.values(loaded).reduce((s, f) => s + f.loaded, 0);
              const total = Object.values(loaded).reduce((s, f) => s + f.total, 0);
              progress.value = total ? done / total : 0;
              status.textContent = `Downloading the ${p.file}${p.cached ? " (from Cache Storage)" : ""}: ${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`;
            } else if (p.phase === "load") {
              status.textContent = "Loading the model…";
            }
      });
      corpus = await service.embedBatch(CORPUS);
      status.textContent = "Model ready.";
      status.dataset.status = "ready";
      input.disabled = false;
      input.addEventListener("input", search);
      await search();
    } catch (error) {
      status.textContent = `Failed: ${error.code ?? ""} ${error.message}`;
      status.dataset.status = "error";
      $("embed-load").disabled = false;
    }
  });
}

/** One agent of the replication panel: a SyncNode sharing a counter and a set of notes. */
async function syncAgent(root, relayUrl, label) {
  const identity = SigningKey.generate();
  const node = await SyncNode.join({
    room: "demo",
    identity,
    relayUrl: relayUrl ?? undefined,
    webrtc: Boolean(relayUrl),
    broadcastChannel: true,
  });
  const name = `${label}-${node.id.slice(0, 6)}`;
  const clicks = node.share("clicks", new PNCounter(name));
  const notes = node.share("notes", new ORSet(name));
  const card = make("div", { className: "replica agent" });
  const clicksValue = make("strong", { className: "agent-clicks" });
  const noteInput = make("input", { className: "agent-note", placeholder: "a note to share" });
  const notesList = make("span", { className: "agent-notes" });
  const peersTable = make("table", { className: "agent-peers" });
  const traffic = make("div", { className: "agent-traffic digest" });
  const button = (text, className, onClick) => makeButton(text, className, onClick, () => render());
  function render() {
    clicksValue.textContent = String(clicks.value);
    notesList.textContent = notes.values().sort().join(" · ") || "—";
    const peers = node.peers();
    peersTable.replaceChildren(
      make("tr", {}, ["peer", "via", "score"].map((t) => make("th", { textContent: t }))),
      ...peers.map((p) => make("tr", {}, [p.id.slice(0, 12), p.via.join(" + "), String(p.score)].map((t) => make("td", { textContent: t })))),
    );
    const s = node.stats();
    const t = s.transports;
    traffic.textContent =
      `frames out ${s.framesSent} (${s.bytesSent} B) · in ${s.framesReceived} (${s.bytesReceived} B) · dropped ${s.dropped} · ` +
      `relay ${s.relay}: ${t.relay.framesSent}↑ ${t.relay.framesReceived}↓ · webrtc ${t.webrtc.framesSent}↑ ${t.webrtc.framesReceived}↓ · tabs ${t.broadcast.framesSent}↑ ${t.broadcast.framesReceived}↓`;
  }
  card.append(
    make("h3", { textContent: `Agent ${name}` }),
    make("div", { className: "row" }, ["Clicks ", clicksValue, button("+1", "agent-inc", () => node.change("clicks", clicks.increment()))]),
    make("div", { className: "row" }, [
      noteInput,
      button("Share", "agent-share", () => {
        if (noteInput.value) node.change("notes", notes.add(noteInput.value));
        noteInput.value = "";
      }),
    ]),
    make("div", { className: "row" }, [notesList]),
    peersTable,
    traffic,
  );
  root.append(card);
  for (const type of ["change", "peer-joined", "peer-left", "connection-state"]) node.on(type, render);
  setInterval(render, 1000);
  render();
  return node;
}

async function setupReplication() {
  const status = $("replication-status");
  const agents = $("replication-agents");
  let relayUrl = null;
  try {
    relayUrl = (await (await fetch("./relay.json")).json()).url;
  } catch {
    // Served without the relay: tabs still replicate over the BroadcastChannel.
  }
  status.textContent = relayUrl ? `Relay ${relayUrl}` : "No relay: tabs of this origin replicate over a BroadcastChannel.";
  let count = 0;
  const add = async () => {
    count += 1;
    await syncAgent(agents, relayUrl, String.fromCharCode(64 + count));
    status.dataset.status = "ready";
  };
  $("replication-add-agent").addEventListener("click", add);
  await add();
  await add();
}

const MEMORY_PASSPHRASE = "demo passphrase: use your own";

/** A public key as a short label; "this tab" for this agent's own. */
const shortKey = (mem, key) => (key === mem.publicKey ? "this tab" : `${key.slice(0, 10)}…`);

/** A council motion in words. */
function describeMotion(mem, motion) {
  if (!motion) return "(refused motion)";
  if (motion.type === "set-threshold") return `approvals needed → ${motion.threshold}`;
  if (motion.type === "accept-fact") return `accept as fact: “${mem.bead(motion.id)?.content.slice(0, 40) ?? motion.id.slice(0, 10)}”`;
  return `${motion.type} ${motion.member ?? ""}`;
}

/**
 * The council view: members (leader marked), the agreement's state, and its rounds, newest
 * first.
 */
function renderCouncil(mem, rounds) {
  const c = mem.council();
  const a = c.agreement;
  $("council-status").textContent =
    `${c.members.length} member${c.members.length > 1 ? "s" : ""}, ${c.threshold} approval${c.threshold > 1 ? "s" : ""} accept a bead` +
    (a ? ` · a motion needs ${a.orderAt} endorsement${a.orderAt > 1 ? "s" : ""} · view ${a.view} · ${a.executed} slots decided · ${a.pending} pending · messages sent ${a.stats.sent}, received ${a.stats.received}` : "");
  $("council-members").replaceChildren(
    make("tr", {}, ["member", "role"].map((t) => make("th", { textContent: t }))),
    ...c.members.map((key) => make("tr", {}, [make("td", { textContent: shortKey(mem, key) }), make("td", { textContent: a?.leader === key ? "leader" : "" })])),
  );
  $("council-rounds").replaceChildren(
    make("tr", {}, ["slot", "view", "round", "outcome"].map((t) => make("th", { textContent: t }))),
    ...rounds.map((r) =>
      make("tr", { className: `council-round council-${r.type}` }, [
        make("td", { textContent: r.seq ?? "" }),
        make("td", { textContent: r.view ?? "" }),
        make("td", { textContent: r.type === "view-changed" ? `view change: ${shortKey(mem, r.leader)} leads` : describeMotion(mem, r.motion) }),
        r.type === "requested"
          ? make("td", {}, [
              `asked by ${shortKey(mem, r.by)} `,
              makeButton("Endorse", "council-endorse", () => mem.endorse(r.id).catch(() => {}), () => {}),
            ])
          : make("td", {
              textContent:
                r.type === "proposed" ? "proposed here"
                : r.type === "endorsed" ? "endorsed here"
                : r.type === "view-changed" ? ""
                : `${r.refused ? `refused (${r.refused.code})` : "decided and applied"}${r.mine ? ` in ${r.ms} ms` : ", proposed by another member"}`,
            }),
      ]),
    ),
  );
}

/** This tab's memory agent: a MemorySystem replicated with the other tabs' agents. */
function setupMemory(relayUrlPromise) {
  const status = $("memory-status");
  let mem;
  let sync;
  let reopen; // (council) → reopens this tab's memory with that founding council
  const rounds = [];
  const render = () => {
    const beads = mem.beads().sort((a, b) => b.created - a.created);
    $("memory-beads").replaceChildren(
      make("tr", {}, ["memory", "by", "status", ""].map((t) => make("th", { textContent: t }))),
      ...beads.map((bead) => {
        const verdict = mem.acceptance(bead.id);
        const approve = makeButton("Approve", "memory-approve", () => mem.approve(bead.id).then(render), () => {});
        approve.disabled = verdict.accepted;
        const fact = makeButton("Accept as fact", "memory-fact", () => mem.propose({ type: "accept-fact", id: bead.id }).catch(() => {}), () => {});
        fact.disabled = verdict.accepted || !mem.council().agreement;
        return make("tr", { className: "memory-bead" }, [
          make("td", { textContent: bead.content }),
          make("td", { textContent: bead.author === mem.publicKey ? "this tab" : bead.authorId }),
          make("td", { className: "memory-verdict", textContent: verdict.accepted ? "accepted" : `pending ${verdict.have}/${verdict.need}` }),
          make("td", {}, [approve, fact]),
        ]);
      }),
    );
    const s = mem.stats();
    const refused = Object.entries(s.rejected).map(([code, n]) => `${code} ${n}`).join(", ") || "none";
    $("memory-stats").textContent =
      `agent ${mem.agentId} · ${s.beads} beads · ${s.model ?? "no vectors yet"}${s.dims ? ` (${s.dims} d)` : ""} · ` +
      `journal ${s.journal} · peers ${sync.peers().length} · refused from peers: ${refused}`;
    $("council-form").disabled = sync.peers().length === 0;
    renderCouncil(mem, rounds);
  };
  $("memory-start").addEventListener("click", async () => {
    $("memory-start").disabled = true;
    status.dataset.status = "running";
    status.textContent = "Loading the model and this tab's memory…";
    try {
      // One memory per tab (sessionStorage survives a reload, not a new tab).
      const database = (sessionStorage.chrysalisMemory ??= `demo-tab-${crypto.randomUUID().slice(0, 8)}`);
      const vault = `chrysalis-${database}-vault`;
      const security = await SecurityContext.load(vault, MEMORY_PASSPHRASE).catch(async () => {
        const fresh = new SecurityContext();
        await fresh.persist(vault, MEMORY_PASSPHRASE);
        return fresh;
      });
      const embedding = await localEmbeddings();
      const identity = await MemorySystem.loadIdentity({ security, database });
      const relayUrl = await relayUrlPromise;
      sync = await SyncNode.join({ room: "demo-memory", identity, relayUrl: relayUrl ?? undefined, broadcastChannel: true });
      reopen = async (council) => {
        await mem?.close();
        mem = await MemorySystem.open({ security, embedding, sync, name: "memory", database, council });
        mem.on("change", render);
        mem.on("agreement", (round) => {
          rounds.unshift(round);
          render();
        });
        render();
      };
      // The founding council: formed in one tab, shared through a last-writer-wins register,
      // adopted by every tab it names (and kept for a reload in sessionStorage).
      await reopen(sessionStorage.chrysalisCouncil ? JSON.parse(sessionStorage.chrysalisCouncil) : undefined);
      const founding = sync.share("council", new LWWRegister(mem.agentId));
      const adopt = (council) => {
        if (!council?.members?.includes(mem.publicKey) || JSON.stringify(council) === sessionStorage.chrysalisCouncil) return;
        sessionStorage.chrysalisCouncil = JSON.stringify(council);
        rounds.length = 0;
        reopen(council);
      };
      sync.on("change", ({ doc }) => doc === "council" && adopt(founding.get()));
      $("council-form").addEventListener("click", () => {
        const members = [mem.publicKey, ...sync.peers().map((p) => p.id)].sort();
        const council = { members, threshold: Math.min(2, members.length) };
        sync.change("council", founding.set(council));
        adopt(council);
      });
      for (const id of ["memory-text", "memory-remember", "memory-query", "memory-recall", "council-threshold", "council-propose"]) $(id).disabled = false;
      sync.on("peer-joined", render);
      sync.on("peer-left", render);
      status.textContent = `Agent ${mem.agentId} is running (${mem.beads().length} memories loaded).`;
      status.dataset.status = "ready";
      render();
    } catch (error) {
      status.textContent = `Failed: ${error.code ?? ""} ${error.message}`;
      status.dataset.status = "error";
      $("memory-start").disabled = false;
    }
  });
  $("memory-remember").addEventListener("click", async () => {
    const text = $("memory-text").value.trim();
    if (!text) return;
    await mem.remember(text, { kind: "note" });
    $("memory-text").value = "";
    render();
  });
  $("council-propose").addEventListener("click", () => {
    const threshold = Number($("council-threshold").value);
    mem.propose({ type: "set-threshold", threshold }).catch((error) => {
      if (error.code !== "BAD_INPUT") status.textContent = `Motion failed: ${error.code ?? ""} ${error.message}`;
    });
  });
  $("memory-recall").addEventListener("click", async () => {
    const hits = await mem.recall($("memory-query").value, { k: 5 });
    $("memory-results").replaceChildren(
      ...hits.map((h) =>
        make("li", {
          textContent: `${h.score.toFixed(3)}  ${h.bead.content}  (${h.bead.author === mem.publicKey ? "this tab" : h.bead.authorId}` +
            `${h.similarity === null ? "" : `, cosine ${h.similarity.toFixed(2)}`}${h.keyword === null ? "" : `, keywords ${h.keyword.toFixed(2)}`})`,
        }),
      ),
    );
  });
}

async function main() {
  const status = $("sdk-status");
  try {
    const { version } = await initializeChrysalis();
    status.textContent = `chrysalis-sdk ${version} is running in this page.`;
    status.dataset.status = "ready";
  } catch (error) {
    status.textContent = `Failed to load the SDK: ${error}`;
    status.dataset.status = "error";
    throw error;
  }

  $("hash-algorithm").addEventListener("change", hashText);
  $("hash-text").addEventListener("input", hashText);
  hashText();

  $("hash-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) hashFile(file);
  });
  setupSigning();
  setupEncryption();
  setupVault();
  setupCrdts();
  setupEmbeddings();
  const relayUrl = fetch("./relay.json")
    .then((r) => r.json())
    .then((j) => j.url)
    .catch(() => null);
  setupMemory(relayUrl);
  setupReplication().catch((error) => {
    $("replication-status").textContent = `Failed: ${error.code ?? ""} ${error.message}`;
    $("replication-status").dataset.status = "error";
  });

  const drop = $("file-drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const [file] = event.dataTransfer.files;
    if (file) hashFile(file);
  });
}

main();
