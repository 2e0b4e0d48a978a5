/** The tensor engine: libtorch through imagebart's own N-API binding. */
export { Tensor, sameStorage, setDeviceCheck, type Operand, type Device } from './tensor.js';
export { type DType, isFloating, isDType } from './dtype.js';
export * from './create.js';
export * from './functional.js';
export * from './autograd.js';
export * from './runtime.js';
export { Generator, withGenerator, mix64, streamSeed } from './random.js';
export { tidy, scopeDepth } from './scope.js';
export * from './safetensors.js';
export { native } from './native.js';
export { gradcheck, type GradcheckResult } from './gradcheck.js';
