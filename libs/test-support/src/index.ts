export * from './link-local.js';
export * from './redis-prefix.js';
