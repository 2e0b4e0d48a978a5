/**
 * Which examples each rank trains on at each step (torch's DistributedSampler, as a function of the
 * step so that a resumed run sees the batches it would have seen).
 *
 * Epoch e is one permutation π_e of the n examples, seeded by seed + e and the same on every rank.
 * A step consumes W·A·B examples (W ranks, A accumulated micro-batches of B each); micro-batch m of
 * rank r at step i of the epoch takes π_e[((i·A + m)·W + r)·B …+B). The ranks' shards are disjoint
 * and together cover the epoch but for its last n mod (W·A·B) examples; with W = A = 1 this is the
 * plain shuffled batching of one process. Rank r's micro-batches of a step, put side by side over r,
 * are the batch one process with batch size W·B would draw.
 */
import { permutation } from '../data/dataset.js';

export interface ShardOptions {
  /** Examples in the epoch. */
  n: number;
  /** Examples per rank per micro-batch. */
  batchSize: number;
  seed: number;
  rank?: number;
  worldSize?: number;
  /** Micro-batches per optimiser step (gradient accumulation; default 1). */
  accumulate?: number;
}

export class ShardSampler {
  readonly stepsPerEpoch: number;
  private perm?: { epoch: number; order: Int32Array };

  constructor(readonly o: ShardOptions) {
    const { n, batchSize } = o;
    const W = o.worldSize ?? 1, A = o.accumulate ?? 1, r = o.rank ?? 0;
    for (const [k, v] of [['batchSize', batchSize], ['worldSize', W], ['accumulate', A]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
    if (!Number.isInteger(r) || r < 0 || r >= W) throw new RangeError(`rank must lie in 0..${W - 1}, got ${r}`);
    this.stepsPerEpoch = Math.floor(n / (W * A * batchSize));
    if (this.stepsPerEpoch < 1) {
      throw new Error(`${n} examples are fewer than one step's ${W * A * batchSize} (${W} rank${W > 1 ? 's' : ''} × ${A} micro-batch${A > 1 ? 'es' : ''} × batch size ${batchSize})`);
    }
  }

  /** Indices of micro-batch `micro` of this rank at optimiser step `step`. */
  indices(step: number, micro = 0): Int32Array {
    const { n, batchSize: B, seed } = this.o;
    const W = this.o.worldSize ?? 1, A = this.o.accumulate ?? 1, r = this.o.rank ?? 0;
    const epoch = Math.floor(step / this.stepsPerEpoch);
    if (this.perm?.epoch !== epoch) this.perm = { epoch, order: permutation(n, seed + epoch) };
    const start = (((step % this.stepsPerEpoch) * A + micro) * W + r) * B;
    return this.perm.order.subarray(start, start + B);
  }
}
