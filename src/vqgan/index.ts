/** The first stage: a taming-faithful VQGAN, its training, codebook shrinking and token files. */
export * from './config.js';
export * from './blocks.js';
export { Encoder } from './encoder.js';
export { Decoder } from './decoder.js';
export * from './quantizer.js';
export * from './model.js';
export * from './discriminator.js';
export * from './perceptual.js';
export * from './loss.js';
export * from './metrics.js';
export * from './trainer.js';
export * from './shrink.js';
export * from './tokens.js';
