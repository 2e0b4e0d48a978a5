/**
 * One scale of the reverse chain: p_θ(x_{t-1} | x_t, c), wrapping a transformer in the official
 * input layout (state-dict keys `transformer.*`, as in the official scale checkpoints).
 *
 * - scales t < T, `EncoderDecoderDenoiser`: encoder ids `[t, c…, x_t]` (one shared table, no offsets;
 *   t and class ids collide with code ids, as in the official code), decoder ids `[SOS = 0, x_{t-1}[:-1]]`;
 * - scale T, `DecoderOnlyDenoiser`: x_T is pure noise and ignored; GPT over `[t, c…, x_{T-1}[:-1]]`,
 *   logits sliced from position len(t, c…) - 1 so that output i predicts x_{T-1}[i].
 *
 * Segmentation chains (`mapVocab`) have no prefix tokens; their condition is the label map's token grid
 * s [B, N], fused channel-wise (layers.ts `MapFusion`) into the x_t positions of the encoder input, and
 * at scale T into GPT input position n — the one that predicts x_{T-1}[n] — as s_n.
 */
import { type Tensor, cat, full, zeros } from '../torch/index.js';
import { Module, Linear, type LoadResult } from '../nn/index.js';
import { weightDecayGroups, type ParamGroup } from '../optim/index.js';
import type { Schedule } from '../diffusion/index.js';
import { XTransformer, ResidualScaledXTransformer } from './xtransformer.js';
import { GPT } from './gpt.js';

/** The architecture of one scale's model. */
export type ScaleModelConfig =
  | {
      /** Encoder-decoder ('residual-xtransformer': the ResidualScaled variant). */
      type: 'xtransformer' | 'residual-xtransformer';
      dim: number;
      heads: number;
      /** Default 64. */
      dimHead?: number;
      encoderDepth: number;
      decoderDepth: number;
      /** Position-table lengths; default the longest inputs, 1 + condLength + tokens and tokens (official configs may have more). */
      encoderMaxSeqLen?: number;
      decoderMaxSeqLen?: number;
    }
  | {
      type: 'gpt';
      dim: number;
      heads: number;
      depth: number;
      /** Leading positions attending both ways; default 1 + condLength (the whole prefix). */
      nUnmasked?: number;
      /** Positions of the position table; default condLength + tokens, the longest input (official configs may have more). */
      blockSize?: number;
    };

/** What every scale of one chain shares. */
export interface ChainShape {
  /** Codes (the shrunk codebook size K_eff). */
  K: number;
  /** Number of scales. */
  T: number;
  /** Tokens per grid, h·w. */
  tokens: number;
  /** Conditioning tokens per example (1 for a class id); default 0. */
  condLength?: number;
  /** Ids the conditioning tokens take, e.g. the number of classes. */
  condVocab?: number;
  /** Ids a segmentation chain's label-map tokens take (K_s, + 1 for the null map); absent: no map. */
  mapVocab?: number;
}

/** Input table size: scale ids 1..T, codes and conditioning ids share one table. */
export const inputVocab = (s: ChainShape): number => Math.max(s.K, s.T + 1, s.condVocab ?? 0);

export abstract class Denoiser extends Module {
  abstract readonly transformer: XTransformer | GPT;

  constructor(readonly t: number, readonly shape: ChainShape) {
    super();
  }

  /** Teacher-forced logits [B, N, K] of p_θ(x_{t-1} | x_t, c) for x_t, x_{t-1} [B, N] and c [B, condLength] (a map [B, N]). */
  abstract logits(xt: Tensor, xtm1: Tensor, cond?: Tensor): Tensor;

  /** AdamW groups as the official configure_optimizers of this model kind. */
  abstract decayGroups(weightDecay: number): ParamGroup[];

  /** `[t, c…]` [B, 1 + condLength], on the conditioning's device, else the model's (a label map is no prefix: `[t]`). */
  prefix(batch: number, cond?: Tensor, device = cond?.device ?? this.device): Tensor {
    const t = full([batch, 1], this.t, { dtype: 'int64', device });
    if (this.shape.mapVocab) return t;
    const want = this.shape.condLength ?? 0;
    if ((cond?.size(1) ?? 0) !== want) throw new Error(`scale ${this.t}: expected ${want} conditioning tokens per example, got ${cond?.size(1) ?? 0}`);
    return cond ? cat([t, cond], 1) : t;
  }

  /** The label map [B, tokens] of a segmentation chain's condition (undefined for other chains), checked. */
  mapOf(cond: Tensor | undefined, batch: number, tokens: number): Tensor | undefined {
    if (!this.shape.mapVocab) return undefined;
    if (!cond || cond.ndim !== 2 || cond.size(0) !== batch || cond.size(1) !== tokens) {
      throw new Error(`scale ${this.t}: a segmentation chain needs a label map of [${batch}, ${tokens}] tokens, got ${cond ? `[${cond.shape.join(', ')}]` : 'none'}`);
    }
    return cond;
  }
}

export class EncoderDecoderDenoiser extends Denoiser {
  readonly transformer: XTransformer;

  constructor(t: number, shape: ChainShape, transformer: XTransformer) {
    super(t, shape);
    this.transformer = this.module('transformer', transformer);
  }

  /** Encoder ids `[t, c…, x_t]`. */
  encoderInput(xt: Tensor, cond?: Tensor): Tensor {
    return cat([this.prefix(xt.size(0), cond, xt.device), xt], 1);
  }

  /** The encoder's output [B, 1 + condLength + N, dim] for x_t [B, N] (the map fused in for segmentation chains). */
  encode(xt: Tensor, cond?: Tensor): Tensor {
    return this.transformer.encode(this.encoderInput(xt, cond), this.mapOf(cond, xt.size(0), xt.size(1)));
  }

  logits(xt: Tensor, xtm1: Tensor, cond?: Tensor): Tensor {
    const sos = zeros([xtm1.size(0), 1], { dtype: 'int64', device: xtm1.device });
    const tgt = cat([sos, xtm1.narrow(1, 0, xtm1.size(1) - 1)], 1);
    return this.transformer.forward(this.encoderInput(xt, cond), tgt, { map: this.mapOf(cond, xt.size(0), xt.size(1)) });
  }

  /** The official DenoisingXTransformer hands every parameter to AdamW, whose default decay is 0.01. */
  decayGroups(weightDecay: number): ParamGroup[] {
    return weightDecayGroups(this, weightDecay, () => true);
  }
}

export class DecoderOnlyDenoiser extends Denoiser {
  readonly transformer: GPT;

  constructor(t: number, shape: ChainShape, transformer: GPT) {
    super(t, shape);
    this.transformer = this.module('transformer', transformer);
  }

  /** x_T is pure noise and not looked at. */
  logits(_xt: Tensor, xtm1: Tensor, cond?: Tensor): Tensor {
    const c = this.prefix(xtm1.size(0), cond, xtm1.device);
    const n = xtm1.size(1);
    const idx = cat([c, xtm1.narrow(1, 0, n - 1)], 1); // [B, P + N - 1]; with a map P = 1: position i predicts x_{T-1}[i]
    return this.transformer.forward(idx, undefined, this.mapOf(cond, xtm1.size(0), n)).narrow(1, c.size(1) - 1, n);
  }

  /** Loads weights, then refuses masks that disagree with the config's nUnmasked (the cached path follows the config). */
  override loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, o: { strict?: boolean } = {}): LoadResult {
    const r = super.loadStateDict(sd, o);
    this.transformer.checkMasks('transformer.');
    return r;
  }

  /** minGPT's groups: Linear weights decay; biases, LayerNorms, embeddings and pos_emb do not. */
  decayGroups(weightDecay: number): ParamGroup[] {
    return weightDecayGroups(this, weightDecay, (name, owner) => owner instanceof Linear && name.endsWith('weight'));
  }
}

/** Builds scale t's model for a chain (ResidualScaled models get the schedule's α). */
export function createDenoiser(t: number, model: ScaleModelConfig, shape: ChainShape, schedule: Schedule): Denoiser {
  if (!Number.isInteger(t) || t < 1 || t > shape.T) throw new RangeError(`scale ${t} outside 1..${shape.T}`);
  if (schedule.T !== shape.T) throw new Error(`schedule has T = ${schedule.T} but the chain has ${shape.T} scales`);
  const cond = shape.condLength ?? 0;
  const N = shape.tokens;
  if (shape.mapVocab && cond) throw new Error(`scale ${t}: a segmentation chain takes no prefix conditioning tokens`);
  const mapVocab = shape.mapVocab ? { mapVocab: shape.mapVocab } : {};
  if (model.type === 'gpt') {
    const blockSize = model.blockSize ?? cond + N;
    if (!(Number.isInteger(blockSize) && blockSize >= cond + N)) throw new RangeError(`scale ${t}: GPT block size ${blockSize} is shorter than its input, ${cond + N} positions`);
    return new DecoderOnlyDenoiser(t, shape, new GPT({
      vocabSize: shape.K, inputVocabSize: inputVocab(shape), blockSize,
      nLayer: model.depth, nHead: model.heads, nEmbd: model.dim, nUnmasked: model.nUnmasked ?? 1 + cond, ...mapVocab,
    }));
  }
  const cfg = {
    dim: model.dim, dimHead: model.dimHead,
    encoder: { numTokens: inputVocab(shape), maxSeqLen: model.encoderMaxSeqLen ?? 1 + cond + N, depth: model.encoderDepth, heads: model.heads, ...(shape.mapVocab ? { ...mapVocab, mapStart: 1 } : {}) },
    decoder: { numTokens: shape.K, maxSeqLen: model.decoderMaxSeqLen ?? N, depth: model.decoderDepth, heads: model.heads },
  };
  if (model.type === 'xtransformer') return new EncoderDecoderDenoiser(t, shape, new XTransformer(cfg));
  const rs = new ResidualScaledXTransformer({ ...cfg, nScales: shape.T, scalePos: 0, xtStart: 1 + cond, xtSize: N });
  rs.setAlphas(schedule.alpha);
  return new EncoderDecoderDenoiser(t, shape, rs);
}
