/**
 * Pieces shared by the reverse models: scaled dot-product attention over heads, the KV cache for
 * incremental decoding, and the fusion of a segmentation map into the token embeddings.
 *
 * Map fusion (DESIGN §1, "Conditioning"; the paper's segmentation conditioning): the label map's tokens
 * s_n have their own table E_s, and at the positions they belong to
 *   h_n = W·[e(x_n); E_s(s_n)] + b      (W: Linear(2·dim → dim))
 * so the sequence keeps its length; the other positions (scale token, prefix) are left as they are.
 *
 * KV cache: one `KVSlot` per attention layer holds keys and values [B, heads, L, dHead].
 * - self-attention appends the new positions' k, v and attends over everything cached;
 * - cross-attention computes k, v from the encoder output once and reuses them;
 * - `KVCache.length` is the number of positions already decoded, i.e. the position of the next token.
 * Cached tensors are exempt from tidy() scopes; the cache frees them itself (`dispose()`).
 */
import { type Tensor, type DType, arange, cat } from '../torch/index.js';
import { Module, Embedding, Linear, init } from '../nn/index.js';

/** Label-map tokens concatenated channel-wise with token embeddings, projected back (keys emb.weight, proj.weight/bias). */
export class MapFusion extends Module {
  readonly emb: Embedding;
  readonly proj: Linear;

  /** `vocab`: map ids (K_s, + 1 for the null map). */
  constructor(readonly vocab: number, dim: number) {
    super();
    this.emb = this.module('emb', new Embedding(vocab, dim));
    init.normal_(this.emb.weight, 0, 0.02);
    this.proj = this.module('proj', new Linear(2 * dim, dim));
  }

  /** x [B, L, dim] with map [B, M] fused at positions start..start+M-1 (start + M ≤ L) → [B, L, dim]. */
  forward(x: Tensor, map: Tensor, start: number): Tensor {
    const [, L] = x.shape, M = map.size(1);
    if (start + M > L) throw new RangeError(`map fusion: ${M} map tokens from position ${start} exceed the ${L} positions`);
    const fused = this.proj.forward(cat([x.narrow(1, start, M), this.emb.forward(map)], -1)); // [B, M, 2·dim] → [B, M, dim]
    const parts = [...(start > 0 ? [x.narrow(1, 0, start)] : []), fused, ...(start + M < L ? [x.narrow(1, start + M, L - start - M)] : [])];
    return parts.length === 1 ? fused : cat(parts, 1);
  }
}

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
