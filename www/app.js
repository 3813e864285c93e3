// The demo page: everything runs through the `chrysalis-sdk` package served at /pkg/.
import {
  initializeChrysalis, Hasher, SigningKey, ed25519Verify, scryptAsync, seal, open, SecurityContext,
  GCounter, PNCounter, ORSet, LWWRegister, MVRegister, SkillAccumulator, EpisodeMemory, MerkleDag,
  EmbeddingService, cosineSimilarity, SyncNode, MemorySystem, validateCertChain,
} from "/pkg/index.js";
import { AGENT_ROOM, MODEL_SHA256, agentName, councilFrom, followCouncil } from "./agents.js";

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
/** The certificate panel: samples from the demo server (`/cert-samples.json`), or pasted PEM. */
async function setupCertificates() {
  const select = $("cert-sample");
  const result = $("cert-result");
  const samples = await fetch("./cert-samples.json")
    .then((r) => (r.ok ? r.json() : []))
    .catch(() => []);
  select.append(make("option", { value: "", textContent: samples.length ? "Pick a sample…" : "No samples (openssl missing): paste PEM" }));
  for (const [i, sample] of samples.entries()) select.append(make("option", { value: String(i), textContent: sample.name }));
  select.addEventListener("change", () => {
    const sample = samples[Number(select.value)];
    if (!sample || select.value === "") return;
    $("cert-chain").value = sample.chain;
    $("cert-anchors").value = sample.anchors;
    $("cert-hostname").value = sample.hostname;
    result.textContent = "";
    result.dataset.status = "idle";
  });
  $("cert-validate").addEventListener("click", async () => {
    const hostname = $("cert-hostname").value.trim();
    try {
      const info = await validateCertChain($("cert-chain").value, $("cert-anchors").value, hostname ? { hostname } : {});
      result.textContent = `✓ ${info.leafSubject}, anchored at ${info.anchorSubject} (${info.pathLength} certificates; valid until ${info.notAfter.toISOString().slice(0, 10)})`;
      result.dataset.status = "ready";
    } catch (error) {
      const where = error.index === undefined ? "" : ` (certificate ${error.index}, 0 = leaf)`;
      result.textContent = `✗ ${error.code}${where}: ${error.message}`;
      result.dataset.status = "error";
    }
  });
}

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
  modelSha256: MODEL_SHA256.model,
  tokenizerUrl: "/models/all-MiniLM-L6-v2/tokenizer.json",
  tokenizerSha256: MODEL_SHA256.tokenizer,
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
  localEmbeddings().then(
    async (ready) => {
      service = ready;
      corpus = await service.embedBatch(CORPUS);
      status.textContent = "Model ready: type to search the corpus.";
      status.dataset.status = "ready";
      input.disabled = false;
      input.addEventListener("input", search);
      await search();
    },
    (error) => {
      status.textContent = `Failed: ${error.code ?? ""} ${error.message}`;
      status.dataset.status = "error";
    },
  );
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

/** The replication panel: SyncNodes sharing a counter and notes, started one per click. */
function setupReplication(relayUrlPromise) {
  const status = $("replication-status");
  const agents = $("replication-agents");
  let count = 0;
  $("replication-add-agent").addEventListener("click", async () => {
    const relayUrl = await relayUrlPromise;
    status.textContent = relayUrl ? `Relay ${relayUrl}` : "No relay: tabs of this origin replicate over a BroadcastChannel.";
    count += 1;
    try {
      await syncAgent(agents, relayUrl, String.fromCharCode(64 + count));
      status.dataset.status = "ready";
    } catch (error) {
      status.textContent = `Failed: ${error.code ?? ""} ${error.message}`;
      status.dataset.status = "error";
    }
  });
}

const MEMORY_PASSPHRASE = "demo passphrase: use your own";
/** How many agents each page starts. */
const AGENTS_PER_PAGE = 2;

/**
 * The page's sentence model, loading in the background with its progress at the top of the page;
 * `embed` waits for it, so agents remember and recall from the start.
 */
function backgroundModel() {
  const progress = $("model-progress");
  const status = $("model-status");
  const files = {};
  const service = localEmbeddings((p) => {
    if (p.phase === "download") {
      files[p.file] = p;
      const done = Object.values(files).reduce((s, f) => s + f.loaded, 0);
      const total = Object.values(files).reduce((s, f) => s + f.total, 0);
      progress.value = total ? (0.9 * done) / total : 0;
      status.textContent = `${p.cached ? "from Cache Storage" : "downloading"}: ${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`;
    } else if (p.phase === "load") {
      progress.value = 0.95;
      status.textContent = "loading in the workers…";
    }
  });
  service.then(
    () => {
      progress.value = 1;
      status.textContent = "ready";
      status.dataset.status = "ready";
    },
    (error) => {
      status.textContent = `failed: ${error.code ?? ""} ${error.message}`;
      status.dataset.status = "error";
    },
  );
  return { embed: async (text) => (await service).embed(text) };
}

/** This tab's vault, in a worker of its own, persisted in IndexedDB (created on the first visit). */
async function tabVault(name) {
  const store = `chrysalis-${name}-vault`;
  try {
    return await SecurityContext.isolated({ store, passphrase: MEMORY_PASSPHRASE });
  } catch (error) {
    if (error.code !== "NOT_FOUND") throw error;
    const fresh = await SecurityContext.isolated({ passphrase: MEMORY_PASSPHRASE });
    await fresh.persist(store);
    return fresh;
  }
}

/** Runs an agent's action from a click; a refusal (a memory being reopened, a motion refused) shows in the council's rounds, not as an error. */
const quietly = (action) => () => {
  try {
    Promise.resolve(action()).catch(() => {});
  } catch {}
};

/** A council motion in words. */
function describeMotion(mem, motion) {
  if (!motion) return "(refused motion)";
  if (motion.type === "set-threshold") return `approvals needed → ${motion.threshold}`;
  if (motion.type === "accept-fact") return `accept as fact: “${mem.bead(motion.id)?.content.slice(0, 40) ?? motion.id.slice(0, 10)}”`;
  return `${motion.type} ${motion.member ?? ""}`;
}

/**
 * One agent of this page: its sync node in the agents' room and its memory (persisted per tab
 * and agent), reopened when a founding council that names it is adopted.
 */
async function startAgent(index, { tab, security, embedding, relayUrl, founding, onChange, onRound }) {
  const database = `demo-${tab}-${index}`;
  const identity = await MemorySystem.loadIdentity({ security, database });
  const sync = await SyncNode.join({ room: AGENT_ROOM, identity, relayUrl: relayUrl ?? undefined, webrtc: Boolean(relayUrl), broadcastChannel: true });
  const agent = { index, sync, key: sync.id, name: agentName(sync.id), mem: null, database };
  const councilKey = `chrysalisCouncil-${index}`;
  agent.open = async (council) => {
    const closing = agent.mem;
    agent.mem = null; // nothing renders from a memory being reopened
    await closing?.close();
    agent.mem = await MemorySystem.open({ security, embedding, sync, name: "memory", database, council });
    agent.mem.on("change", onChange);
    agent.mem.on("agreement", (round) => onRound(agent, round));
    onChange();
  };
  // The council this tab's agent had (another script of the origin may have written anything
  // there), then the founding councils the room's register holds, as `followCouncil` decides.
  let current = null;
  try {
    current = councilFrom(JSON.parse(sessionStorage[councilKey] ?? "null"), agent.key);
  } catch {} // not JSON: no council
  try {
    await agent.open(current ?? undefined);
  } catch (error) {
    if (!current) throw error;
    current = null; // one this memory refuses: open without it
    delete sessionStorage[councilKey];
    await agent.open(undefined);
  }
  agent.adopt = followCouncil(agent.key, current, {
    reopen: async (council) => {
      await agent.open(council ?? undefined);
      if (council) sessionStorage[councilKey] = JSON.stringify(council);
      else delete sessionStorage[councilKey];
    },
    onRefused: onChange, // the panel shows the council the agent has
  });
  agent.founding = sync.share("council", new LWWRegister(agent.name));
  sync.on("change", ({ doc }) => doc === "council" && agent.adopt(agent.founding.get()));
  for (const type of ["peer-joined", "peer-left", "change", "connection-state"]) sync.on(type, onChange);
  return agent;
}

/** One agent's card: its name, a box to remember with, and what it wrote. */
function agentCard(agent, render) {
  const input = make("input", { className: "agent-remember-text", placeholder: `something for ${agent.name} to remember` });
  const status = make("span", { className: "agent-remember-status" });
  const remember = async () => {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    status.textContent = "embedding, signing, sealing…";
    const started = performance.now();
    try {
      await agent.mem.remember(text, { kind: "note" });
      status.textContent = `remembered in ${Math.round(performance.now() - started)} ms`;
    } catch (error) {
      status.textContent = `failed: ${error.code ?? ""} ${error.message}`;
    }
    render();
  };
  const button = make("button", { className: "agent-remember", textContent: "Remember" });
  button.addEventListener("click", remember);
  input.addEventListener("keydown", (event) => event.key === "Enter" && remember());
  const list = make("ul", { className: "agent-beads" });
  const card = make("div", { className: "agent-card" }, [
    make("h3", {}, [make("span", { className: "agent-name", textContent: agent.name }), make("span", { className: "agent-key", textContent: ` ${agent.key.slice(0, 16)}…` })]),
    make("div", { className: "row" }, [input, button]),
    status,
    list,
  ]);
  card.dataset.key = agent.key;
  card.update = () => {
    const mine = agent.mem.beads().filter((b) => b.author === agent.key).sort((a, b) => b.created - a.created);
    list.replaceChildren(...mine.slice(0, 3).map((b) => make("li", { textContent: b.content })));
    if (mine.length > 3) list.append(make("li", { className: "hint", textContent: `and ${mine.length - 3} more` }));
    if (mine.length === 0) list.append(make("li", { className: "hint", textContent: "no memories yet" }));
  };
  return card;
}

/** The link a peer is reached by, best first: a data channel, the tabs' channel, the relay. */
const bestLink = (via) => (via.includes("webrtc") ? "webrtc" : via.includes("broadcast") ? "broadcast" : "relay");

/** The room as this page sees it: its agents, their peers, and the link of each pair, as SVG. */
function drawRoom(agents) {
  const svg = $("room-graph");
  const nodes = new Map(agents.map((a) => [a.key, { key: a.key, here: true }]));
  const edges = [];
  for (const a of agents) {
    for (const peer of a.sync.peers()) {
      if (!nodes.has(peer.id)) nodes.set(peer.id, { key: peer.id, here: false, via: peer.via });
      if (!agents.some((b) => b.key === peer.id && b.index < a.index)) edges.push({ from: a.key, to: peer.id, link: bestLink(peer.via) });
    }
  }
  const list = [...nodes.values()];
  const [cx, cy, r] = [180, 122, 82];
  list.forEach((n, i) => {
    const angle = Math.PI + (2 * Math.PI * i) / list.length;
    Object.assign(n, { x: cx + r * Math.cos(angle), y: cy + r * Math.sin(angle) });
  });
  const ns = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  svg.replaceChildren(
    ...edges.map(({ from, to, link }) => {
      const [a, b] = [nodes.get(from), nodes.get(to)];
      return el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: `edge link-${link}`, "data-link": link });
    }),
    ...list.flatMap((n) => [
      el("circle", { cx: n.x, cy: n.y, r: 9, class: `peer ${n.here ? "here" : n.via?.includes("broadcast") ? "tab" : "remote"}`, "data-key": n.key }),
      el("text", { x: n.x, y: n.y + (n.y < cy ? -14 : 22), class: "peer-label", "text-anchor": "middle" }, `${agentName(n.key)}${n.here ? "" : n.via?.includes("broadcast") ? " (tab)" : " (relay)"}`),
    ]),
  );
  svg.dataset.peers = String(list.length);
  const count = (test) => list.filter(test).length;
  const tabs = count((n) => !n.here && n.via?.includes("broadcast"));
  $("room-caption").textContent =
    `${list.length} agents: ${agents.length} in this page, ${tabs} in other tabs, ${list.length - agents.length - tabs} reached through the relay (another browser or Node.js)`;
}

/** Traffic of this page's agents, summed: frames and bytes per link, signatures checked, forged and refused. */
function drawTraffic(agents) {
  const stats = agents.map((a) => a.sync.stats());
  const sum = (f) => stats.reduce((s, x) => s + f(x), 0);
  const kb = (n) => `${(n / 1024).toFixed(1)} kB`;
  const per = (t) => {
    const f = (field) => sum((s) => s.transports[t][field]);
    return [`${f("framesSent")} (${kb(f("bytesSent"))})`, `${f("framesReceived")} (${kb(f("bytesReceived"))})`];
  };
  const drops = {};
  for (const s of stats) for (const [code, n] of Object.entries(s.drops)) drops[code] = (drops[code] ?? 0) + n;
  const reasons = Object.entries(drops).map(([code, n]) => `${code} ${n}`).join(", ");
  const refusedBeads = agents.reduce((n, a) => n + Object.values(a.mem?.stats().rejected ?? {}).reduce((x, y) => x + y, 0), 0);
  const cells = (values, tag = "td") => make("tr", {}, values.map((t) => make(tag, { textContent: String(t) })));
  const total = (id, label, value) => make("tr", { id }, [make("td", { textContent: label }), make("td", { colSpan: 2, textContent: value })]);
  $("room-traffic").replaceChildren(
    cells(["link", "frames out", "frames in"], "th"),
    cells(["relay", ...per("relay")]),
    cells(["WebRTC", ...per("webrtc")]),
    cells(["tabs", ...per("broadcast")]),
    total("room-checked", "replication frames, signature checked", String(sum((s) => s.framesReceived))),
    total("room-forged", "forged (bad signature), dropped", String(drops.BAD_SIGNATURE ?? 0)),
    total("room-refused", "refused, all reasons", `${sum((s) => s.dropped)} frames${reasons ? ` (${reasons})` : ""}, ${refusedBeads} beads`),
  );
}

/** The room's memories with their acceptance, and the council's rounds as this page's agents saw them. */
function drawCouncil(agents, rounds) {
  const lead = agents[0];
  const mem = lead.mem;
  const c = mem.council();
  const a = c.agreement;
  $("council-status").textContent =
    `${c.members.length} member${c.members.length > 1 ? "s" : ""}, ${c.threshold} approval${c.threshold > 1 ? "s" : ""} accept a bead` +
    (a ? ` · a motion needs ${a.orderAt} endorsement${a.orderAt > 1 ? "s" : ""} · view ${a.view}, leader ${agentName(a.leader)} · ${a.executed} decided · ${a.pending} pending` : "");
  $("council-form").disabled = lead.sync.peers().length === 0;
  $("council-propose").disabled = !a;
  const beads = mem.beads().sort((x, y) => y.created - x.created);
  $("memory-beads").replaceChildren(
    make("tr", {}, ["memory", "by", "status", ""].map((t) => make("th", { textContent: t }))),
    ...beads.map((bead) => {
      const verdict = mem.acceptance(bead.id);
      const buttons = agents.map((agent) => {
        const approve = makeButton(`Approve as ${agent.name}`, "memory-approve", quietly(() => agent.mem.approve(bead.id)), () => {});
        approve.disabled = verdict.accepted || agent.mem.acceptance(bead.id).accepted;
        return approve;
      });
      const fact = makeButton("Accept as fact", "memory-fact", quietly(() => mem.propose({ type: "accept-fact", id: bead.id })), () => {});
      fact.disabled = verdict.accepted || !a;
      return make("tr", { className: "memory-bead" }, [
        make("td", { textContent: bead.content }),
        make("td", { textContent: agentName(bead.author) }),
        make("td", { className: "memory-verdict", textContent: verdict.accepted ? "accepted" : `pending ${verdict.have}/${verdict.need}` }),
        make("td", {}, [...buttons, fact]),
      ]);
    }),
  );
  const seen = new Set();
  const shown = rounds.filter((r) => {
    const key = r.type === "decided" ? `d${r.seq}/${r.view}` : r.type === "view-changed" ? `v${r.view}` : `${r.agent.key}${r.type}${r.id}`;
    return !seen.has(key) && seen.add(key);
  });
  $("council-rounds").replaceChildren(
    make("tr", {}, ["slot", "view", "motion", "round"].map((t) => make("th", { textContent: t }))),
    ...shown.map((r) =>
      make("tr", { className: `council-round council-${r.type}` }, [
        make("td", { textContent: r.seq ?? "" }),
        make("td", { textContent: r.view ?? "" }),
        make("td", { textContent: r.type === "view-changed" ? `view change: ${agentName(r.leader)} leads` : describeMotion(mem, r.motion) }),
        r.type === "requested"
          ? make("td", {}, [`asked by ${agentName(r.by)} `, makeButton(`Endorse as ${r.agent.name}`, "council-endorse", quietly(() => r.agent.mem.endorse(r.id)), () => {})])
          : make("td", {
              textContent:
                r.type === "proposed" ? `proposed by ${r.agent.name}`
                : r.type === "endorsed" ? `endorsed by ${r.agent.name}`
                : r.type === "view-changed" ? ""
                : `${r.refused ? `refused (${r.refused.code})` : "decided and applied"}${r.mine ? ` in ${r.ms} ms` : ""}`,
            }),
      ]),
    ),
  );
}

/** The first screen: this page's agents, recall over the room's memory, the room live, the council. */
async function setupAgents(relayUrlPromise) {
  const embedding = backgroundModel();
  // One set of agents per tab (sessionStorage survives a reload, not a new tab).
  const tab = (sessionStorage.chrysalisTab ??= crypto.randomUUID().slice(0, 8));
  const [security, relayUrl] = await Promise.all([tabVault(`demo-${tab}`), relayUrlPromise]);
  const agents = [];
  const rounds = [];
  const cards = new Map();
  let queued = false;
  const render = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      if (agents.length < AGENTS_PER_PAGE || agents.some((a) => !a.mem)) return;
      for (const agent of agents) cards.get(agent.key).update();
      drawRoom(agents);
      drawTraffic(agents);
      drawCouncil(agents, rounds);
    });
  };
  const onRound = (agent, round) => {
    rounds.unshift({ ...round, agent });
    render();
  };
  for (let i = 0; i < AGENTS_PER_PAGE; i++) {
    const agent = await startAgent(i, { tab, security, embedding, relayUrl, onChange: render, onRound });
    agents.push(agent);
    const card = agentCard(agent, render);
    cards.set(agent.key, card);
    $("agent-list").append(card);
  }
  $("council-form").addEventListener("click", () => {
    const members = [...new Set([...agents.map((a) => a.key), ...agents.flatMap((a) => a.sync.peers().map((p) => p.id))])].sort();
    const council = { members, threshold: Math.min(2, members.length) };
    agents[0].sync.change("council", agents[0].founding.set(council));
    rounds.length = 0;
    for (const agent of agents) agent.adopt(council);
  });
  $("council-propose").addEventListener("click", quietly(() => agents[0].mem.propose({ type: "set-threshold", threshold: Number($("council-threshold").value) })));
  const recall = async () => {
    const started = performance.now();
    const hits = await agents[0].mem?.recall($("recall-query").value, { k: 5 });
    const ms = Math.round(performance.now() - started);
    $("recall-results").replaceChildren(
      ...(hits ?? []).map((h) =>
        make("li", {}, [
          make("span", { className: "recall-text", textContent: h.bead.content }),
          make("span", {
            className: "recall-why",
            textContent: ` ${agentName(h.bead.author)} · score ${h.score.toFixed(3)}` +
              `${h.similarity === null ? "" : ` · meaning ${h.similarity.toFixed(2)}`}${h.keyword === null ? "" : ` · keywords ${h.keyword.toFixed(2)}`}`,
          }),
        ]),
      ),
    );
    $("recall-results").dataset.ms = String(ms);
  };
  $("recall-button").addEventListener("click", recall);
  $("recall-query").addEventListener("keydown", (event) => event.key === "Enter" && recall());
  setInterval(render, 1000); // the traffic counters move without events
  $("agents").dataset.state = "ready";
  render();
  return agents;
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

  // The agents first: their model starts loading (with its progress) before any panel asks for it.
  const relayUrl = fetch("./relay.json")
    .then((r) => r.json())
    .then((j) => j.url)
    .catch(() => null); // served without the relay: tabs still replicate over a BroadcastChannel
  setupAgents(relayUrl).catch((error) => {
    $("model-status").textContent = `The agents failed to start: ${error.code ?? ""} ${error.message}`;
    $("model-status").dataset.status = "error";
  });

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
  setupCertificates();
  setupCrdts();
  setupEmbeddings();
  setupReplication(relayUrl);

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
