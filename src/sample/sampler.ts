/**
 * Sampling the reverse chain (DESIGN §1): x_T ~ uniform over the K codes, then x_{t-1} ~ p_θ(· | x_t, c)
 * for t = T … 1, each scale decoding its grid token by token in raster order.
 *
 * - `denoiseScale`: one reverse step. For every position n: next-token logits (decoder.ts: KV-cached,
 *   or the official uncached loop; a sliding window when the grid is larger than the trained one,
 *   window.ts), truncated and drawn (filter.ts); tokens listed in `fixed` are forced to their value at
 *   every step — the exact equivalent of the official guide, which adds log onehot(x0) to their
 *   logits — and positions kept in every row are not evaluated at all;
 * - `sample`: the whole chain from uniform noise, optionally returning every x_t (coarse to fine);
 * - settings (temperature, top-k, top-p) apply at every scale, with per-scale overrides;
 * - guidance (`Guidance`) pushes each scale's logits away from a reference: the null condition
 *   (classifier-free) or a weaker chain of the same process (autoguidance), which a model may ship as its default;
 * - randomness comes from the caller's `generator` (torch/random.ts: its own stream, whatever else
 *   runs meanwhile), else libtorch's global generator seeded from `seed` (drawn and reported when
 *   not given), so (seed, batch, settings, threads) reproduce a sample bit for bit;
 * - `signal` is checked before every token, so an aborted run stops within one token.
 */
import { randomInt } from 'node:crypto';
import { type Generator, type Tensor, cat, manualSeed, noGrad, randint, tidy, where, withGenerator, zeros } from '../torch/index.js';
import { NONE, nullCondition, type Conditioning, type Denoiser } from '../chain/index.js';
import type { Schedule } from '../diffusion/index.js';
import { drawTokens, resolveSettings, type ScaleSettings } from './filter.js';
import { openDecoder, type Decoding, type ScaleDecoder } from './decoder.js';
import { openWindow } from './window.js';

/** The trained reverse chain, as sampling needs it. */
export interface SamplingChain {
  /** Scale t's model at index t - 1, in eval mode (EMA weights when loaded with loadSamplingChain). */
  readonly denoisers: readonly Denoiser[];
  readonly schedule: Schedule;
  /** The token grid [h, w] the models were trained on. */
  readonly tokenShape: readonly [number, number];
  /** What the chain is conditioned on (default none): how classes and captions become tokens. */
  readonly conditioning?: Conditioning;
  /** Defaults of every scale's settings that the model comes with (RunOptions override them). */
  readonly settings?: ScaleSettings;
  /** The guidance the model comes with, used when a run asks for none: autoguidance by its weaker chain. */
  readonly guidance?: Guidance;
}

/** Anything that can say "stop": an AbortSignal, or a flag another thread sets. */
export type StopSignal = Pick<AbortSignal, 'throwIfAborted'>;

/** What every run of the chain (sample, maskedEdit) takes. */
export interface RunOptions {
  /**
   * Conditioning tokens [B, condLength] (class ids, caption tokens) for a conditional chain; a
   * segmentation chain's label-map tokens [B, H·W] for the grid sampled (cropped with each sliding window).
   */
  cond?: Tensor;
  /** Guidance: classifier-free (needs `cond`) or by a weaker chain (autoguidance); default the chain's own. */
  guidance?: Guidance;
  /** Every draw comes from this generator (then `seed` is ignored and the generator's is reported). */
  generator?: Generator;
  /** Seeds libtorch's global generator; a random seed is drawn (and returned) when absent. */
  seed?: number;
  /** Default 'cached'. */
  decoding?: Decoding;
  /** Settings of every scale … */
  settings?: ScaleSettings;
  /** … overridden per scale t. */
  scales?: Record<number, ScaleSettings>;
  /** Called after each scale (and each repeat of an edit) with x_{t-1} [B, H, W] (freed after the call). */
  onScale?: (t: number, repeat: number, x: Tensor) => void;
  /** Checked before every token: throwing stops the run. */
  signal?: StopSignal;
}

export interface SampleOptions extends RunOptions {
  /** Number of images. */
  batch: number;
  /** Token grid [H, W]; default the trained grid. A larger grid is sampled with a sliding window. */
  grid?: readonly [number, number];
  /** Also return x_T, x_{T-1}, …, x_0. */
  intermediates?: boolean;
}

export interface SampleResult {
  /** x_0 [B, H, W] int64. */
  tokens: Tensor;
  /** The global generator's seed (absent when the caller's generator drew). */
  seed?: number;
  /** The settings each scale ran with, by t. */
  settings: Record<number, Required<ScaleSettings>>;
  /** [x_T, …, x_0] when asked for. */
  intermediates?: Tensor[];
}

/** Tokens forced at every step of a scale: x[keep] = x0[keep]. */
export interface FixedTokens {
  /** [B or 1, H, W] bool, true = forced. */
  keep: Tensor;
  /** [B, H, W] int64. */
  x0: Tensor;
}

/**
 * Guidance: next-token logits l_u + s·(l_c − l_u), where l_c are the chain's own logits and l_u those of
 * a reference it is pushed away from; s = 1 is plain sampling, s > 1 trades diversity for fidelity.
 * - classifier-free (Ho & Salimans 2022): l_u = the chain on the null conditioning it was trained with
 *   (labels dropped), so s > 1 sharpens fidelity to the condition; needs `cond`;
 * - autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"):
 *   l_u = a weaker chain of the same process (fewer parameters, less training) on the same x_t and
 *   condition, so s > 1 moves away from the errors a weaker model makes; works unconditionally.
 */
export interface Guidance {
  /** One scale s for every scale of the chain, or s by t (scales not listed run unguided, s = 1). */
  scale: number | Record<number, number>;
  /** Classifier-free: the null conditioning [1 or B, condLength] (a null map: [1, 1]). */
  nullCond?: Tensor;
  /** Autoguidance: the weaker chain (same K, T, schedule and conditioning; checkWeakChain). */
  weak?: SamplingChain;
}

/** Guidance at scale t, or undefined where it is plain sampling (s = 1). */
export function guidanceAt(g: Guidance | undefined, t: number): ScaleGuidance | undefined {
  if (!g) return undefined;
  const s = typeof g.scale === 'number' ? g.scale : g.scale[t] ?? 1;
  if (!Number.isFinite(s)) throw new RangeError(`guidance scale of scale ${t} must be a finite number, got ${s}`);
  if (!g.nullCond === !g.weak) throw new Error('guidance needs exactly one reference: a null condition or a weaker chain');
  if (s === 1) return undefined;
  return g.weak ? { scale: s, weak: g.weak.denoisers[t - 1] } : { scale: s, nullCond: g.nullCond };
}

/** One scale's guidance: against the null condition, or against the weaker chain's model of this scale. */
export interface ScaleGuidance {
  scale: number;
  nullCond?: Tensor;
  weak?: Denoiser;
}

export interface ScaleOptions {
  cond?: Tensor;
  guidance?: ScaleGuidance;
  settings: Required<ScaleSettings>;
  decoding: Decoding;
  /** The grid the model was trained on; a larger x_t is decoded through sliding windows of this size. */
  tokenShape: readonly [number, number];
  fixed?: FixedTokens;
  signal?: StopSignal;
}

/** Checks that `weak` can guide `chain` (autoguidance): the same scales, codebook, schedule, grid and conditioning. */
export function checkWeakChain(chain: SamplingChain, weak: SamplingChain): void {
  const a = chainInfo(chain), b = chainInfo(weak);
  const differ = (what: string, x: unknown, y: unknown) => new Error(`the guiding chain differs from the chain in ${what}: ${JSON.stringify(y)} against ${JSON.stringify(x)}`);
  if (a.T !== b.T) throw differ('its number of scales T', a.T, b.T);
  if (a.K !== b.K) throw differ('its codebook size K', a.K, b.K);
  if (a.condLength !== b.condLength || a.mapVocab !== b.mapVocab) throw differ('its conditioning', a, b);
  const beta = (c: SamplingChain) => c.schedule.beta.map((x) => Number(x.toFixed(6)));
  if (beta(chain).join() !== beta(weak).join()) throw differ('its schedule β', beta(chain), beta(weak));
  if (chain.tokenShape.join() !== weak.tokenShape.join()) throw differ('its token grid', chain.tokenShape, weak.tokenShape);
  if (chainDevice(chain) !== chainDevice(weak)) throw differ('its device', chainDevice(chain), chainDevice(weak));
}

/**
 * Guidance at scale s against the chain's own reference: the weaker chain it ships (autoguidance), else
 * its null condition (classifier-free; throws for a chain trained without dropped conditions).
 */
export function guidanceWith(chain: SamplingChain, scale: Guidance['scale']): Guidance {
  const weak = chain.guidance?.weak;
  return weak ? { scale, weak } : { scale, nullCond: nullCondition(chain.conditioning ?? NONE) };
}

/** The guidance a run goes with: its own, else the chain's; a weaker chain is checked against the chain. */
export function runGuidance(chain: SamplingChain, o: Pick<RunOptions, 'guidance'>): Guidance | undefined {
  const g = o.guidance ?? chain.guidance;
  if (g?.weak) checkWeakChain(chain, g.weak);
  return g;
}

/** Checks that a chain has one model per scale 1..T on a shared codebook; returns K, T. */
export function chainInfo(chain: SamplingChain): { K: number; T: number; condLength: number; mapVocab: number } {
  const T = chain.schedule.T;
  const ds = chain.denoisers;
  if (ds.length !== T || ds.some((d, i) => d.t !== i + 1)) {
    throw new Error(`sampling needs the models of scales 1..${T} in order, got scales [${ds.map((d) => d.t).join(', ')}]`);
  }
  const { K, condLength = 0, mapVocab = 0 } = ds[0].shape;
  if (ds.some((d) => d.shape.K !== K || (d.shape.condLength ?? 0) !== condLength || (d.shape.mapVocab ?? 0) !== mapVocab)) {
    throw new Error('the scales of the chain disagree on K or the conditioning');
  }
  if (ds.some((d) => d.training)) throw new Error('sampling needs the models in eval mode (denoiser.eval())');
  return { K, T, condLength, mapVocab };
}

/** Each scale's settings: `settings` overridden by `scales[t]`, validated. */
export function scaleSettings(chain: SamplingChain, o: RunOptions): Record<number, Required<ScaleSettings>> {
  const { K, T } = chainInfo(chain);
  for (const t of Object.keys(o.scales ?? {})) {
    if (!(Number(t) >= 1 && Number(t) <= T && Number.isInteger(Number(t)))) throw new RangeError(`settings for scale ${t}: the chain has scales 1..${T}`);
  }
  const out: Record<number, Required<ScaleSettings>> = {};
  const given = (x?: ScaleSettings) => Object.fromEntries(Object.entries(x ?? {}).filter(([, v]) => v !== undefined)) as ScaleSettings;
  for (let t = 1; t <= T; t++) out[t] = resolveSettings({ ...chain.settings, ...given(o.settings), ...given(o.scales?.[t]) }, K, `scale ${t}`);
  return out;
}

/** Unless the caller brought a generator: seeds the global one with `seed`, or a fresh one, and returns it. */
export function runSeed(o: Pick<RunOptions, 'generator' | 'seed'>): number | undefined {
  return o.generator ? undefined : seedGenerator(o.seed);
}

/** Seeds the global generator with `seed`, or a fresh one; returns it. */
export function seedGenerator(seed?: number): number {
  const s = seed ?? randomInt(2 ** 31);
  if (!Number.isSafeInteger(s) || s < 0) throw new RangeError(`seed must be a non-negative integer, got ${s}`);
  manualSeed(s);
  return s;
}

/** Checks conditioning tokens against the chain, the batch and the grid [H, W] sampled (a label map covers it). */
export function checkCond(chain: SamplingChain, batch: number, grid: readonly [number, number], cond?: Tensor): void {
  const { condLength, mapVocab } = chainInfo(chain);
  const length = mapVocab ? grid[0] * grid[1] : condLength;
  const what = mapVocab ? `label-map token(s) per image, one per position of the ${grid.join('×')} grid` : 'conditioning token(s) per image';
  if ((condLength || mapVocab) && !cond) throw new Error(`this chain is conditional: pass ${length} ${what}`);
  if (cond && (cond.ndim !== 2 || cond.size(0) !== batch || cond.size(1) !== length)) {
    throw new Error(`conditioning must be [${batch}, ${length}] tokens${mapVocab ? ` (${what})` : ''}, got [${cond.shape.join(', ')}]`);
  }
  if (cond && mapVocab && cond.numel > 0 && (cond.min().item() < 0 || cond.max().item() >= mapVocab)) throw new RangeError(`label-map tokens must lie in [0, ${mapVocab})`);
}

/**
 * x_{t-1} ~ p_θ(· | x_t, c) for x_t [B, H, W] → [B, H, W] int64.
 * - positions in raster order; at each: logits [B, K] → temperature / top-k / top-p → one draw;
 * - `fixed` tokens replace the draw (and positions fixed in every row skip the model).
 */
export function denoiseScale(d: Denoiser, xt: Tensor, o: ScaleOptions): Tensor {
  const [B, H, W] = xt.shape as [number, number, number];
  const device = d.device;
  xt = xt.to(device);
  const [h, w] = o.tokenShape;
  if (H < h || W < w) throw new RangeError(`a ${H}×${W} grid is smaller than the ${h}×${w} grid the models were trained on`);
  const N = H * W;
  return noGrad(() => {
    const fixed = o.fixed && { keep: o.fixed.keep.to(device).expand(B, H, W).reshape(B, N), x0: o.fixed.x0.to(device).reshape(B, N) }; // [B, N]
    const xtm1 = fixed ? where(fixed.keep, fixed.x0, 0) : zeros([B, N], { dtype: 'int64', device }); // written in place below
    const skip = fixed ? fixed.keep.all(0).toNumbers() : new Array<number>(N).fill(0);
    if (skip.every(Boolean)) return xtm1.view(B, H, W);
    const g = o.guidance;
    if (g?.nullCond && !o.cond) throw new Error('classifier-free guidance needs conditioning tokens');
    const open = (model: Denoiser, x: Tensor, cond?: Tensor) => {
      const run = { ...o, cond };
      return H === h && W === w ? openDecoder(model, x.reshape(x.size(0), N), run) : openWindow(model, x, run);
    };
    let logitsAt: (n: number) => Tensor, decoders: ScaleDecoder[];
    if (g?.nullCond) {
      // classifier-free: one pass over [conditioned; null-conditioned] copies of the batch
      const both = (x: Tensor) => cat([x, x], 0);
      const decoder = open(d, both(xt), cat([o.cond!.to(device), g.nullCond.to(device).expand(B, o.cond!.size(1))], 0));
      decoders = [decoder];
      logitsAt = (n) => {
        const l = decoder.logitsAt(both(xtm1), n);
        return guide(l.narrow(0, 0, B), l.narrow(0, B, B), g.scale);
      };
    } else if (g?.weak) {
      // autoguidance: the weaker model of this scale decodes the same x_{t-1} alongside
      if (g.weak.t !== d.t) throw new Error(`scale ${d.t} guided by a model of scale ${g.weak.t}`);
      const cond = o.cond?.to(device);
      const strong = open(d, xt, cond);
      let weak: ScaleDecoder;
      try {
        weak = open(g.weak, xt, cond);
      } catch (e) {
        strong.dispose(); // the chain's KV cache is not left behind
        throw e;
      }
      decoders = [strong, weak];
      logitsAt = (n) => guide(strong.logitsAt(xtm1, n), weak.logitsAt(xtm1, n), g.scale);
    } else {
      const decoder = open(d, xt, o.cond?.to(device));
      decoders = [decoder];
      logitsAt = (n) => decoder.logitsAt(xtm1, n);
    }
    try {
      for (let n = 0; n < N; n++) {
        if (skip[n]) continue;
        o.signal?.throwIfAborted();
        tidy(() => {
          let token = drawTokens(logitsAt(n), o.settings); // [B]
          if (fixed) token = where(fixed.keep.select(1, n), fixed.x0.select(1, n), token);
          xtm1.select(1, n).copy_(token);
        });
      }
    } finally {
      for (const decoder of decoders) decoder.dispose();
    }
    return xtm1.view(B, H, W);
  });
}

/** Guided logits l_u + s·(l_c − l_u). */
function guide(lc: Tensor, lu: Tensor, s: number): Tensor {
  return lu.add(lc.sub(lu).mul(s));
}

/** The device of the chain's models (that of scale 1; every scale must share it). */
export function chainDevice(chain: SamplingChain): string {
  const device = chain.denoisers[0]!.device;
  const other = chain.denoisers.find((d) => d.device !== device);
  if (other) throw new Error(`the chain's scales live on different devices: scale 1 on ${device}, scale ${other.t} on ${other.device}`);
  return device;
}

/**
 * Samples B images' token grids from the chain, on the models' device:
 * - x_T ~ uniform over [0, K) (β_T = 1 in every official schedule), [B, H, W];
 * - for t = T … 1: x_{t-1} = denoiseScale(model_t, x_t);
 * - returns x_0 (and every x_t when asked).
 */
export function sample(chain: SamplingChain, o: SampleOptions): SampleResult {
  const { K, T } = chainInfo(chain);
  if (!(Number.isInteger(o.batch) && o.batch >= 1)) throw new RangeError(`batch must be a positive integer, got ${o.batch}`);
  const [H, W] = o.grid ?? chain.tokenShape;
  checkCond(chain, o.batch, [H, W], o.cond);
  const settings = scaleSettings(chain, o);
  const guidance = runGuidance(chain, o);
  const seed = runSeed(o);
  return withGenerator(o.generator, () => noGrad(() => tidy(() => {
    let x = randint(0, K, [o.batch, H, W], { device: chainDevice(chain) });
    const xs = [x];
    for (let t = T; t >= 1; t--) {
      x = denoiseScale(chain.denoisers[t - 1], x, {
        cond: o.cond, guidance: guidanceAt(guidance, t), settings: settings[t], decoding: o.decoding ?? 'cached', tokenShape: chain.tokenShape, signal: o.signal,
      });
      xs.push(x);
      o.onScale?.(t, 0, x);
    }
    return { tokens: x, seed, settings, intermediates: o.intermediates ? xs : undefined };
  })));
}
