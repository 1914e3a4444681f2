export * from './database.js';
export * from './free-port.js';
export * from './migrations.js';
export * from './test-database.js';
