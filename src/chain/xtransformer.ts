/**
 * The encoder-decoder reverse model of scales 1..T-1 (BART-style; the official `XTransformer`, itself
 * modified from lucidrains' x-transformers), with the same state-dict keys:
 *
 * - encoder: bidirectional over `[t, (cond…), x_t]` → embeddings [B, S, dim] (after its final norm); a
 *   segmentation chain's encoder fuses the label map's tokens into the x_t positions (layers.ts
 *   `MapFusion`, key `encoder.map_fusion.*`) before the positions are added;
 * - decoder: causal over `[SOS, x_{t-1}[:-1]]`, cross-attending to the encoder; output i predicts x_{t-1}[i];
 * - both: token embedding + learned absolute positions (no √dim scaling), pre-LayerNorm sub-layers
 *   x + f(LN(x)) — encoder (self-attention, feed-forward)×depth, decoder (causal self-attention,
 *   cross-attention, feed-forward)×depth, separate depths — then a final LayerNorm and a linear head;
 * - attention: heads × dimHead (64 by default, whatever dim/heads is), q/k/v without bias, output
 *   projection with bias, scale dimHead^-½, masked scores filled with -finfo(dtype).max;
 * - feed-forward: Linear(dim, 4·dim) → exact GELU → Linear(4·dim, dim); no dropout anywhere;
 * - cross-attention normalises only its query: the context is the encoder output as it is;
 * - initialisation as the official: embeddings and positions N(0, 0.02), Linear layers PyTorch's default.
 *
 * `ResidualScaledXTransformer` learns a correction to log q(x_t | x_{t-1}):
 * logits = exp(log_scalors[t-1])·net(x) + log(α_t·onehot(x_t) + (1-α_t)/K).
 *
 * Incremental decoding: pass a `KVCache` to `forward` and feed the decoder the new tokens only.
 */
import { type Tensor, zeros, tensor, tidy } from '../torch/index.js';
import { Module, ModuleList, Linear, LayerNorm, Embedding, Dropout, init, Sequential, GELU } from '../nn/index.js';
import { type KVCache, type KVSlot, MapFusion, splitHeads, mergeHeads, attend, causalBlocked, maxNegative } from './layers.js';

/** One side (encoder or decoder) of the model. */
export interface StackConfig {
  /** Embedding table size (the encoder's holds scale, class and code ids in one table). */
  numTokens: number;
  maxSeqLen: number;
  depth: number;
  heads: number;
  /** Label-map ids (segmentation chains): a map fused channel-wise from position `mapStart` on. */
  mapVocab?: number;
  mapStart?: number;
}

export interface XTransformerConfig {
  dim: number;
  /** Width per head; default 64 (the official DEFAULT_DIM_HEAD). */
  dimHead?: number;
  encoder: StackConfig;
  decoder: StackConfig;
}

export interface ResidualScaledConfig extends XTransformerConfig {
  /** Number of scales T (length of log_scalors). */
  nScales: number;
  /** Where t sits in the encoder input (0). */
  scalePos: number;
  /** Where x_t starts in the encoder input (1, or 2 after a class token) and its length. */
  xtStart: number;
  xtSize: number;
}

/** Multi-head attention with x-transformers' names: to_q, to_k, to_v (no bias), to_out. */
export class Attention extends Module {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Linear;
  private readonly scale: number;

  constructor(dim: number, readonly heads: number, dimHead: number, readonly causal: boolean) {
    super();
    const inner = heads * dimHead;
    this.to_q = this.module('to_q', new Linear(dim, inner, false));
    this.to_k = this.module('to_k', new Linear(dim, inner, false));
    this.to_v = this.module('to_v', new Linear(dim, inner, false));
    this.to_out = this.module('to_out', new Linear(inner, dim));
    this.scale = dimHead ** -0.5;
  }

  /**
   * x [B, L, dim] attends to itself, or to `context` [B, S, dim] (cross-attention). With a cache slot,
   * self-attention appends this call's k, v; cross-attention computes them once and reuses them.
   */
  forward(x: Tensor, o: { context?: Tensor; cache?: KVSlot } = {}): Tensor {
    const q = splitHeads(this.to_q.forward(x), this.heads); // [B, h, L, dHead]
    let k: Tensor, v: Tensor;
    if (o.context && o.cache?.k && o.cache.v) {
      [k, v] = [o.cache.k, o.cache.v];
    } else {
      const kv = o.context ?? x;
      k = splitHeads(this.to_k.forward(kv), this.heads);
      v = splitHeads(this.to_v.forward(kv), this.heads);
      if (o.cache && o.context) o.cache.set(k, v);
      else if (o.cache) [k, v] = o.cache.append(k, v);
    }
    const blocked = this.causal ? causalBlocked(q.size(2), k.size(2), x.device) : undefined;
    const out = attend(q, k, v, this.scale, blocked, maxNegative(q.dtype)); // [B, h, L, dHead]
    return this.to_out.forward(mergeHeads(out));
  }
}

/** Linear → GELU → Linear, keyed net.0.0 and net.2 as x-transformers' FeedForward. */
export class FeedForward extends Module {
  readonly net: Sequential;
  constructor(dim: number, mult = 4) {
    super();
    this.net = this.module('net', new Sequential([new Sequential([new Linear(dim, dim * mult), new GELU()]), new Dropout(0), new Linear(dim * mult, dim)]));
  }
  forward(x: Tensor): Tensor { return this.net.forward(x); }
}

type SublayerKind = 'self' | 'cross' | 'ff';
interface Sublayer { kind: SublayerKind; norm: LayerNorm; fn: Attention | FeedForward }

/** Pre-norm residual sub-layers, keyed layers.{j}.0 (the LayerNorm) and layers.{j}.1 (the sub-layer). */
export class AttentionLayers extends Module {
  readonly layers: ModuleList;
  private readonly sublayers: Sublayer[] = [];

  constructor(dim: number, depth: number, heads: number, dimHead: number, o: { causal: boolean; crossAttend: boolean }) {
    super();
    this.layers = this.module('layers', new ModuleList());
    const block: SublayerKind[] = o.crossAttend ? ['self', 'cross', 'ff'] : ['self', 'ff'];
    for (let d = 0; d < depth; d++) {
      for (const kind of block) {
        const norm = new LayerNorm(dim);
        const fn = kind === 'ff' ? new FeedForward(dim) : new Attention(dim, heads, dimHead, kind === 'self' && o.causal);
        this.layers.push(new ModuleList([norm, fn]));
        this.sublayers.push({ kind, norm, fn });
      }
    }
  }

  /** x [B, L, dim] → [B, L, dim]; `context` is the encoder output for cross-attention. */
  forward(x: Tensor, o: { context?: Tensor; cache?: KVCache } = {}): Tensor {
    // Each sublayer in its own tidy scope: its intermediates are released as soon as it is done
    // (autograd keeps what backward needs), as PyTorch frees them by reference counting.
    this.sublayers.forEach(({ kind, norm, fn }, j) => {
      x = tidy(() => {
        const h = norm.forward(x);
        const out = fn instanceof FeedForward ? fn.forward(h) : fn.forward(h, { context: kind === 'cross' ? o.context : undefined, cache: o.cache?.slot(j) });
        return out.add(x);
      });
    });
    return x;
  }
}

/** Learned absolute positions, keyed emb.weight. */
export class AbsolutePositionalEmbedding extends Module {
  readonly emb: Embedding;
  constructor(dim: number, readonly maxSeqLen: number) {
    super();
    this.emb = this.module('emb', new Embedding(maxSeqLen, dim));
    init.normal_(this.emb.weight, 0, 0.02);
  }
  /** [L, dim] embeddings of positions offset..offset+L-1. */
  forward(length: number, offset = 0): Tensor {
    if (offset + length > this.maxSeqLen) throw new RangeError(`sequence of ${offset + length} positions exceeds max_seq_len ${this.maxSeqLen}`);
    return this.emb.weight.narrow(0, offset, length);
  }
}

/** Tokens → embeddings + positions → attention layers → LayerNorm → logits (x-transformers' TransformerWrapper). */
export class TokenTransformer extends Module {
  readonly token_emb: Embedding;
  readonly pos_emb: AbsolutePositionalEmbedding;
  readonly attn_layers: AttentionLayers;
  readonly norm: LayerNorm;
  readonly to_logits: Linear;
  readonly map_fusion?: MapFusion;

  constructor(readonly cfg: StackConfig, dim: number, dimHead: number, o: { causal: boolean; crossAttend: boolean }) {
    super();
    this.token_emb = this.module('token_emb', new Embedding(cfg.numTokens, dim));
    init.normal_(this.token_emb.weight, 0, 0.02);
    if (cfg.mapVocab) this.map_fusion = this.module('map_fusion', new MapFusion(cfg.mapVocab, dim));
    this.pos_emb = this.module('pos_emb', new AbsolutePositionalEmbedding(dim, cfg.maxSeqLen));
    this.attn_layers = this.module('attn_layers', new AttentionLayers(dim, cfg.depth, cfg.heads, dimHead, o));
    this.norm = this.module('norm', new LayerNorm(dim));
    this.to_logits = this.module('to_logits', new Linear(dim, cfg.numTokens));
  }

  /** ids [B, L] (and a label map [B, M] when the stack fuses one) → logits [B, L, numTokens], or the normed embeddings [B, L, dim]. */
  forward(ids: Tensor, o: { context?: Tensor; cache?: KVCache; returnEmbeddings?: boolean; map?: Tensor } = {}): Tensor {
    const offset = o.cache?.length ?? 0;
    let x = this.token_emb.forward(ids); // [B, L, dim]
    if (!this.map_fusion !== !o.map) throw new Error(this.map_fusion ? 'this model is segmentation-conditional: it needs the label map\'s tokens' : 'this model takes no label map');
    if (this.map_fusion && o.map) x = this.map_fusion.forward(x, o.map, this.cfg.mapStart ?? 0);
    x = x.add(this.pos_emb.forward(ids.size(1), offset));
    const h = this.norm.forward(this.attn_layers.forward(x, o));
    if (o.cache) o.cache.length += ids.size(1);
    return o.returnEmbeddings ? h : this.to_logits.forward(h);
  }
}

/** The encoder-decoder pair. */
export class XTransformer extends Module {
  readonly encoder: TokenTransformer;
  readonly decoder: TokenTransformer;

  constructor(readonly cfg: XTransformerConfig) {
    super();
    const dimHead = cfg.dimHead ?? 64;
    this.encoder = this.module('encoder', new TokenTransformer(cfg.encoder, cfg.dim, dimHead, { causal: false, crossAttend: false }));
    this.decoder = this.module('decoder', new TokenTransformer(cfg.decoder, cfg.dim, dimHead, { causal: true, crossAttend: true }));
  }

  /** src [B, S] (and the label map [B, N] of a segmentation chain) → encoder embeddings [B, S, dim]. */
  encode(src: Tensor, map?: Tensor): Tensor {
    return this.encoder.forward(src, { returnEmbeddings: true, map });
  }

  /**
   * Decoder logits [B, L, decoder.numTokens] for tgt [B, L]. `enc` skips the encoder (sampling runs it
   * once); with `cache`, tgt holds only the tokens after the cached ones.
   */
  forward(src: Tensor, tgt: Tensor, o: { enc?: Tensor; cache?: KVCache; map?: Tensor } = {}): Tensor {
    const enc = o.enc ?? this.encode(src, o.map);
    return this.decoder.forward(tgt, { context: enc, cache: o.cache });
  }
}

/** XTransformer whose logits correct log q(x_t | x_{t-1}) with a learned per-scale temperature. */
export class ResidualScaledXTransformer extends XTransformer {
  readonly log_scalors: Tensor;
  private readonly scale_alphas: Tensor;

  constructor(override readonly cfg: ResidualScaledConfig) {
    super(cfg);
    this.log_scalors = this.param('log_scalors', zeros([cfg.nScales]));
    // α_t for t = 0..T; not in the state dict (the official sets it with set_alphas)
    this.scale_alphas = this.buffer('scale_alphas', zeros([cfg.nScales + 1]), false);
  }

  /** α_0..α_T of the schedule (the official `set_alphas(1 - beta)`). */
  setAlphas(alpha: readonly number[]): void {
    if (alpha.length !== this.cfg.nScales + 1) throw new RangeError(`setAlphas: expected ${this.cfg.nScales + 1} values α_0..α_T, got ${alpha.length}`);
    this.scale_alphas.copy_(tensor(Float32Array.from(alpha)));
  }

  override forward(src: Tensor, tgt: Tensor, o: { enc?: Tensor; cache?: KVCache; map?: Tensor } = {}): Tensor {
    const { scalePos, xtStart, xtSize } = this.cfg;
    const K = this.cfg.decoder.numTokens;
    const offset = o.cache?.length ?? 0;
    const logits = super.forward(src, tgt, o); // [B, L, K]
    const L = logits.size(1);
    const t = src.select(1, scalePos); // [B], 1..T
    const scalors = this.log_scalors.index([t.sub(1)]).exp().view(-1, 1, 1);
    const alpha = this.scale_alphas.index([t]).view(-1, 1, 1);
    const xt = src.narrow(1, xtStart, xtSize).narrow(1, offset, L);
    const residual = alpha.mul(xt.oneHot(K)).add(alpha.rsub(1).div(K)).log(); // log q(x_t | x_{t-1}) [B, L, K]
    return logits.mul(scalors).add(residual);
  }
}
