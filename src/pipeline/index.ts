/** The library API that the command line and the server share: load a model once, serve sample and edit requests. */
export * from './seeds.js';
export * from './model.js';
