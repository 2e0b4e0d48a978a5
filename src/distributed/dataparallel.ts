/**
 * Data parallelism over a process group, as torch's DistributedDataParallel does it: every rank
 * holds the whole model, starts from rank 0's parameters, computes gradients on its own shard of
 * the batch, and before each optimiser step the gradients are averaged over the ranks,
 *
 *   g ← (1/W) Σ_r g_r,
 *
 * so that with equal shards and a batch-mean loss every rank takes the step one process would take
 * on the whole batch, and the ranks' weights (and EMAs) stay identical.
 *
 * A trainer asks for a GradientSync over its parameters and runs its backward passes through it.
 * By default that is c10d::Reducer (reducer.ts): buckets all-reduced while the backward pass is
 * still running. With `overlap: false` it is the after-backward baseline that bench:distributed
 * compares against: a plain backward, then the gradients flattened into buckets of about
 * `bucketBytes`, all buckets all-reduced at once (the backend runs them concurrently) and copied back.
 */
import { type Tensor, cat, noGrad, tidy, zerosLike, tensor } from '../torch/index.js';
import type { Module } from '../nn/module.js';
import { ProcessGroup, launchEnv, type Backend } from './group.js';
import { DEFAULT_BUCKET_BYTES, Reducer, type GradientSync, type ReducerOptions } from './reducer.js';

const BYTES: Record<string, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4 };

/** Consecutive tensors of one dtype, up to about `cap` bytes each (a tensor larger than cap gets its own). */
export function buckets(tensors: readonly Tensor[], cap = DEFAULT_BUCKET_BYTES): Tensor[][] {
  const out: Tensor[][] = [];
  let cur: Tensor[] = [], bytes = 0;
  for (const t of tensors) {
    const b = t.numel * (BYTES[t.dtype] ?? 4);
    if (cur.length > 0 && (bytes + b > cap || cur[0]!.dtype !== t.dtype)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(t);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export interface DataParallelOptions extends Pick<ReducerOptions, 'bucketBytes' | 'firstBucketBytes'> {
  /** All-reduce during the backward pass with c10d::Reducer (default), or after it (false: the baseline). */
  overlap?: boolean;
}

export class DataParallel {
  constructor(readonly group: ProcessGroup, readonly o: DataParallelOptions = {}) {}

  get rank(): number { return this.group.rank; }
  get worldSize(): number { return this.group.worldSize; }
  get isMain(): boolean { return this.group.isMain; }

  /** Overwrites every rank's parameters and buffers with rank 0's. */
  broadcastModule(...modules: Module[]): void {
    const ts = modules.flatMap((m) => [...m.parameters(), ...m.namedBuffers().map(([, b]) => b)]);
    this.broadcastTensors(ts);
  }

  /** Overwrites each tensor with rank 0's, in buckets. */
  broadcastTensors(ts: readonly Tensor[]): void {
    noGrad(() => tidy(() => this.throughBuckets(ts, (flat) => this.group.broadcast(flat, 0))));
  }

  /**
   * The backward passes of these parameters' losses, gradients averaged over the ranks: a Reducer
   * (owned by the caller, who disposes it) or, with `overlap: false`, the after-backward baseline.
   * Every rank calls it at the same point (the Reducer checks the ranks' parameter shapes).
   */
  gradientSync(named: readonly (readonly [string, Tensor])[], o: { findUnusedParameters?: boolean } = {}): GradientSync {
    if (this.o.overlap ?? true) return new Reducer(this.group, named, { bucketBytes: this.o.bucketBytes, firstBucketBytes: this.o.firstBucketBytes, findUnusedParameters: o.findUnusedParameters });
    return new AfterBackward(this, named.map(([, p]) => p));
  }

  /**
   * Averages the parameters' gradients over the ranks, in place, after the backward pass; returns
   * the bytes all-reduced. Which parameters have a gradient is agreed first (one small all-reduce):
   * one that no rank's loss reached keeps none, as in a single process; one that only some ranks'
   * losses reached gets a zero gradient on the others.
   */
  syncGradients(params: readonly Tensor[]): number {
    if (this.worldSize === 1) return 0;
    return noGrad(() => tidy(() => {
      const has = tensor(Float32Array.from(params, (p) => (p.grad ? 1 : 0)));
      this.group.allReduce([has], 'max');
      const used = has.toArray();
      const grads: Tensor[] = [];
      params.forEach((p, i) => {
        if (!used[i]) return;
        if (!p.grad) p.grad = zerosLike(p);
        grads.push(p.grad!);
      });
      return this.throughBuckets(grads, (flat) => this.group.allReduce(flat, 'mean'));
    }));
  }

  /**
   * Checks that every rank is at the same step (resumed from the same checkpoint); throws, naming
   * the steps, otherwise.
   */
  checkSameStep(step: number): void {
    tidy(() => {
      const lo = tensor([step], { dtype: 'float64' }), hi = tensor([step], { dtype: 'float64' });
      this.group.allReduce([lo], 'min');
      this.group.allReduce([hi], 'max');
      const [a, b] = [lo.item(), hi.item()];
      if (a !== b) {
        throw new Error(`rank ${this.rank} is at step ${step}, but the ranks range over steps ${a}..${b}: every rank must resume from the same checkpoint ` +
          '(a run directory every host sees, or a copy of rank 0\'s checkpoint on each)');
      }
    });
  }

  /** Flattens tensors into bucket buffers, lets `exchange` change the buffers in place, copies them back; returns bytes exchanged. */
  private throughBuckets(ts: readonly Tensor[], exchange: (flat: Tensor[]) => void): number {
    const groups = buckets(ts, this.o.bucketBytes ?? DEFAULT_BUCKET_BYTES);
    const flats = groups.map((g) => cat(g.map((t) => t.reshape(-1))));
    exchange(flats);
    groups.forEach((g, i) => {
      let off = 0;
      for (const t of g) {
        t.copy_(flats[i]!.narrow(0, off, t.numel).view(...t.shape));
        off += t.numel;
      }
    });
    return flats.reduce((s, f) => s + f.numel * (BYTES[f.dtype] ?? 4), 0);
  }
}

/** The after-backward baseline: a plain backward, then DataParallel.syncGradients on a synced one. */
class AfterBackward implements GradientSync {
  bytesPerStep = 0;

  constructor(private readonly dp: DataParallel, private readonly params: readonly Tensor[]) {}

  backward(loss: Tensor, o: { sync?: boolean } = {}): void {
    loss.backward();
    if (o.sync ?? true) this.bytesPerStep = this.dp.syncGradients(this.params);
  }

  dispose(): void {}
}

/**
 * This process's data-parallel context when torchrun's environment names a world of more than one
 * rank (joining the group: returns once every rank has); undefined when it runs alone.
 */
export function dataParallelFromEnv(o: DataParallelOptions & { timeoutMs?: number; backend?: Backend } = {}, env: NodeJS.ProcessEnv = process.env): DataParallel | undefined {
  const e = launchEnv(env);
  if (!e || e.worldSize === 1) return undefined;
  return new DataParallel(new ProcessGroup({ ...e, timeoutMs: o.timeoutMs, backend: o.backend }), { bucketBytes: o.bucketBytes, firstBucketBytes: o.firstBucketBytes, overlap: o.overlap });
}
