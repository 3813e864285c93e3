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
