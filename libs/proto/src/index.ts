export * from './gen/ibex/agent/v1/agent.js';
