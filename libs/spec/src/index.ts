export * from './errors.js';
export * from './labels.js';
export * from './facts.js';
export * from './desired-state.js';
export * from './jobs.js';
export * from './generations-inventory.js';
export * from './generations-jobs.js';
export * from './sections/files.js';
