/**
 * Next-token logits of one scale's model p_θ(x_{t-1} | x_t, c) while x_{t-1} is decoded in raster order.
 *
 * A `ScaleDecoder` is opened for one context (x_t, c) and asked for positions n = 0, 1, … in increasing
 * order (positions may be skipped): `logitsAt(xtm1, n)` returns the logits [B, K] of x_{t-1}[n] given
 * the first n decoded tokens xtm1[:, :n].
 *
 * - `cached` (ours): the encoder runs once; the decoder is fed only the tokens it has not seen, through
 *   the KV cache of chain/layers.ts (self-attention K/V appended, cross-attention K/V computed once).
 *   Scale T (GPT) uses its cached path, the official `forward_with_past`, which applies no mask: its
 *   first nUnmasked positions go in together (they attend both ways in training too), every later
 *   token alone.
 * - `uncached`: the official encoder-decoder loop — the encoder once, then the whole decoder input
 *   [SOS, x_{t-1}[:n]] again for every token (and the cross-attention K/V with it); the GPT likewise
 *   re-runs [t, c, x_{T-1}[:n]].
 * - `official`: what the official sampler does per scale: encoder-decoder scales uncached, the GPT
 *   cached (`sample_with_past`).
 * A segmentation chain's condition is its label map [B, N]: fused into the encoder's x_t positions, and
 * into GPT input position n (which predicts x_{T-1}[n]) as map token n, in both paths.
 * Logits are float32 [B, K].
 */
import { type Tensor, cat, zeros } from '../torch/index.js';
import { KVCache, DecoderOnlyDenoiser, EncoderDecoderDenoiser, type Denoiser } from '../chain/index.js';

export type Decoding = 'cached' | 'uncached' | 'official';
export const DECODINGS: readonly Decoding[] = ['cached', 'uncached', 'official'];

export interface ScaleDecoder {
  /** Logits [B, K] of position n given xtm1[:, :n] ([B, N] int64, valid up to n). */
  logitsAt(xtm1: Tensor, n: number): Tensor;
  /** Frees the KV cache and the encoder output. */
  dispose(): void;
}

export interface DecoderOptions {
  /** Conditioning tokens [B, condLength] (a segmentation chain: the label map [B, N]). */
  cond?: Tensor;
  decoding: Decoding;
  /** The encoder's output for this x_t when already computed (sliding windows reuse it). */
  enc?: Tensor;
}

/** Opens scale d's decoder for x_t [B, N] (flat token grid). */
export function openDecoder(d: Denoiser, xt: Tensor, o: DecoderOptions): ScaleDecoder {
  if (d instanceof EncoderDecoderDenoiser) return new EncoderDecoderStream(d, xt, o.cond, o.decoding === 'cached', o.enc);
  if (d instanceof DecoderOnlyDenoiser) return new DecoderOnlyStream(d, xt.size(0), o.cond, o.decoding !== 'uncached', xt.size(1));
  throw new Error(`scale ${d.t}: unknown denoiser kind ${d.constructor.name}`);
}

/** The encoder's output for x_t [B, N] (kept: the caller disposes it). */
export function encodeContext(d: EncoderDecoderDenoiser, xt: Tensor, cond?: Tensor): Tensor {
  return d.encode(xt, cond).keep();
}

class EncoderDecoderStream implements ScaleDecoder {
  private readonly src: Tensor; // [B, 1 + condLength + N] encoder ids
  private readonly enc: Tensor; // [B, 1 + condLength + N, dim]
  private readonly ownsEnc: boolean;
  private readonly cache?: KVCache;
  private fed = 0; // x_{t-1} tokens already in the cache

  constructor(private readonly d: EncoderDecoderDenoiser, xt: Tensor, cond: Tensor | undefined, cached: boolean, enc?: Tensor) {
    this.src = d.encoderInput(xt, cond).keep();
    this.ownsEnc = enc === undefined;
    this.enc = enc ?? d.encode(xt, cond).keep();
    if (cached) this.cache = new KVCache();
  }

  logitsAt(xtm1: Tensor, n: number): Tensor {
    // decoder input [SOS = 0, x_{t-1}[:n]], less what the cache already holds
    const start = this.cache ? this.fed : 0;
    let tgt = xtm1.narrow(1, start, n - start);
    if (!this.cache || this.cache.length === 0) tgt = cat([zeros([xtm1.size(0), 1], { dtype: 'int64', device: xtm1.device }), tgt], 1);
    this.fed = n;
    const logits = this.d.transformer.forward(this.src, tgt, { enc: this.enc, cache: this.cache }); // [B, L, K]
    return logits.select(1, logits.size(1) - 1).float();
  }

  dispose(): void {
    this.cache?.dispose();
    this.src.dispose();
    if (this.ownsEnc) this.enc.dispose();
  }
}

class DecoderOnlyStream implements ScaleDecoder {
  private readonly prefix: Tensor; // [B, 1 + condLength]: [t, c…]
  private readonly map?: Tensor; // [B, N]: map token n goes with input position n (segmentation chains, whose prefix is [t])
  private readonly cache?: KVCache;
  private fed = 0; // x_{T-1} tokens already in the cache
  /** Leading positions fed in one call: those that attend both ways (nUnmasked), at least one. */
  private readonly together: number;

  constructor(private readonly d: DecoderOnlyDenoiser, batch: number, cond: Tensor | undefined, cached: boolean, tokens: number) {
    this.prefix = d.prefix(batch, cond).keep();
    this.map = d.mapOf(cond, batch, tokens)?.clone().keep(); // its own copy: dispose() frees it
    const P = this.prefix.size(1), u = d.transformer.cfg.nUnmasked ?? 0;
    if (u > P) {
      throw new Error(`scale ${d.t}: the GPT lets its first ${u} positions attend both ways but the conditioning prefix has ${P}: its image tokens see later tokens, so it cannot be sampled token by token`);
    }
    this.together = Math.max(1, u);
    if (cached) this.cache = new KVCache();
  }

  logitsAt(xtm1: Tensor, n: number): Tensor {
    const gpt = this.d.transformer;
    const mapAt = (start: number, len: number) => this.map?.narrow(1, start, len);
    if (!this.cache) {
      const logits = gpt.forward(cat([this.prefix, xtm1.narrow(1, 0, n)], 1), undefined, mapAt(0, this.prefix.size(1) + n)); // [B, P + n, K]
      return logits.select(1, logits.size(1) - 1).float();
    }
    // the cached path has no mask: the unmasked block in one call, every other position alone
    const ids = this.cache.length === 0 ? cat([this.prefix, xtm1.narrow(1, 0, n)], 1) : xtm1.narrow(1, this.fed, n - this.fed);
    this.fed = n;
    let logits: Tensor | undefined;
    for (let i = 0; i < ids.size(1); ) {
      const len = this.cache.length === 0 ? this.together : 1;
      logits = gpt.forward(ids.narrow(1, i, len), this.cache, mapAt(this.cache.length, len));
      i += len;
    }
    return logits!.select(1, logits!.size(1) - 1).float();
  }

  dispose(): void {
    this.cache?.dispose();
    this.prefix.dispose();
    this.map?.dispose();
  }
}
