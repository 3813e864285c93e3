// Compile-time checks of the package's TypeScript declarations (run by `tsc --noEmit`).
import init, {
  cosineSimilarity,
  EmbeddingService,
  type EmbeddingProgress,
  type EmbeddingVector,
  AesGcm,
  ApiKey,
  Hasher,
  ConflictResolver,
  EpisodeMemory,
  GCounter,
  MerkleDag,
  MVRegister,
  ORSet,
  SecureBuffer,
  SecurityContext,
  compareVersionVectors,
  SigningKey,
  SyncNode,
  MemorySystem,
  VectorIndex,
  type CouncilRound,
  type MemoryHit,
  type SyncNodeOptions,
  type SyncTransport,
  blake3,
  blake3DeriveKey,
  blake3Keyed,
  ed25519Verify,
  ed25519VerifyBatch,
  initializeChrysalis,
  initSync,
  loadX509,
  scrypt,
  scryptAsync,
  seal,
  sha256,
  validateApiKeyFormat,
  validateCertChain,
  type ApiKeyProvider,
  type CertChainInfo,
  type ChrysalisInfo,
} from "chrysalis-sdk";

export async function usage(bytes: Uint8Array, wasm: BufferSource): Promise<Uint8Array[]> {
  const info: ChrysalisInfo = await initializeChrysalis({ x509: true });
  const version: string = info.version;
  void version;
  void init;
  initSync({ module: wasm });

  // update() chains and keeps the Hasher type.
  const hasher: Hasher = new Hasher("sha3-256").update(bytes).update(bytes);
  using disposable = new Hasher("blake3");
  disposable.update(bytes);

  // @ts-expect-error: unknown algorithm names are a type error.
  new Hasher("md5");

  const key = SigningKey.generate();
  const ok: boolean = ed25519Verify(key.publicKey(), bytes, key.sign(bytes)) && ed25519VerifyBatch([key.publicKey()], [bytes], [key.sign(bytes)]);
  void ok;

  const aes = new AesGcm(bytes);
  const sealed: Uint8Array = aes.seal(bytes, null);

  const controller = new AbortController();
  const derived: Uint8Array = await scryptAsync("password", bytes, { logN: 14 }, { onProgress: (f: number) => void f, signal: controller.signal });

  const provider: ApiKeyProvider = ApiKey.parse("sk-...").provider;
  const verdict = validateApiKeyFormat("sk-...", provider);
  const reason: string | undefined = verdict.reason;
  void reason;

  await loadX509();
  const chain: CertChainInfo = await validateCertChain([bytes, "-----BEGIN CERTIFICATE-----"], bytes, { atTime: new Date(), hostname: "example.com" });
  const expiry: Date = chain.notAfter;
  void expiry;

  const ctx = new SecurityContext({ retainedSessionKeys: 3 });
  ctx.storeApiKey("openai", "sk-...");
  const providers: ApiKeyProvider[] = ctx.listProviders();
  void providers;
  const vault: Uint8Array = ctx.exportVault("passphrase", { logN: 15 });
  await ctx.persist("store");
  await ctx.persist("store", "passphrase");
  const loaded: SecurityContext = await SecurityContext.load("store", "passphrase");
  const loadedInSlices: SecurityContext = await SecurityContext.load("store", "passphrase", { onProgress: (fraction: number) => void fraction, signal: new AbortController().signal });
  void loadedInSlices;
  const unlocked: SecurityContext = SecurityContext.unlock(vault, "passphrase");
  const envelope: Uint8Array = unlocked.encryptForStorage(bytes, null);
  const generation: number = loaded.rotateSessionKey("session");
  void generation;
  const keyId: number = loaded.currentStorageKeyId;
  void keyId;
  const locked: boolean = ctx.locked;
  void locked;
  // @ts-expect-error: provider names are a closed set.
  ctx.hasApiKey("openia");

  const set = new ORSet("agent");
  const delta: Uint8Array = set.add("x");
  set.add(bytes);
  const removed: Uint8Array | undefined = set.remove("x");
  void removed;
  const items: (string | Uint8Array)[] = set.values();
  void items;
  const counter = GCounter.fromBytes(new GCounter(7).toBytes(), "other");
  counter.applyDelta(counter.deltaSince(new GCounter("x").versionVector()));
  const relation: "before" | "after" | "equal" | "concurrent" = compareVersionVectors(counter.versionVector(), counter.versionVector());
  void relation;
  const register = new MVRegister("agent");
  register.set({ any: ["json"] });
  const episodes = new EpisodeMemory("agent");
  episodes.record("e1", "content", ["e0"], Date.now());
  const order: string[] = episodes.ordered();
  void order;
  const dag = new MerkleDag();
  const head: string = dag.append(bytes);
  const batch: Uint8Array = dag.missing([head]);
  const inserted: number = dag.insertNodes(batch);
  void inserted;
  const resolver = new ConflictResolver("majority-vote");
  resolver.setSemanticMerge((values: unknown[]) => values[0]);
  const verdict2 = resolver.resolveClaims("k", [{ value: 1, at: Date.now(), replica: "a" }]);
  const kind: string | undefined = verdict2?.kind;
  void kind;
  // @ts-expect-error: strategies are a closed set.
  new ConflictResolver("coin-flip");
  // @ts-expect-error: items are strings or byte arrays.
  set.add(42);

  using secret = new SecureBuffer(bytes);
  return [delta, envelope, sha256(bytes), blake3(bytes, 64), blake3Keyed(bytes, bytes), blake3DeriveKey("ctx", bytes), hasher.digest(), sealed, derived, seal(bytes, bytes), scrypt("pw", "salt", {}), secret.expose()];
}

/** The embedding service: options, vectors tagged with their model, telemetry, cost. */
export async function embeddingUsage(security: SecurityContext): Promise<number> {
  const service = await EmbeddingService.create(
    {
      providers: [
        { kind: "local", modelUrl: "/models/model.onnx", modelSha256: "00", tokenizerUrl: "/t.json", tokenizerSha256: "00" },
        { kind: "openai", model: "text-embedding-3-small", dimensions: 512, timeoutMs: 10_000 },
        { kind: "nomic", taskType: "search_query" },
      ],
      security,
      cache: 1000,
      retry: { maxAttempts: 3 },
    },
    { onProgress: (p: EmbeddingProgress) => void p.loaded, signal: new AbortController().signal },
  );
  const a: EmbeddingVector = await service.embed("hello");
  const [b]: EmbeddingVector[] = await service.embedBatch(["world"], { signal: AbortSignal.timeout(1000) });
  const model: string = a.model;
  void model;
  const calls: number = service.telemetry()[0].calls;
  const usd: number = service.estimateCost(["x"])[0].usd;
  // @ts-expect-error: providers are local, openai or nomic.
  await EmbeddingService.create({ providers: [{ kind: "llama" }] });
  return cosineSimilarity(a, b) + calls + usd + service.cachedVectors;
}

export async function replication(): Promise<number> {
  const options: SyncNodeOptions = { room: "team", identity: SigningKey.generate(), relayUrl: "ws://127.0.0.1:8787", webrtc: true, flushDelayMs: 20 };
  const node = await SyncNode.join(options);
  const set: ORSet = node.share("notes", new ORSet("agent-1"));
  node.change("notes", set.add("milk"));
  const off = node.on("change", ({ doc, from }) => void (doc.length + from.length));
  off();
  node.on("connection-state", ({ transport, state }) => void (transport satisfies SyncTransport, state));
  const via: SyncTransport[] = node.peers()[0].via;
  const stats = node.stats();
  const dropped: number = stats.dropped + (stats.drops.REPLAYED ?? 0) + stats.transports.webrtc.bytesSent;
  // @ts-expect-error: the identity is a SigningKey.
  await SyncNode.join({ room: "x", identity: "me", relayUrl: "ws://x" });
  // @ts-expect-error: events are change, peer-joined, peer-left, connection-state, peer-banned.
  node.on("message", () => {});
  node.close();
  return dropped + via.length + node.id.length;
}

export async function memory(security: SecurityContext, sync: SyncNode): Promise<number> {
  const embedding = await EmbeddingService.create({ providers: [{ kind: "local" }] });
  const identity: SigningKey = await MemorySystem.loadIdentity({ security, name: "notes" });
  const mem = await MemorySystem.open({ security, embedding, sync, identity, council: { threshold: 1 } });
  const bead = await mem.remember("Alice prefers tea", { kind: "fact", tags: ["alice"] });
  const hits: MemoryHit[] = await mem.recall("what does Alice drink?", { k: 3, filter: { kinds: ["fact"], after: 0 }, ranking: "hybrid" });
  const accepted: boolean = (await mem.approve(bead.id)).accepted;
  mem.on("accepted", ({ bead }) => void bead.content.length);
  mem.on("change", ({ changes }) => void changes.map((c) => c.type satisfies "added" | "removed" | "updated" | "accepted"));
  // @ts-expect-error: rankings are vector, keyword, hybrid and rrf.
  await mem.recall("x", { ranking: "bm25" });
  // @ts-expect-error: events are change and accepted.
  mem.on("remembered", () => {});
  const rejected = mem.stats().rejected.BAD_SIGNATURE ?? 0;
  const decision = await mem.propose({ type: "set-threshold", threshold: 2 });
  await mem.propose({ type: "accept-fact", id: bead.id });
  // @ts-expect-error: a threshold is a number.
  await mem.propose({ type: "set-threshold", threshold: "2" });
  mem.on("agreement", (round: CouncilRound) => void (round.type === "decided" ? round.seq + (round.ms ?? 0) : round.type));
  const council = mem.council();
  const leader: string | undefined = council.agreement?.leader;
  await mem.forget(bead.id);
  await mem.close();
  return hits.length + rejected + Number(accepted) + sync.identity.publicKey().length + decision.seq + council.epoch + (leader?.length ?? 0);
}

export function vectors(): number {
  const index = new VectorIndex(384, { m: 16, efConstruction: 100, efSearch: 64 });
  index.add(7, new Float32Array(384).fill(1));
  index.addMany(Uint32Array.of(8, 9), new Float32Array(768).fill(0.5));
  const { keys, scores } = index.search(new Float32Array(384).fill(1), 2);
  index.efSearch = 128;
  const copy = VectorIndex.fromBytes(index.toBytes());
  // @ts-expect-error: keys are numbers.
  index.add("a", new Float32Array(384));
  return keys[0] + scores[0] + copy.size + index.dims + Number(index.remove(7)) + Number(index.has(8));
}
