export * from './adamw.js';
export * from './utils.js';
