/**
 * Loads the N-API addon (native/*.cc) and declares its surface. Everything here is low level:
 * user code goes through `Tensor` and the functions in this folder.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** Opaque handle owning one libtorch tensor. */
export interface NativeHandle {
  readonly __nativeTensor: unique symbol;
}

/** Opaque handle owning one libtorch CPU generator (native/generator.cc). */
export interface NativeGeneratorHandle {
  readonly __nativeGenerator: unique symbol;
}

export interface BlasInfo {
  name: string;
  threads?: number;
  config?: string;
}

export interface NativeAddon {
  fromData(bytes: ArrayBufferView | ArrayBuffer, dtype: number, shape: readonly number[]): NativeHandle;
  toData(h: NativeHandle): ArrayBuffer;
  mapData(h: NativeHandle): ArrayBuffer;
  shape(h: NativeHandle): number[];
  dtype(h: NativeHandle): number;
  device(h: NativeHandle): string;
  requiresGrad(h: NativeHandle): boolean;
  setRequiresGrad(h: NativeHandle, value: boolean): void;
  isLeaf(h: NativeHandle): boolean;
  grad(h: NativeHandle): NativeHandle | undefined;
  setGrad(h: NativeHandle, g: NativeHandle | undefined): void;
  backward(outputs: NativeHandle[], grads: (NativeHandle | undefined)[] | undefined, retainGraph: boolean, createGraph: boolean): void;
  autogradGrad(
    outputs: NativeHandle[],
    inputs: NativeHandle[],
    grads: (NativeHandle | undefined)[] | undefined,
    retainGraph: boolean,
    createGraph: boolean,
    allowUnused: boolean,
  ): (NativeHandle | undefined)[];
  item(h: NativeHandle): number | boolean;
  dispose(h: NativeHandle): void;
  setAccounting(on: boolean): void;
  account(h: NativeHandle): void;
  isDisposed(h: NativeHandle): boolean;
  liveTensors(): number;
  sameStorage(a: NativeHandle, b: NativeHandle): boolean;
  setData(h: NativeHandle, src: NativeHandle): void;
  getRngState(): NativeHandle;
  setRngState(state: NativeHandle): void;
  opHandle(name: string, overload: string): number;
  opSchema(id: number): string;
  callOp(id: number, ...args: unknown[]): unknown;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  blasInfo(): BlasInfo;
  setBlasThreads(n: number): boolean;
  manualSeed(seed: number): void;
  newGenerator(seed: bigint): NativeGeneratorHandle;
  setGradEnabled(enabled: boolean): void;
  isGradEnabled(): boolean;
  setAutocast(device: 'cpu' | 'cuda', enabled: boolean, dtype: number, entering: boolean): boolean;
  cudaDeviceCount(): number;
  config(): string;
  /** c10d backends this build has (empty when it was built without c10d). */
  c10dBackends: string[];
  createGroup?(o: { rank: number; worldSize: number; host: string; port: number; timeoutMs: number; backend: string }): NativeGroup;
  allReduce?(g: NativeGroup, tensors: NativeHandle[], op: 'sum' | 'mean' | 'max' | 'min'): void;
  broadcast?(g: NativeGroup, tensors: NativeHandle[], root: number): void;
  barrier?(g: NativeGroup): void;
  destroyGroup?(g: NativeGroup): void;
  createReducer?(g: NativeGroup, params: NativeHandle[], names: string[], o: { bucketBytes: number; firstBucketBytes: number; findUnusedParameters: boolean }): NativeReducer;
  reducerBackward?(r: NativeReducer, loss: NativeHandle, sync: boolean): void;
  reducerInfo?(r: NativeReducer): NativeReducerInfo;
  disposeReducer?(r: NativeReducer): void;
}

/** Opaque handle of a c10d::Reducer. */
export interface NativeReducer {
  readonly __nativeReducer: unique symbol;
}

/** A reducer's buckets (in reduction order) and its last synced backward's timeline (ns since prepare_for_backward). */
export interface NativeReducerInfo {
  buckets: { bytes: number; params: number[] }[];
  timeline?: { commStart: number; computeEnd: number; commEnd: number; gradReady: number[] };
}

/** Opaque handle of one process's membership of a c10d process group. */
export interface NativeGroup {
  readonly __nativeGroup: unique symbol;
}

function repoRoot(): string {
  // dist/src/torch/native.js or src/torch/native.ts: the repository is three or two levels up.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('imagebart: cannot find the package root (binding.gyp) above ' + fileURLToPath(import.meta.url));
}

/**
 * Thread-pool waiting, read by OpenMP and OpenBLAS when libtorch loads, so set before that:
 * idle threads of each pool otherwise spin for milliseconds (OpenBLAS: up to 2^28 cycles)
 * on cores the other pool needs. A user's own settings win.
 */
function politeThreadPools(): void {
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';
}

function load(): NativeAddon {
  politeThreadPools();
  const path = process.env.IMAGEBART_NATIVE ?? join(repoRoot(), 'build', 'Release', 'imagebart_native.node');
  if (!existsSync(path)) {
    throw new Error(`imagebart: the native libtorch binding is not built (${path} is missing). Run \`npm run setup\`.`);
  }
  const require = createRequire(import.meta.url);
  try {
    return require(path) as NativeAddon;
  } catch (e) {
    throw new Error(`imagebart: cannot load the native binding ${path}: ${(e as Error).message}. Run \`npm run setup\` to rebuild it.`);
  }
}

export const native: NativeAddon = load();
