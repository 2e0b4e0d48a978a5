/** Data-parallel training on PyTorch's c10d: process groups, gradient buckets, data shards, launching ranks. */
export * from './group.js';
export * from './dataparallel.js';
export * from './sampler.js';
export * from './launch.js';
