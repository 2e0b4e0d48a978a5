/** Tiny random-weight chains and first stages for the sampling tests. */
import assert from 'node:assert/strict';
import { type Tensor, manualSeed, tensor, noGrad, tidy } from '../../src/torch/index.js';
import { NONE, shapeOfConditioning, textConditioning, createDenoiser, type ChainShape, type Conditioning } from '../../src/chain/index.js';
import { makeSchedule, type ScheduleSpec } from '../../src/diffusion/index.js';
import type { SamplingChain, FirstStage } from '../../src/sample/index.js';
import { join } from 'node:path';
import { EMA } from '../../src/optim/index.js';
import { saveScaleCheckpoint, chainManifest, writeManifest } from '../../src/chain/index.js';
import { VQModel, makeConfig, saveVQModel } from '../../src/vqgan/index.js';

export interface TinyChainOptions {
  K?: number;
  T?: number;
  shape?: [number, number];
  classes?: number;
  /** A class chain with a null class (id `classes`), as trained with dropped labels. */
  nullable?: boolean;
  residual?: boolean;
  /** A segmentation chain whose label maps have K codes (nullable: with the null map). */
  segmentation?: { K: number; nullable?: boolean };
  /** A text chain on these captions' tokens (caption length 8, nullable). */
  captions?: string[];
  schedule?: ScheduleSpec;
  dim?: number;
  seed?: number;
}

/** A chain of random models: encoder-decoders (1+1 layers) at t < T, a 1-layer GPT at T. */
export function tinyChain(o: TinyChainOptions = {}): SamplingChain {
  const { K = 16, T = 3, shape: [h, w] = [4, 4], classes, dim = 16 } = o;
  manualSeed(o.seed ?? 0);
  const schedule = makeSchedule(o.schedule ?? 'geometric', T);
  const conditioning: Conditioning = classes ? { kind: 'class', classes, nullable: !!o.nullable }
    : o.segmentation ? { kind: 'segmentation', vqgan: 'seg-vqgan.safetensors', K: o.segmentation.K, labels: ['background', 'stroke', 'outline'], nullable: !!o.segmentation.nullable }
      : o.captions ? textConditioning(o.captions, 8, true) : NONE;
  const shape: ChainShape = { K, T, tokens: h * w, ...shapeOfConditioning(conditioning) };
  const denoisers = Array.from({ length: T }, (_, i) => {
    const t = i + 1;
    const model = t === T
      ? { type: 'gpt' as const, dim, heads: 2, depth: 1 }
      : { type: o.residual ? 'residual-xtransformer' as const : 'xtransformer' as const, dim, heads: 2, dimHead: 8, encoderDepth: 1, decoderDepth: 1 };
    const d = createDenoiser(t, model, shape, schedule).eval();
    // random init gives near-uniform logits: sharpen them so that sampling decisions depend on the model
    noGrad(() => { for (const p of d.parameters()) if (p.ndim === 2) p.mul_(8); });
    return d;
  });
  return { denoisers, schedule, tokenShape: [h, w], conditioning };
}

/**
 * A first stage whose decoder paints each token as an f×f grey patch of level 2k/(K-1) − 1 and whose
 * encoder reads the nearest level back: pixels depend on their own token only.
 */
export function patchStage(K: number, [h, w]: [number, number], f = 4): FirstStage {
  const R = h * f;
  return {
    config: { ddconfig: { resolution: R, inChannels: 1, outCh: 1 } },
    decodeIndices(idx: Tensor): Tensor {
      const [B, H, W] = idx.shape;
      const level = idx.float().mul(2 / (K - 1)).sub(1).view(B, 1, H, 1, W, 1);
      return level.expand(B, 1, H, f, W, f).reshape(B, 1, H * f, W * f);
    },
    encodeToIndices(x: Tensor): Tensor {
      const [B] = x.shape;
      const mean = x.view(B, h, f, w, f).mean([2, 4]); // [B, h, w]
      return mean.add(1).mul((K - 1) / 2).round().clamp(0, K - 1).long();
    },
  };
}

/** max |a − b| ≤ tol · max(1, max |b|) (float32 round-off grows with the logits' size); returns the relative error. */
export function assertClose(a: Tensor, b: Tensor, tol: number, what: string): number {
  return tidy(() => {
    assert.deepEqual(a.shape, b.shape, `${what}: shapes`);
    const err = a.float().sub(b.float()).abs().max().item() / Math.max(1, b.float().abs().max().item());
    assert.ok(err <= tol, `${what}: relative error ${err} > ${tol}`);
    return err;
  });
}

export const ids = (xs: number[], shape: number[]): Tensor => tensor(BigInt64Array.from(xs, BigInt), shape);

/** A random 16×16 → 4×4 VQGAN of K codes reading 3 channels. */
const tinyVQ = (K: number) => new VQModel(makeConfig({
  ddconfig: { resolution: 16, inChannels: 3, outCh: 3, ch: 8, chMult: [1, 2, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 4 },
  nEmbed: K, embedDim: 8,
}));

/**
 * A saved chain in `dir` (chain.json, scale<t>.safetensors, vqgan.safetensors): random scales whose
 * EMA weights are the training weights + 0.5, and a random 16×16 → 4×4 RGB VQGAN. Returns the manifest.
 * `segmentation`: a segmentation chain, with a random label-map VQ model of that many codes (seg-vqgan.safetensors);
 * `classes`: a class chain of that many classes; `seed`: its random weights'.
 */
export function saveTinyChain(dir: string, { K = 16, T = 2, segmentation, classes, seed }: { K?: number; T?: number; segmentation?: { K: number; nullable?: boolean }; classes?: number; seed?: number } = {}): string {
  const chain = tinyChain({ K, T, segmentation, classes, seed });
  chain.denoisers.forEach((d) => {
    const ema = new EMA(d);
    noGrad(() => { for (const t of ema.shadow.values()) t.add_(0.5); });
    const model = d.t === T ? { type: 'gpt' as const, dim: 16, heads: 2, depth: 1 } : { type: 'xtransformer' as const, dim: 16, heads: 2, dimHead: 8, encoderDepth: 1, decoderDepth: 1 };
    saveScaleCheckpoint(join(dir, `scale${d.t}.safetensors`), d, { t: d.t, shape: d.shape, schedule: 'geometric', model }, { step: 1, ema });
  });
  manualSeed(1);
  saveVQModel(join(dir, 'vqgan.safetensors'), tinyVQ(K));
  if (segmentation) saveVQModel(join(dir, 'seg-vqgan.safetensors'), tinyVQ(segmentation.K));
  const manifest = join(dir, 'chain.json');
  writeManifest(manifest, chainManifest({
    vqgan: 'vqgan.safetensors', remap: null, K, T, schedule: 'geometric', tokenShape: [4, 4], conditioning: chain.conditioning ?? NONE,
    scales: Array.from({ length: T }, (_, i) => ({ t: i + 1, checkpoint: `scale${i + 1}.safetensors` })),
  }));
  return manifest;
}
