/** Sample-quality evaluation: the project's feature classifier, Fréchet distance and the metrics built on them. */
export * from './frechet.js';
export * from './classifier.js';
export * from './metrics.js';
export * from './evaluate.js';
export * from './rejection.js';
