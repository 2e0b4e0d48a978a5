/** The reverse chain: one transformer per scale, trained independently; likelihoods; checkpoints and manifests. */
export * from './layers.js';
export * from './xtransformer.js';
export * from './gpt.js';
export * from './denoiser.js';
export * from './tokens.js';
export * from './checkpoint.js';
export * from './nll.js';
export * from './trainer.js';
export * from './manifest.js';
export * from './conditioning.js';
export * from './card.js';
