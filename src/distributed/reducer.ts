/**
 * Gradient averaging overlapped with the backward pass, by c10d::Reducer — the engine of torch's
 * DistributedDataParallel, through the binding.
 *
 * The parameters (the very tensors the optimiser trains) are split into buckets of about
 * `bucketBytes` by c10d::compute_bucket_assignment_by_size, in reverse definition order as DDP does
 * (the last layers' gradients come first in the backward pass; the first bucket formed, of the
 * first layers, is held to `firstBucketBytes` so that little waits after the pass ends). The
 * Reducer puts a hook on each parameter's gradient accumulator: during a synced backward each
 * gradient is copied, divided by the world size W, into its bucket, and a full bucket's all-reduce
 * is launched at once, while autograd goes on with the earlier layers. An autograd final callback
 * waits for the buckets and writes the averages
 *
 *   param.grad ← Σ_r g_r / W
 *
 * into the gradients. The buckets stay as built (DDP's one-time re-bucketing by the order gradients
 * arrived in is off). Gradient accumulation is DDP's no_sync: backward({ sync: false }) skips
 * prepare_for_backward, so the hooks do nothing and the micro-batches' gradients add up locally;
 * the synced backward of the last micro-batch then reduces the sum.
 *
 * `findUnusedParameters` (DDP's flag): before each synced backward the Reducer walks the loss's
 * autograd graph, marks the parameters it does not reach as ready at once, and all-reduces a
 * used-map, so that a parameter no rank's loss reached keeps no gradient and one only some ranks'
 * losses reached is averaged with zeros from the others. Without it (cheaper), every parameter must
 * receive a gradient in every synced backward, else backward() throws naming the bucket's parameters.
 *
 * Failures of a collective during the pass (a peer gone, the group's timeout) come out of
 * backward() as the process group's errors do: prefixed with the rank, world size and master.
 */
import { native, type NativeReducer, type NativeReducerInfo } from '../torch/native.js';
import type { Tensor } from '../torch/index.js';
import type { ProcessGroup } from './group.js';

export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;
/** DDP's first bucket (its `_DEFAULT_FIRST_BUCKET_BYTES`). */
export const DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024;

/** How a trainer runs its backward passes data-parallel: backward, with the gradients averaged over the ranks when `sync`. */
export interface GradientSync {
  /** loss.backward(); with `sync` (default; the last micro-batch of a step) param.grad comes out averaged over the ranks. */
  backward(loss: Tensor, o?: { sync?: boolean }): void;
  /** Bytes of gradients all-reduced per synced backward. */
  readonly bytesPerStep: number;
  /** Frees what it holds (the Reducer's hooks and buckets); backward() throws afterwards. */
  dispose(): void;
}

export interface ReducerOptions {
  /** Bucket size (default DDP's 25 MiB). */
  bucketBytes?: number;
  /** Size of the bucket of the first parameters, reduced last (default DDP's 1 MiB). */
  firstBucketBytes?: number;
  /** Walk the graph for parameters a loss does not reach (default false, as DDP's). */
  findUnusedParameters?: boolean;
}

/** A synced backward's timeline in milliseconds since prepare_for_backward, from the Reducer's own timer. */
export interface BackwardTimeline {
  /** The first bucket's all-reduce was launched. */
  commStartMs: number;
  /** The last gradient was marked ready. */
  lastGradReadyMs: number;
  /** Autograd finished computing (the final callback ran). */
  computeEndMs: number;
  /** Every bucket reduced and written back. */
  commEndMs: number;
  /** computeEnd − commStart: how long communication ran alongside the backward computation (DDP's backward_compute_comm_overlap_time). */
  overlapMs: number;
}

export class Reducer implements GradientSync {
  /** The parameters' names, in the order the Reducer indexes them. */
  readonly names: string[];
  private handle?: NativeReducer;

  /**
   * Builds the buckets and hooks for these parameters (leaves that require grad; a parameter listed
   * twice counts once) and checks with the other ranks that they passed the same shapes: every rank
   * calls it at the same point.
   */
  constructor(readonly group: ProcessGroup, named: readonly (readonly [string, Tensor])[], o: ReducerOptions = {}) {
    const seen = new Set<Tensor>();
    const unique = named.filter(([, p]) => !seen.has(p) && seen.add(p));
    this.names = unique.map(([n]) => n);
    this.handle = native.createReducer!(group.nativeHandle(), unique.map(([, p]) => p.h), this.names, {
      bucketBytes: o.bucketBytes ?? DEFAULT_BUCKET_BYTES,
      firstBucketBytes: o.firstBucketBytes ?? DEFAULT_FIRST_BUCKET_BYTES,
      findUnusedParameters: o.findUnusedParameters ?? false,
    });
  }

  backward(loss: Tensor, o: { sync?: boolean } = {}): void {
    native.reducerBackward!(this.live(), loss.h, o.sync ?? true);
  }

  /** The buckets in the order they are reduced, with their parameters' names. */
  get buckets(): { bytes: number; parameters: string[] }[] {
    return this.info().buckets.map((b) => ({ bytes: b.bytes, parameters: b.params.map((i) => this.names[i]!) }));
  }

  get bytesPerStep(): number {
    return this.info().buckets.reduce((s, b) => s + b.bytes, 0);
  }

  /** The last synced backward's timeline; undefined before the first. */
  lastBackward(): BackwardTimeline | undefined {
    const t = this.info().timeline;
    if (!t) return undefined;
    const ms = (ns: number) => ns / 1e6;
    return {
      commStartMs: ms(t.commStart), lastGradReadyMs: ms(Math.max(...t.gradReady)), computeEndMs: ms(t.computeEnd), commEndMs: ms(t.commEnd),
      overlapMs: ms(t.computeEnd - t.commStart),
    };
  }

  dispose(): void {
    if (this.handle) native.disposeReducer!(this.handle);
    this.handle = undefined;
  }

  private info(): NativeReducerInfo {
    return native.reducerInfo!(this.live());
  }

  private live(): NativeReducer {
    if (!this.handle) throw new Error(`c10d rank ${this.group.rank}/${this.group.worldSize} (master ${this.group.master}): the reducer was disposed`);
    return this.handle;
  }
}
