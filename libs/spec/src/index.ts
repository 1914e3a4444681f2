export * from './errors.js';
export * from './labels.js';
export * from './facts.js';
export * from './desired-state.js';
export * from './jobs.js';
export * from './sections/files.js';
export * from './sections/ip.js';
export * from './sections/network.js';
