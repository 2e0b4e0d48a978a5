/**
 * Classifier rejection sampling (as for the paper's class-conditional ImageNet results): for an
 * acceptance rate r, draw ⌈n / r⌉ samples of each requested class, score each with the feature
 * classifier's p(class | x), and keep the n most probable — the threshold is the n-th best score, so
 * exactly the requested share passes, and the realised rate n / drawn is reported beside it.
 * Batch i of the draws comes from its own generator, streamSeed(seed, i) (torch/random.ts).
 */
import { Generator, streamSeed } from '../torch/index.js';
import { encodeConditions, NONE } from '../chain/index.js';
import { sample, decodeImages, type SamplingChain, type FirstStage, type Guidance, type ScaleSettings, type StopSignal, type Decoding } from '../sample/index.js';
import { classifyImages, type FeatureClassifier } from './classifier.js';

export interface RejectionOptions {
  /** The class of each requested image. */
  labels: readonly number[];
  /** Share of drawn samples kept, in (0, 1]. */
  acceptRate: number;
  batchSize?: number;
  /** Base seed (64-bit): batch i draws from streamSeed(seed, i). */
  seed?: bigint | number;
  guidance?: Guidance;
  settings?: ScaleSettings;
  /** Per-scale overrides of `settings`, by t. */
  scales?: Record<number, ScaleSettings>;
  /** Default 'cached'. */
  decoding?: Decoding;
  onProgress?: (drawn: number, total: number) => void;
  /** Checked before every token. */
  signal?: StopSignal;
}

export interface RejectionResult {
  /** Kept images, CHW float32 in [-1, 1], in the order of `labels`. */
  images: Float32Array[];
  /** Their token grids [h·w] each. */
  tokens: number[][];
  /** p(label | image) of each kept image. */
  scores: number[];
  drawn: number;
  kept: number;
  /** kept / drawn. */
  acceptRate: number;
  /** Lowest kept score per class. */
  thresholds: Record<number, number>;
  channels: 1 | 3;
  resolution: number;
  /** Each batch's generator seed and size, in drawing order. */
  batches: { seed: string; images: number }[];
  /** The settings each scale ran with, by t. */
  settings: Record<number, Required<ScaleSettings>>;
}

export function rejectionSample(classifier: FeatureClassifier, chain: SamplingChain, stage: FirstStage, o: RejectionOptions): RejectionResult {
  const { labels, acceptRate: r, batchSize = 50, seed = 0 } = o;
  if (!(r > 0 && r <= 1)) throw new RangeError(`the acceptance rate must lie in (0, 1], got ${r}`);
  const c = chain.conditioning ?? NONE;
  if (c.kind !== 'class') throw new Error('rejection sampling keeps samples of a requested class: it needs a class-conditional chain');
  const K = classifier.config.classes;
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => byClass.set(l, [...(byClass.get(l) ?? []), i]));
  const total = [...byClass.values()].reduce((a, idx) => a + Math.ceil(idx.length / r), 0);
  const { resolution: R, outCh } = stage.config.ddconfig;
  const images: Float32Array[] = new Array(labels.length), tokens: number[][] = new Array(labels.length), scores: number[] = new Array(labels.length);
  const thresholds: Record<number, number> = {};
  const batches: RejectionResult['batches'] = [];
  let settings: RejectionResult['settings'] = {};
  let drawn = 0;
  for (const [label, slots] of byClass) {
    const want = Math.ceil(slots.length / r);
    const pool: { score: number; image: Float32Array; tokens: number[] }[] = [];
    for (let s = 0; s < want; s += batchSize) {
      const B = Math.min(batchSize, want - s);
      const cond = encodeConditions(c, new Array<number>(B).fill(label))!;
      const generator = new Generator(streamSeed(BigInt(seed), batches.length));
      const out = sample(chain, { batch: B, generator, cond, guidance: o.guidance, settings: o.settings, scales: o.scales, decoding: o.decoding, signal: o.signal });
      batches.push({ seed: generator.seed.toString(), images: B });
      settings = out.settings;
      const x = decodeImages(stage, out.tokens), data = x.toFloat32Array();
      const { features, probs } = classifyImages(classifier, x);
      features.dispose();
      x.dispose();
      const grids = out.tokens.toNumbers(), per = grids.length / B, plane = outCh * R * R;
      for (let b = 0; b < B; b++) pool.push({ score: probs[b * K + label], image: data.slice(b * plane, (b + 1) * plane), tokens: grids.slice(b * per, (b + 1) * per) });
      out.tokens.dispose();
      cond.dispose();
      drawn += B;
      o.onProgress?.(drawn, total);
    }
    pool.sort((a, b) => b.score - a.score);
    slots.forEach((slot, k) => {
      images[slot] = pool[k].image;
      tokens[slot] = pool[k].tokens;
      scores[slot] = pool[k].score;
    });
    thresholds[label] = pool[slots.length - 1].score;
  }
  return { images, tokens, scores, drawn, kept: labels.length, acceptRate: labels.length / drawn, thresholds, channels: outCh as 1 | 3, resolution: R, batches, settings };
}
