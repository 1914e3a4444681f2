export * from './parse.js';
export * from './render.js';
