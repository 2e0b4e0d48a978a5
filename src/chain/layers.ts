/**
 * Pieces shared by the reverse models: scaled dot-product attention over heads, the KV cache for
 * incremental decoding.
 *
 * KV cache: one `KVSlot` per attention layer holds keys and values [B, heads, L, dHead].
 * - self-attention appends the new positions' k, v and attends over everything cached;
 * - cross-attention computes k, v from the encoder output once and reuses them;
 * - `KVCache.length` is the number of positions already decoded, i.e. the position of the next token.
 * Cached tensors are exempt from tidy() scopes; the cache frees them itself (`dispose()`).
 */
import { type Tensor, type DType, arange, cat } from '../torch/index.js';

/** Keys and values seen so far by one attention layer. */
export class KVSlot {
  k?: Tensor;
  v?: Tensor;

  /** Replaces the cached k, v ([B, heads, L, dHead]). */
  set(k: Tensor, v: Tensor): void {
    this.dispose();
    this.k = k.keep();
    this.v = v.keep();
  }

  /** Appends new positions and returns all cached k, v. */
  append(k: Tensor, v: Tensor): [Tensor, Tensor] {
    if (this.k && this.v) this.set(cat([this.k, k], 2), cat([this.v, v], 2));
    else this.set(k, v);
    return [this.k!, this.v!];
  }

  dispose(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = this.v = undefined;
  }
}

/** The KV state of one incremental decoding: a slot per attention layer and the decoded length. */
export class KVCache {
  private readonly slots = new Map<number, KVSlot>();
  /** Positions already decoded. */
  length = 0;

  slot(layer: number): KVSlot {
    let s = this.slots.get(layer);
    if (!s) this.slots.set(layer, (s = new KVSlot()));
    return s;
  }

  dispose(): void {
    for (const s of this.slots.values()) s.dispose();
    this.slots.clear();
    this.length = 0;
  }
}

/** [B, L, heads·d] → [B, heads, L, d] */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, L, D] = x.shape;
  return x.view(B, L, heads, D / heads).transpose(1, 2);
}

/** [B, heads, L, d] → [B, L, heads·d] */
export function mergeHeads(x: Tensor): Tensor {
  const [B, h, L, d] = x.shape;
  return x.transpose(1, 2).reshape(B, L, h * d);
}

/** softmax(q·kᵀ·scale with `blocked` entries set to `fill`)·v over [B, heads, L, d] tensors. */
export function attend(q: Tensor, k: Tensor, v: Tensor, scale: number, blocked?: Tensor, fill = -Infinity): Tensor {
  let scores = q.matmul(k.transpose(-2, -1)).mul(scale);
  if (blocked) scores = scores.maskedFill(blocked, fill);
  return scores.softmax(-1).matmul(v);
}

/**
 * The causal mask of Lq queries that end the Lk keys: true where key j lies after query i
 * (j > i + Lk - Lq), as x-transformers builds it, so cached decoding needs no special case.
 */
export function causalBlocked(lq: number, lk: number, device: string): Tensor {
  const i = arange(lq, undefined, 1, { device }).add(lk - lq).view(lq, 1);
  return i.lt(arange(lk, undefined, 1, { device }).view(1, lk));
}

/** -finfo(dtype).max: the fill x-transformers uses for masked scores. */
export function maxNegative(dtype: DType): number {
  switch (dtype) {
    case 'float16': return -65504;
    case 'bfloat16': return -3.3895313892515355e38;
    case 'float64': return -Number.MAX_VALUE;
    default: return -3.4028234663852886e38;
  }
}
