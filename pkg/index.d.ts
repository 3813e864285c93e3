export * from "./chrysalis_wasm.js";
export { default } from "./chrysalis_wasm.js";
import type { InitInput } from "./chrysalis_wasm.js";
import type { CertChainInfo, CertChainOptions, CertificateInput } from "./chrysalis_x509.js";

import type {
  EmbedOptions,
  EmbeddingService as EmbeddingServiceClass,
  EmbeddingVector,
  EmbeddingServiceOptions,
} from "./chrysalis_embedding.js";

export type { CertChainInfo, CertChainOptions, CertificateInput };
export type {
  ApiKeyFetcher,
  EmbedOptions,
  EmbeddingCostEstimate,
  EmbeddingProgress,
  EmbeddingProviderOptions,
  EmbeddingServiceOptions,
  EmbeddingVector,
  LocalProviderOptions,
  ProviderTelemetry,
  RemoteProviderOptions,
  RetryOptions,
} from "./chrysalis_embedding.js";

/** Options for {@link initializeChrysalis}. */
export interface InitializeOptions {
  /** Where to load the core module from; defaults to `chrysalis_wasm_bg.wasm` next to the package entry (in Node.js read from there, in a page fetched). */
  moduleOrPath?: InitInput | Promise<InitInput>;
  /** Also load the certificate module now instead of on first use. */
  x509?: boolean;
  /** Where to load the certificate module from (default: next to the package entry); implies `x509`. */
  x509ModuleOrPath?: InitInput | Promise<InitInput>;
}

/** What {@link initializeChrysalis} resolves to once the SDK is ready. */
export interface ChrysalisInfo {
  /** The SDK version, e.g. `"0.1.0"`. */
  version: string;
}

/** Loads the core wasm module once; later calls return the same promise. */
export function initializeChrysalis(options?: InitializeOptions): Promise<ChrysalisInfo>;

/** Loads the certificate module (`chrysalis_x509_bg.wasm`) once and resolves to its bindings. */
export function loadX509(moduleOrPath?: InitInput | Promise<InitInput>): Promise<typeof import("./chrysalis_x509.js")>;

/**
 * Validates `chain` (leaf first, then intermediates) up to one of `trustAnchors`: signatures
 * (Ed25519, ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS with SHA-256/384), validity windows,
 * CA basic constraints, key usage, path length, issuer/subject chaining and, with `hostname`,
 * the leaf's subjectAltName. Loads the certificate module on first use.
 *
 * Rejects with an `Error` whose `code` names the failure (`CERT_EXPIRED`, `CERT_BAD_SIGNATURE`,
 * `CERT_ISSUER_MISMATCH`, `CERT_NOT_CA`, `CERT_HOSTNAME_MISMATCH`, `CERT_UNTRUSTED`, …) and whose
 * `index` is the failing certificate (0 = leaf).
 */
export function validateCertChain(
  chain: CertificateInput,
  trustAnchors: CertificateInput,
  options?: CertChainOptions,
): Promise<CertChainInfo>;

/** Loads the embedding module (`chrysalis_embedding_bg.wasm`: tract and the tokenizer) once and resolves to its bindings; by default from next to the package entry (compiled in a worker in a page, read from disk in Node.js). */
export function loadEmbedding(moduleOrPath?: InitInput | Promise<InitInput>): Promise<typeof import("./chrysalis_embedding.js")>;

/** An embedding service (see `EmbeddingServiceClass` in `chrysalis_embedding.d.ts`). */
export type EmbeddingService = EmbeddingServiceClass;

/**
 * Sentence embeddings from the in-page model (all-MiniLM-L6-v2 run by tract), OpenAI or Nomic,
 * tried in order, with retries, batching, an LRU cache and telemetry. `create` loads the
 * embedding module on first use, then downloads (with progress, Cache Storage and SHA-256 pins)
 * and loads the local model if one is configured.
 */
export declare const EmbeddingService: {
  create(options: EmbeddingServiceOptions, progress?: EmbedOptions): Promise<EmbeddingServiceClass>;
};

import type {
  CouncilEventDetail,
  CouncilInfo,
  CouncilMotion,
  MemoryAcceptance,
  MemoryBead,
  MemoryChange,
  MemoryStats,
  StorageWrite,
  StoredMemory,
  MemoryHit,
  MemoryRecallOptions,
  SecurityContext,
  SigningKey,
  RoomStats,
  RoomTransport,
  SyncDocument,
  SyncOptions,
  SyncPeerInfo,
} from "./chrysalis_wasm.js";

/** How a {@link SyncNode} joins its room. Give a `relayUrl`, `broadcastChannel: true`, or both. */
export interface SyncNodeOptions extends SyncOptions {
  /** The room: peers replicate with the peers of the same room (1 to 128 characters). */
  room: string;
  /** The Ed25519 identity that signs every frame and answers the relay's challenge. */
  identity: SigningKey;
  /** A Chrysalis relay (`ws://…` or `wss://…`): presence, forwarding and WebRTC signalling. Several relays of one deployment (at most 16): the node starts at one drawn at random and moves to the next, with the same backoff, whenever its connection closes. */
  relayUrl?: string | string[];
  /** A capability (hex, from `issueCapability` or `chrysalis-relay capability issue`) for rooms whose relays require one. */
  capability?: string;
  /** Open WebRTC data channels to the relay's peers and prefer them (needs `relayUrl`). */
  webrtc?: boolean;
  /** Replicate with other tabs of this origin over a BroadcastChannel (no server needed). */
  broadcastChannel?: boolean;
  /** The WebSocket class for the relay (default `globalThis.WebSocket`; in Node.js 20, the `ws` package's). */
  WebSocket?: new (url: string) => WebSocket;
}

/** Transports a peer is reachable over. */
export type SyncTransport = RoomTransport;

/** The events of a {@link SyncNode} and their `detail`. */
export interface SyncNodeEvents {
  /** A shared CRDT took in a peer's change. */
  change: { doc: string; from: string };
  /** A peer became reachable (over `via`, its first transport). */
  "peer-joined": { peer: string; via: SyncTransport };
  /** A peer is no longer reachable over any transport. */
  "peer-left": { peer: string; via: SyncTransport };
  /** A transport changed state (`connecting`, `open`, `reconnecting`, `closed`, `error`). */
  "connection-state": { transport: SyncTransport; state: string; peer?: string; code?: string; message?: string };
  /** A peer misbehaved until banned; its frames are dropped. */
  "peer-banned": { peer: string; reason: string };
  /** A memory hosted by this node changed (a local change once its write completed). */
  "memory-change": { memory: string; change: MemoryChange };
  /** A local change of a hosted memory is durable and went to the peers. */
  saved: { memory: string; write: number };
  /** A hosted memory's council agreement did something. */
  council: { memory: string; round: CouncilEventDetail };
  /** A hosted memory's storage failed a write: nothing after it is acknowledged or written, and its local changes throw `STORAGE_FAILED` until it is reopened. */
  "storage-error": { memory: string; code: string; message: string };
}

/**
 * A replica of named CRDTs kept in sync with the other peers of a room: over a relay, WebRTC
 * data channels and a BroadcastChannel at once. Every frame is signed by `identity`; forged,
 * replayed or oversized frames are dropped and counted, and misbehaving peers are banned.
 */
export declare class SyncNode extends EventTarget {
  /** Joins `options.room` over the transports asked for. */
  static join(options: SyncNodeOptions): Promise<SyncNode>;
  private constructor(options: SyncNodeOptions);
  /** The room this node joined. */
  readonly room: string;
  /** This node's peer id (hex of its identity's public key). */
  readonly id: string;
  /** The key this node signs with. */
  readonly identity: SigningKey;
  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof SyncNodeEvents>(type: K, handler: (detail: SyncNodeEvents[K]) => void): () => void;
  /** Replicates `crdt` under `name`; returns it. */
  share<T extends SyncDocument>(name: string, crdt: T): T;
  /** Stops replicating `name`; returns whether it was shared. */
  unshare(name: string): boolean;
  /** Pushes the delta a mutator of the shared CRDT `name` returned. */
  change(name: string, delta: Uint8Array): void;
  /** The capability presented from the next relay connection on (a fresh one before the current expires: the relay closes a session whose capability expired). */
  setCapability(capability: string | null): void;
  /** The connected peers and the transports that reach them. */
  peers(): (SyncPeerInfo & { via: SyncTransport[] })[];
  /** Protocol counters plus per-transport traffic and connection states. */
  stats(): RoomStats;
  /** Resolves once every storage write of the hosted memories asked for so far is done. */
  flushed(): Promise<void>;
  /** Leaves the room and closes every transport. */
  close(): void;
  [Symbol.dispose](): void;
}

/** Where a memory keeps what its engine writes (IndexedDB by default in a page). */
export interface MemoryStorage {
  /** What earlier writes left: the last snapshot, the journal since, the council log. */
  load(): StoredMemory | Promise<StoredMemory>;
  /** Makes one write durable (in the order given; a journal append or a snapshot that clears the journal is one transaction). */
  write(write: StorageWrite): void | Promise<void>;
  /** Called when the memory closes, and when an `open` with this storage is refused. */
  close?(): void;
}

/** How {@link MemorySystem.open} opens a memory. */
export interface MemorySystemOptions {
  /** Encrypts what is persisted (required unless `persist: false`). */
  security?: SecurityContext;
  /** Embeds remembered text and queries (without it, recall is by keywords only). */
  embedding?: { embed(text: string): Promise<EmbeddingVector> };
  /** Replicates the memory with the room's other agents. */
  sync?: SyncNode;
  /** The agent's key (default: the sync node's, else {@link MemorySystem.loadIdentity}). */
  identity?: SigningKey;
  /** The document shared with the room (default "memory"). */
  name?: string;
  /** The IndexedDB database (default `name`): one per agent when several share a browser. */
  database?: string;
  /** The founding council: who may accept beads and how many approvals it takes (default: this agent, 1). Every member opens with the same one. */
  council?: { members?: string[]; threshold?: number };
  /** Timing of the council's agreement (members only). */
  agreement?: { viewTimeoutMs?: number; retransmitMs?: number };
  /** HNSW parameters of the local index. */
  hnsw?: { m?: number; efConstruction?: number; efSearch?: number };
  /** Where to keep it instead of IndexedDB (say a file or database adapter in Node.js). */
  storage?: MemoryStorage;
  /** Keep everything in IndexedDB (default true). */
  persist?: boolean;
  /** Journal entries after which the snapshot is rewritten (default 200). */
  compactEvery?: number;
}

/** The events of a {@link MemorySystem} and their `detail`. */
export interface MemorySystemEvents {
  change: { changes: MemoryChange[] };
  accepted: { id: string; bead: MemoryBead };
  /** The council's agreement rounds. */
  agreement: CouncilRound;
  /** The memory's storage failed a write: waiting changes and motions reject with `STORAGE_FAILED`, and so do later ones until it is reopened. */
  "storage-error": { memory: string; code: string; message: string };
}

/** One step of the council's agreement, as {@link MemorySystem} reports it. */
export type CouncilRound =
  | { type: "proposed" | "endorsed"; id: string; motion: CouncilMotion }
  /** Another member asked for a motion; `endorse(id)` adds this agent's request. */
  | { type: "requested"; id: string; motion: CouncilMotion; by: string }
  | {
      type: "decided";
      /** The agreement slot. */
      seq: number;
      /** The view it was decided in. */
      view: number;
      /** The motion (null for another member's motion that the council refused). */
      motion: CouncilMotion | null;
      /** Whether this agent proposed or endorsed it. */
      mine: boolean;
      /** The members whose requests endorsed it (public keys). */
      endorsers: string[];
      /** Proposal to decision here, for this agent's motions. */
      ms?: number;
      /** Why every member refused it, if they did. */
      refused?: { code: string; message: string };
    }
  | { type: "view-changed"; view: number; leader: string };

/** What {@link MemorySystem.propose} resolves with. */
export interface CouncilDecision {
  seq: number;
  view: number;
  motion: CouncilMotion;
  ms: number;
}

/** An agent's memory in a page: remember, recall, forget, approve; replicated and persisted. */
export declare class MemorySystem extends EventTarget {
  /** The agent identity stored for memory `name`, created on first use (seed encrypted in IndexedDB). */
  static loadIdentity(options: { security: SecurityContext; name?: string; database?: string }): Promise<SigningKey>;
  /** Opens a memory: loads IndexedDB, joins the sync node's replication. */
  static open(options: MemorySystemOptions): Promise<MemorySystem>;
  private constructor();
  /** This agent's short printable id. */
  readonly agentId: string;
  /** This agent's public key, hex. */
  readonly publicKey: string;
  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof MemorySystemEvents>(type: K, handler: (detail: MemorySystemEvents[K]) => void): () => void;
  /** Remembers `text`; resolves with the bead once it is durable. */
  remember(text: string, options?: { kind?: string; tags?: string[] }): Promise<MemoryBead>;
  /** The best beads for `query`, best first. `hybrid: false` ranks by meaning only. */
  recall(query: string, options?: MemoryRecallOptions & { hybrid?: boolean }): Promise<MemoryHit[]>;
  /** Forgets a bead this agent wrote, everywhere and for good; resolves with whether it was here (rejects with `NOT_AUTHOR` for another agent's bead). */
  forget(id: string): Promise<boolean>;
  /** Signs this agent's approval; resolves with the bead's acceptance. */
  approve(id: string): Promise<MemoryAcceptance>;
  /** Whether the council accepted a bead. */
  acceptance(id: string): MemoryAcceptance;
  /** A bead by id. */
  bead(id: string): MemoryBead | undefined;
  /** Every bead. */
  beads(): MemoryBead[];
  /** Proposes a council motion (`set-threshold` or `accept-fact`); resolves once decided and applied here. */
  propose(motion: CouncilMotion): Promise<CouncilDecision>;
  /** Endorses another member's pending motion (the `id` of a `"requested"` round); resolves once decided and applied here. */
  endorse(id: string): Promise<CouncilDecision>;
  /** The council and its agreement. */
  council(): CouncilInfo;
  /** Engine counters plus the journal's length. */
  stats(): MemoryStats;
  /** Waits for pending writes, stops replicating and closes the database. */
  close(): Promise<void>;
}

import type { ApiKeyProvider, ExportVaultOptions } from "./chrysalis_wasm.js";

/** Options of `SecurityContext.isolated`: an exported vault, one persisted in IndexedDB, or neither (a new vault). */
export interface IsolatedVaultOptions {
  /** A vault made by `exportVault`, with its passphrase. */
  vault?: Uint8Array;
  /** The vault persisted in this IndexedDB store (by `persist`), with its passphrase. */
  store?: string;
  /** Opens the vault; the only passphrase `exportVault` and `persist` ever seal it under. */
  passphrase?: string;
  /** Origins each provider's key may also go to (besides its public API), fixed from then on. */
  origins?: Partial<Record<ApiKeyProvider, string[]>>;
}

/**
 * A `SecurityContext` in a worker realm of its own: its keys and the authorized request never
 * enter the page's realm, so a script of the page that reads the page's wasm memories or patches
 * `fetch`, `Headers` or `Request` after the import finds no key. Every call returns a promise;
 * there is no `getApiKey`, no `allowApiOrigin` (origins are fixed at `open`), and the vault is
 * only ever sealed under the passphrase it was opened with. `EmbeddingService` and `MemorySystem`
 * take it as `security`.
 */
export declare class IsolatedSecurityContext {
  /** Starts the worker and opens its vault. */
  static open(options?: IsolatedVaultOptions): Promise<IsolatedSecurityContext>;
  storeApiKey(provider: ApiKeyProvider, key: string): Promise<void>;
  hasApiKey(provider: ApiKeyProvider): Promise<boolean>;
  removeApiKey(provider: ApiKeyProvider): Promise<boolean>;
  listProviders(): Promise<ApiKeyProvider[]>;
  redactedApiKey(provider: ApiKeyProvider): Promise<string>;
  /** The vault sealed under the passphrase it was opened with. */
  exportVault(options?: ExportVaultOptions): Promise<Uint8Array>;
  /** Persists the vault, sealed under the passphrase it was opened with, in IndexedDB store `store`. */
  persist(store: string): Promise<void>;
  encryptForStorage(plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
  decryptFromStorage(envelope: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
  /** `fetch` made in the worker with the provider's key; `init` may hold `method`, plain-object `headers`, a string `body` and a `signal`. */
  authorizedFetch(provider: ApiKeyProvider, url: string | URL, init?: RequestInit): Promise<Response>;
  /** Stops the worker (its keys go with it). */
  close(): void;
}

declare module "./chrysalis_wasm.js" {
  namespace SecurityContext {
    /** A vault in a worker realm of its own (see `IsolatedSecurityContext`). */
    function isolated(options?: IsolatedVaultOptions): Promise<IsolatedSecurityContext>;
  }
}
