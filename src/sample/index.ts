/** Sampling and editing with the trained chain: the sampler, KV-cached decoding, masked editing, sliding windows. */
export * from './filter.js';
export * from './decoder.js';
export * from './window.js';
export * from './sampler.js';
export * from './mask.js';
export * from './stage.js';
export * from './edit.js';
export * from './segmentation.js';
