/**
 * Sample-quality metrics on the feature classifier (DESIGN §7), for a set of N images:
 *
 * - Fréchet distance of their features to the reference statistics (the classifier's training split);
 * - an Inception-score-like score exp(E_x KL(p(y|x) ‖ p(y))) with p(y) the mean prediction: high when
 *   each image is confidently one class and the classes are balanced (at most the number of classes);
 * - the fraction classified with confidence max_y p(y|x) > 0.9;
 * - accuracy against intended labels (class-conditional samples, or completions whose label should be kept);
 * - for completions, L1 and PSNR over the repainted pixels against the originals, images in [-1, 1]
 *   (PSNR = 10 log10(2² / MSE), the peak-to-peak range being 2).
 *
 * Images are fed in batches to a `FeatureSet`, which keeps only features and class probabilities.
 */
import { type Tensor, cat, tidy } from '../torch/index.js';
import { classifyImages, argmaxRow, type FeatureClassifier } from './classifier.js';
import { gaussianStats, frechetDistance, type GaussianStats } from './frechet.js';

export const CONFIDENT = 0.9;

export interface SampleMetrics {
  /** Images scored. */
  n: number;
  frechet: number;
  inceptionScore: number;
  /** Fraction with max_y p(y|x) > 0.9. */
  confident: number;
  /** Fraction classified as their intended label, when labels were given. */
  accuracy?: number;
  /** The same per intended label (labels that occur), when labels were given. */
  classAccuracy?: Record<number, number>;
}

/** Features and class probabilities of images added batch by batch. */
export class FeatureSet {
  private readonly features: Tensor[] = [];
  private readonly probs: Float32Array[] = [];
  private readonly labels: number[] = [];
  n = 0;

  constructor(readonly classifier: FeatureClassifier) {}

  /** Adds images [B, C, R, R] in [-1, 1], with their intended labels when there are some. */
  add(images: Tensor, labels?: ArrayLike<number>): void {
    const r = classifyImages(this.classifier, images);
    this.features.push(r.features);
    this.probs.push(r.probs);
    if (labels) {
      if (labels.length !== images.size(0)) throw new Error(`${labels.length} labels for ${images.size(0)} images`);
      this.labels.push(...Array.from(labels));
    }
    this.n += images.size(0);
  }

  /** Every image's probabilities, [N·K] row-major. */
  allProbs(): Float32Array {
    const out = new Float32Array(this.n * this.classifier.config.classes);
    let at = 0;
    for (const p of this.probs) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  stats(): GaussianStats {
    return tidy(() => gaussianStats(cat(this.features, 0)));
  }

  /** The metrics of this set against `reference`. */
  metrics(reference: GaussianStats): SampleMetrics {
    const K = this.classifier.config.classes;
    const probs = this.allProbs();
    const m: SampleMetrics = {
      n: this.n, frechet: frechetDistance(this.stats(), reference),
      inceptionScore: inceptionScore(probs, K), confident: confidentFraction(probs, K),
    };
    if (this.labels.length) {
      if (this.labels.length !== this.n) throw new Error('labels were given for some batches only');
      m.accuracy = accuracy(probs, K, this.labels);
      m.classAccuracy = classAccuracy(probs, K, this.labels);
    }
    return m;
  }

  dispose(): void {
    for (const f of this.features) f.dispose();
    this.features.length = 0;
  }
}

/** exp(mean_i KL(p_i ‖ p̄)) over N rows of K probabilities. */
export function inceptionScore(probs: Float32Array, K: number): number {
  const N = probs.length / K;
  const mean = new Float64Array(K);
  for (let i = 0; i < N; i++) for (let k = 0; k < K; k++) mean[k] += probs[i * K + k] / N;
  let kl = 0;
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < K; k++) {
      const p = probs[i * K + k];
      if (p > 0) kl += p * (Math.log(p) - Math.log(mean[k]));
    }
  }
  return Math.exp(kl / N);
}

/** Fraction of rows whose largest probability exceeds `threshold`. */
export function confidentFraction(probs: Float32Array, K: number, threshold = CONFIDENT): number {
  const N = probs.length / K;
  let c = 0;
  for (let i = 0; i < N; i++) if (probs[i * K + argmaxRow(probs, i, K)] > threshold) c++;
  return c / N;
}

/** Fraction of rows whose most probable class is `labels[i]`. */
export function accuracy(probs: Float32Array, K: number, labels: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < labels.length; i++) if (argmaxRow(probs, i, K) === labels[i]) c++;
  return c / labels.length;
}

/** Accuracy per intended label: for each label y that occurs, the fraction of its rows classified as y. */
export function classAccuracy(probs: Float32Array, K: number, labels: ArrayLike<number>): Record<number, number> {
  const hits = new Map<number, [number, number]>();
  for (let i = 0; i < labels.length; i++) {
    const h = hits.get(labels[i]) ?? [0, 0];
    h[0] += argmaxRow(probs, i, K) === labels[i] ? 1 : 0;
    h[1]++;
    hits.set(labels[i], h);
  }
  return Object.fromEntries([...hits].sort(([a], [b]) => a - b).map(([y, [c, n]]) => [y, c / n]));
}

/** L1 and PSNR of `a` against `b` (same-shape CHW arrays in [-1, 1]) over the pixels where `region` is 1. */
export function regionError(a: Float32Array, b: Float32Array, region: ArrayLike<number>): { l1: number; psnr: number; pixels: number } {
  if (a.length !== b.length || region.length !== a.length) throw new Error('regionError: arrays of different sizes');
  let l1 = 0, se = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    if (!region[i]) continue;
    const d = a[i] - b[i];
    l1 += Math.abs(d);
    se += d * d;
    n++;
  }
  if (n === 0) return { l1: 0, psnr: Infinity, pixels: 0 };
  return { l1: l1 / n, psnr: 10 * Math.log10(4 / Math.max(se / n, 1e-12)), pixels: n };
}
