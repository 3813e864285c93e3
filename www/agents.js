// What the demo's agents share wherever they run (the page, app.js; the demo command's Node.js
// agent, scripts/demo-agent.mjs): their room and how an agent's public key is shown.

/** The agents' room. */
export const AGENT_ROOM = "demo-agents";

/** The pins of the agents' sentence model files (all-MiniLM-L6-v2, int8; scripts/lib.sh). */
export const MODEL_SHA256 = {
  model: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
  tokenizer: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
};

/** Display names for agents' public keys (hex): the same name for an agent in every tab and process. */
const NAMES = ["Ada", "Basil", "Cleo", "Dex", "Edie", "Finn", "Gia", "Hugo", "Iris", "Jude", "Kai", "Lena", "Milo", "Nova", "Otto", "Pia"];

/** An agent's display name from its public key (hex). */
export const agentName = (key) => `${NAMES[parseInt(key.slice(0, 2), 16) % NAMES.length]}·${key.slice(2, 6)}`;

/** The most members a founding council an agent adopts may have. */
const MAX_MEMBERS = 64;

/**
 * A founding council as written in the room's shared register (any peer of the room can write
 * it), or null unless it is one an agent (public key `self`, hex) takes: 2 to MAX_MEMBERS
 * distinct public keys (64 hex digits) naming it, and at least two approvals (no single key
 * accepts beads alone; a peer holding two keys still can). Returned in one canonical form
 * (sorted members), the only form compared or stored: the value as written is never
 * re-serialised (a JSON nested deep enough parses but overflows the stack of `JSON.stringify`).
 */
export function councilFrom(value, self) {
  const { members, threshold } = value ?? {};
  if (!Array.isArray(members) || members.length < 2 || members.length > MAX_MEMBERS || !Number.isSafeInteger(threshold)) return null;
  if (!members.every((m) => typeof m === "string" && /^[0-9a-f]{64}$/.test(m)) || new Set(members).size !== members.length) return null;
  if (!members.includes(self) || threshold < 2 || threshold > members.length) return null;
  return { members: [...members].sort(), threshold };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Follows the founding council for agent `self`: returns `want(value)`, which takes a council as
 * written (checked by `councilFrom`; anything else is ignored). Councils are adopted one at a
 * time, the latest wanted first, at most one a second after the first (a burst of writes costs
 * one reopen): `reopen(council)` opens the agent's memory under it (and stores it) and
 * `reopen(current)` puts the council it had back when that fails; `onRefused(error)` hears of
 * it, and the refused council is not tried again until another is wanted.
 */
export function followCouncil(self, current, { reopen, onRefused }) {
  let wanted = null;
  let refused = null;
  let running = null;
  const run = async () => {
    while (wanted && !same(wanted, current) && !same(wanted, refused)) {
      const next = wanted;
      try {
        await reopen(next);
        current = next;
      } catch (error) {
        refused = next;
        onRefused(error);
        await reopen(current).catch(onRefused);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  return (value) => {
    const council = councilFrom(value, self);
    if (!council) return;
    wanted = council;
    if (!same(council, refused)) refused = null;
    running ??= run().finally(() => (running = null));
  };
}
