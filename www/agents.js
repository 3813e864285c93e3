// What the demo's agents share wherever they run (the page, app.js; the demo command's Node.js
// agent, scripts/demo-agent.mjs): their room and how an agent's public key is shown.

/** The agents' room. */
export const AGENT_ROOM = "demo-agents";

/** Display names for agents' public keys (hex): the same name for an agent in every tab and process. */
const NAMES = ["Ada", "Basil", "Cleo", "Dex", "Edie", "Finn", "Gia", "Hugo", "Iris", "Jude", "Kai", "Lena", "Milo", "Nova", "Otto", "Pia"];

/** An agent's display name from its public key (hex). */
export const agentName = (key) => `${NAMES[parseInt(key.slice(0, 2), 16) % NAMES.length]}·${key.slice(2, 6)}`;
