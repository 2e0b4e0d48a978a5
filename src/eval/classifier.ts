/**
 * The feature classifier that sample metrics are measured with (no Inception network exists offline,
 * DESIGN §7): a small CNN trained per dataset by the project, kept beside the model with its test accuracy.
 *
 *   x [B, C, R, R] in [-1, 1]
 *   → conv3×3(C→32) → ReLU → conv3×3(32→32) → ReLU → avgpool 2      [B, 32, R/2, R/2]
 *   → conv3×3(32→64) → ReLU → conv3×3(64→64) → ReLU → avgpool 2     [B, 64, R/4, R/4]
 *   → flatten → linear(64·(R/4)² → 128) → ReLU                       [B, 128]  features (Fréchet distance)
 *   → dropout 0.3 → linear(128 → classes)                            [B, classes] logits
 *
 * Trained with AdamW and cross-entropy on the dataset's training split with random shifts of up to
 * 2 pixels (so that it judges shapes, not exact placement), cosine-decayed learning rate.
 */
import { type Tensor, cat, crossEntropy, dropout, avgPool2d, noGrad, tidy, tensor, pad, saveSafetensors, loadSafetensors, manualSeed } from '../torch/index.js';
import { Module, Conv2d, Linear, ModuleList } from '../nn/index.js';
import { AdamW, warmupCosine } from '../optim/index.js';
import { batches, mulberry32, type ImageDataset } from '../data/index.js';
import { gaussianStats, type GaussianStats } from './frechet.js';

export const CLASSIFIER_FORMAT = 'imagebart-classifier/1';

export interface ClassifierConfig {
  channels: 1 | 3;
  resolution: number;
  classes: number;
  /** Feature width (default 128). */
  features?: number;
}

/** What the classifier file records beside the weights. */
export interface ClassifierInfo {
  format: typeof CLASSIFIER_FORMAT;
  config: Required<ClassifierConfig>;
  dataset: string;
  classNames: string[];
  /** Top-1 accuracy on the dataset's test split, and on how many images. */
  testAccuracy: number;
  testImages: number;
  steps: number;
  seconds: number;
  /** Images of the training split whose feature statistics are the reference for Fréchet distances. */
  referenceImages: number;
}

export class FeatureClassifier extends Module {
  readonly convs: ModuleList<Conv2d>;
  readonly fc: Linear;
  readonly head: Linear;
  readonly config: Required<ClassifierConfig>;

  constructor(config: ClassifierConfig) {
    super();
    const c: Required<ClassifierConfig> = { features: 128, ...config };
    if (c.resolution % 4 !== 0) throw new Error(`the classifier needs a resolution divisible by 4, got ${c.resolution}`);
    this.config = c;
    this.convs = this.module('convs', new ModuleList([
      new Conv2d(c.channels, 32, 3, { padding: 1 }), new Conv2d(32, 32, 3, { padding: 1 }),
      new Conv2d(32, 64, 3, { padding: 1 }), new Conv2d(64, 64, 3, { padding: 1 }),
    ]));
    this.fc = this.module('fc', new Linear(64 * (c.resolution / 4) ** 2, c.features));
    this.head = this.module('head', new Linear(c.features, c.classes));
  }

  /** Penultimate features [B, features] and logits [B, classes]. */
  forward(x: Tensor): { features: Tensor; logits: Tensor } {
    let h = x;
    for (let i = 0; i < 4; i++) {
      h = this.convs.at(i).forward(h).relu();
      if (i % 2 === 1) h = avgPool2d(h, 2);
    }
    const features = this.fc.forward(h.flatten(1)).relu();
    return { features, logits: this.head.forward(dropout(features, 0.3, this.training)) };
  }
}

export interface ClassifierTrainOptions {
  steps?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Called every `logEvery` steps. */
  onProgress?: (step: number, steps: number, loss: number) => void;
  logEvery?: number;
}

/** A batch's images [B, C, R, R], each shifted by up to `shift` pixels (zero-padded at -1, the background). */
function shifted(images: Float32Array, B: number, C: number, R: number, shift: number, rand: () => number): Tensor {
  const x = tensor(images, [B, C, R, R]);
  if (shift === 0) return x;
  const padded = pad(x, [shift, shift, shift, shift], 'constant', -1);
  const rows = [];
  for (let b = 0; b < B; b++) {
    const dy = Math.floor(rand() * (2 * shift + 1)), dx = Math.floor(rand() * (2 * shift + 1));
    rows.push(padded.narrow(0, b, 1).narrow(2, dy, R).narrow(3, dx, R));
  }
  return cat(rows);
}


/** Trains a classifier on `train` and measures its accuracy on `test`. */
export function trainClassifier(train: ImageDataset, test: ImageDataset, o: ClassifierTrainOptions = {}): TrainedClassifier {
  const { steps = 1500, batchSize = 128, lr = 2e-3, seed = 0, logEvery = 100 } = o;
  if (!train.classes || train.classes.length < 2) throw new Error(`${train.name} has no class labels: the feature classifier needs a labelled dataset`);
  manualSeed(seed);
  const started = performance.now();
  const model = new FeatureClassifier({ channels: train.channels, resolution: train.resolution, classes: train.classes.length });
  const opt = new AdamW(model.parameters(), { lr, weightDecay: 1e-4 });
  const lrAt = warmupCosine({ base: lr, warmup: Math.ceil(steps / 30), total: steps });
  const rand = mulberry32(seed + 1);
  const { channels: C, resolution: R } = train;
  let step = 0;
  for (let epoch = 0; step < steps; epoch++) {
    for (const b of batches(train, batchSize, { seed: seed + epoch, dropLast: true })) {
      if (step >= steps) break;
      if (!b.labels) throw new Error(`${train.name}: batch without labels`);
      opt.lr = lrAt(step);
      const loss = tidy(() => {
        const { logits } = model.forward(shifted(b.images, b.indices.length, C, R, 2, rand));
        const l = crossEntropy(logits, tensor(b.labels!, [b.labels!.length]).long());
        l.backward();
        return l.item();
      });
      opt.stepUpdate();
      opt.zeroGrad();
      step += 1;
      if (step % logEvery === 0 || step === steps) o.onProgress?.(step, steps, loss);
    }
  }
  model.eval();
  const { probs, labels } = classify(model, test);
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (argmaxRow(probs, i, model.config.classes) === labels[i]) correct++;
  const ref = classify(model, train);
  const reference = gaussianStats(ref.features);
  ref.features.dispose();
  const info: ClassifierInfo = {
    format: CLASSIFIER_FORMAT, config: model.config, dataset: train.name, classNames: [...train.classes],
    testAccuracy: correct / labels.length, testImages: labels.length, steps, seconds: (performance.now() - started) / 1000,
    referenceImages: train.size,
  };
  return { model, info, reference };
}

/** Index of the largest of row i of a [N, K] row-major array. */
export function argmaxRow(a: Float32Array, i: number, K: number): number {
  let best = 0;
  for (let k = 1; k < K; k++) if (a[i * K + k] > a[i * K + best]) best = k;
  return best;
}

/** Features [N, D] (as a tensor), class probabilities [N·K] and labels of every image of a dataset. */
export function classify(model: FeatureClassifier, ds: ImageDataset, batchSize = 256): { features: Tensor; probs: Float32Array; labels: Int32Array } {
  const parts: Tensor[] = [];
  const probs = new Float32Array(ds.size * model.config.classes);
  const labels = new Int32Array(ds.size).fill(-1);
  let at = 0;
  for (const b of batches(ds, batchSize, { shuffle: false })) {
    const n = b.indices.length;
    const r = classifyImages(model, tensor(b.images, [n, ds.channels, ds.resolution, ds.resolution]));
    parts.push(r.features);
    probs.set(r.probs, at * model.config.classes);
    if (b.labels) labels.set(b.labels, at);
    at += n;
  }
  const features = tidy(() => cat(parts).keep());
  for (const p of parts) p.dispose();
  return { features, probs, labels };
}

/** Features [B, D] and probabilities [B·K] of images [B, C, R, R] in [-1, 1]. */
export function classifyImages(model: FeatureClassifier, images: Tensor): { features: Tensor; probs: Float32Array } {
  const { channels, resolution } = model.config;
  const [, C, H, W] = images.shape;
  if (C !== channels || H !== resolution || W !== resolution) {
    throw new Error(`the classifier reads ${channels}×${resolution}×${resolution} images, got ${C}×${H}×${W}`);
  }
  return noGrad(() => tidy(() => {
    const { features, logits } = model.forward(images);
    return { features: features.keep(), probs: logits.softmax(1).toFloat32Array() };
  }));
}

/** A classifier with what it was measured on and the reference feature statistics of its training split. */
export interface TrainedClassifier {
  model: FeatureClassifier;
  info: ClassifierInfo;
  reference: GaussianStats;
}

const REF_MU = 'reference.mu', REF_SIGMA = 'reference.sigma';

/** Weights, `reference.mu` / `reference.sigma` (float64) and the info as metadata, in one safetensors file. */
export function saveClassifier(path: string, c: TrainedClassifier): void {
  const D = c.reference.dim;
  const tensors = c.model.stateDict();
  tensors.set(REF_MU, tensor(c.reference.mu, [D]));
  tensors.set(REF_SIGMA, tensor(c.reference.sigma, [D, D]));
  saveSafetensors(path, tensors, { info: JSON.stringify(c.info) });
  tensors.get(REF_MU)!.dispose();
  tensors.get(REF_SIGMA)!.dispose();
}

export function loadClassifier(path: string): TrainedClassifier {
  const { tensors, metadata } = loadSafetensors(path);
  let info: ClassifierInfo;
  try {
    info = JSON.parse(metadata.info ?? 'null') as ClassifierInfo;
  } catch {
    throw new Error(`${path}: unreadable classifier metadata`);
  }
  if (info?.format !== CLASSIFIER_FORMAT) throw new Error(`${path} is not a feature classifier (format ${JSON.stringify(info?.format)}, expected ${CLASSIFIER_FORMAT})`);
  const mu = tensors.get(REF_MU), sigma = tensors.get(REF_SIGMA);
  if (!mu || !sigma) throw new Error(`${path}: the classifier file lacks its reference statistics (${REF_MU}, ${REF_SIGMA})`);
  const reference: GaussianStats = { mu: mu.double().toArray() as Float64Array, sigma: sigma.double().toArray() as Float64Array, dim: mu.numel, n: info.referenceImages };
  tensors.delete(REF_MU);
  tensors.delete(REF_SIGMA);
  const model = new FeatureClassifier(info.config);
  model.loadStateDict(tensors);
  for (const t of [...tensors.values(), mu, sigma]) t.dispose();
  model.eval();
  return { model, info, reference };
}
