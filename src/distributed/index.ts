/** Data-parallel training on PyTorch's c10d: process groups, gradient reducers, data shards, launching ranks. */
export * from './group.js';
export * from './dataparallel.js';
export * from './reducer.js';
export * from './sampler.js';
export * from './launch.js';
