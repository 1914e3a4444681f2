/** The agent's version; a unit test keeps it equal to apps/agent/package.json. */
export const AGENT_VERSION = '0.1.0';
