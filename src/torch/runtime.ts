/**
 * Process-wide settings: threads, seeding, devices and autocast.
 *
 * Threads: Debian's libtorch runs matrix products on OpenBLAS's thread pool and convolutions and
 * elementwise kernels on ATen's OpenMP pool. With both pools spinning while idle they fight over
 * the cores (a transformer step ≈2× slower with 2+2 threads on 2 cores); the binding makes idle
 * threads wait passively (native.ts), and then all cores for both pools is the best split that
 * bench/engine measures, for transformers and convolutions alike. Override with
 * IMAGEBART_THREADS / IMAGEBART_BLAS_THREADS or setThreads().
 */
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { type DType, dtypeCode } from './dtype.js';
import { Tensor } from './tensor.js';

export interface ThreadSplit {
  /** ATen intra-op (OpenMP) threads: convolutions, elementwise, reductions. */
  intraOp: number;
  /** BLAS threads: matmul, linear. */
  blas: number;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
}

export function defaultThreadSplit(): ThreadSplit {
  const cores = availableParallelism();
  return { intraOp: envInt('IMAGEBART_THREADS') ?? cores, blas: envInt('IMAGEBART_BLAS_THREADS') ?? cores };
}

export function setThreads(split: Partial<ThreadSplit>): void {
  if (split.intraOp !== undefined) native.setNumThreads(split.intraOp);
  if (split.blas !== undefined) native.setBlasThreads(split.blas);
}

export function getThreads(): ThreadSplit & { blasLibrary: string } {
  const b = native.blasInfo();
  return { intraOp: native.getNumThreads(), blas: b.threads ?? 0, blasLibrary: b.name };
}

setThreads(defaultThreadSplit());

/** Seeds libtorch's global generators (CPU and CUDA). */
export const manualSeed = (seed: number): void => native.manualSeed(seed);
/** The CPU generator's state (a uint8 tensor): save it in a checkpoint to resume a random stream exactly. */
export const getRngState = (): Tensor => new Tensor(native.getRngState());
export const setRngState = (state: Tensor): void => native.setRngState(state.h);

export const cudaAvailable = (): boolean => native.cudaDeviceCount() > 0;
export const cudaDeviceCount = (): number => native.cudaDeviceCount();
/** 'cuda' when libtorch was built with CUDA and a GPU is visible, else 'cpu'. */
export const defaultDevice = (): string => (cudaAvailable() ? 'cuda' : 'cpu');

/** libtorch's build configuration and parallel settings, for bug reports. */
export const buildInfo = (): string => native.config();

/**
 * Runs fn with mixed precision on `device` (PyTorch's torch.autocast): matmuls and convs run
 * in `dtype` (bfloat16 by default; float16 on CUDA if asked), reductions stay in float32.
 * `enabled: false` runs fn at full precision even inside an enclosing autocast, as in PyTorch.
 */
export function autocast<T>(fn: () => T, o: { device?: 'cpu' | 'cuda'; dtype?: DType; enabled?: boolean } = {}): T {
  const device = o.device ?? 'cpu';
  const dtype = dtypeCode(o.dtype ?? 'bfloat16');
  const prev = native.setAutocast(device, o.enabled !== false, dtype, true);
  try {
    return fn();
  } finally {
    native.setAutocast(device, prev, dtype, false);
  }
}
