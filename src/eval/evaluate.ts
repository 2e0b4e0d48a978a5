/**
 * The evaluations `imagebart eval` runs, each scoring N images on the feature classifier against the
 * reference statistics of its training split (DESIGN §7):
 *
 * - `evaluateReference`: the two reference points of every sample metric — N real held-out images
 *   (the floor) and the VQGAN's reconstructions of the same images (the best any chain on that VQGAN
 *   can reach);
 * - `evaluateSamples`: N samples of a chain — unconditional, with the null class of a chain trained
 *   with dropped labels, or class-conditional with balanced labels (then accuracy = conditional
 *   accuracy), optionally with classifier-free guidance;
 * - `evaluateCompletion`: N held-out images with a named region repainted by the chain (masked
 *   editing, no compositing): Fréchet distance of the completed images, L1/PSNR over the repainted
 *   pixels against the originals, and how often the classifier still sees the true label.
 * Images are drawn by a seeded permutation of the held-out split; every result records N and the seed.
 */
import { type Tensor, tensor, noGrad, tidy, full } from '../torch/index.js';
import { permutation, collate, type ImageDataset } from '../data/index.js';
import {
  sample, maskedEdit, decodeTokens, namedMask, tokenMask, type SamplingChain, type FirstStage, type NamedMask, type ScaleSettings,
} from '../sample/index.js';
import type { TrainedClassifier } from './classifier.js';
import { FeatureSet, regionError, type SampleMetrics } from './metrics.js';

export interface EvalCommon {
  /** Images to score (default 1000). */
  count?: number;
  batchSize?: number;
  seed?: number;
  /** Called after each batch with images done so far. */
  onProgress?: (done: number, total: number) => void;
}

/** How a class-conditional chain is sampled: every class in turn, one class, or its null class. */
export type ClassChoice = 'balanced' | 'null' | number;

export interface ChainEvalOptions extends EvalCommon {
  classChoice?: ClassChoice;
  /** Classifier-free guidance scale (needs the null class); 1 = plain conditional. */
  guidance?: number;
  settings?: ScaleSettings;
}

export interface EvalRecord extends SampleMetrics {
  kind: 'real' | 'reconstruction' | 'samples' | 'completion';
  seed: number;
  seconds: number;
  [extra: string]: unknown;
}

function checkResolution(c: TrainedClassifier, channels: number, resolution: number, what: string): void {
  const { channels: C, resolution: R } = c.model.config;
  if (C !== channels || R !== resolution) {
    throw new Error(`${what} has ${channels}-channel ${resolution}×${resolution} images but the classifier (trained on ${c.info.dataset}) reads ${C}-channel ${R}×${R}`);
  }
}

/** The first `n` images of a seeded permutation of `ds`, in batches. */
function* heldOutBatches(ds: ImageDataset, n: number, batchSize: number, seed: number): Generator<{ images: Float32Array; labels?: Int32Array; count: number }> {
  if (n > ds.size) throw new Error(`${ds.name} has ${ds.size} images, fewer than the ${n} asked for`);
  const order = permutation(ds.size, seed).subarray(0, n);
  for (let s = 0; s < n; s += batchSize) {
    const b = collate(ds, order.subarray(s, Math.min(n, s + batchSize)));
    yield { images: b.images, labels: b.labels, count: b.indices.length };
  }
}

/** Real held-out images and their VQGAN reconstructions. */
export function evaluateReference(classifier: TrainedClassifier, stage: FirstStage, heldOut: ImageDataset, o: EvalCommon = {}): EvalRecord[] {
  const { count = 1000, batchSize = 100, seed = 0 } = o;
  const { resolution: R } = stage.config.ddconfig;
  checkResolution(classifier, heldOut.channels, heldOut.resolution, heldOut.name);
  if (R !== heldOut.resolution) throw new Error(`${heldOut.name} has ${heldOut.resolution}×${heldOut.resolution} images but the VQGAN reads ${R}×${R}`);
  const started = performance.now();
  const real = new FeatureSet(classifier.model), rec = new FeatureSet(classifier.model);
  let done = 0;
  for (const b of heldOutBatches(heldOut, count, batchSize, seed)) {
    noGrad(() => tidy(() => {
      const x = tensor(b.images, [b.count, heldOut.channels, R, R]);
      real.add(x, b.labels);
      rec.add(stage.decodeIndices(stage.encodeToIndices(x)).clamp(-1, 1), b.labels);
    }));
    done += b.count;
    o.onProgress?.(done, count);
  }
  const seconds = (performance.now() - started) / 1000;
  const out: EvalRecord[] = [
    { kind: 'real', ...real.metrics(classifier.reference), seed, seconds, data: heldOut.name },
    { kind: 'reconstruction', ...rec.metrics(classifier.reference), seed, seconds, data: heldOut.name },
  ];
  real.dispose();
  rec.dispose();
  return out;
}

/** Conditioning for B images of a chain, and the labels they should be classified as. */
function conditioning(chain: SamplingChain, choice: ClassChoice, classes: number | null, B: number, offset: number): { cond?: Tensor; labels?: number[] } {
  if (classes === null) {
    if (choice !== 'balanced' && choice !== 'null') throw new Error('class-conditional sampling asked of an unconditional chain');
    return {};
  }
  if (choice === 'null') {
    if (chain.nullClass === undefined) throw new Error('this chain was trained without dropped labels: it has no null class to sample unconditionally');
    return { cond: full([B, 1], chain.nullClass, { dtype: 'int64' }) };
  }
  const labels = Array.from({ length: B }, (_, i) => (choice === 'balanced' ? (offset + i) % classes : choice));
  if (labels.some((l) => !(Number.isInteger(l) && l >= 0 && l < classes))) throw new RangeError(`class ids must lie in 0..${classes - 1}`);
  return { cond: tensor(BigInt64Array.from(labels, BigInt), [B, 1]), labels };
}

/** N samples of the chain. */
export function evaluateSamples(classifier: TrainedClassifier, chain: SamplingChain, stage: FirstStage, classes: number | null, o: ChainEvalOptions = {}): EvalRecord {
  const { count = 1000, batchSize = 50, seed = 0, classChoice = 'balanced', guidance } = o;
  const { resolution: R, outCh } = stage.config.ddconfig;
  checkResolution(classifier, outCh, R, 'the chain\'s VQGAN');
  if (guidance !== undefined && chain.nullClass === undefined) throw new Error('classifier-free guidance needs a chain trained with dropped labels (a null class)');
  const started = performance.now();
  const set = new FeatureSet(classifier.model);
  for (let s = 0, i = 0; s < count; s += batchSize, i++) {
    const B = Math.min(batchSize, count - s);
    noGrad(() => tidy(() => {
      const { cond, labels } = conditioning(chain, classChoice, classes, B, s);
      const g = guidance !== undefined && cond && classChoice !== 'null' ? { scale: guidance, nullCond: full([1, 1], chain.nullClass!, { dtype: 'int64' }) } : undefined;
      const r = sample(chain, { batch: B, seed: seed + i, cond, guidance: g, settings: o.settings });
      const { data } = decodeTokens(stage, r.tokens);
      set.add(tensor(data, [B, outCh, R, R]).clamp(-1, 1), labels);
    }));
    o.onProgress?.(Math.min(count, s + B), count);
  }
  const rec: EvalRecord = {
    kind: 'samples', ...set.metrics(classifier.reference), seed, seconds: (performance.now() - started) / 1000,
    classChoice, ...(guidance !== undefined ? { guidance } : {}), settings: o.settings ?? {},
  };
  set.dispose();
  return rec;
}

export interface CompletionOptions extends ChainEvalOptions {
  mask?: NamedMask;
}

/** N held-out images with the `mask` region repainted by the chain. */
export function evaluateCompletion(classifier: TrainedClassifier, chain: SamplingChain, stage: FirstStage, classes: number | null, heldOut: ImageDataset, o: CompletionOptions = {}): EvalRecord {
  const { count = 1000, batchSize = 50, seed = 0, mask = 'upper-half', guidance } = o;
  const { resolution: R, outCh, inChannels } = stage.config.ddconfig;
  checkResolution(classifier, heldOut.channels, heldOut.resolution, heldOut.name);
  if (R !== heldOut.resolution || inChannels !== heldOut.channels) throw new Error(`${heldOut.name} has ${heldOut.channels}-channel ${heldOut.resolution}×${heldOut.resolution} images but the VQGAN reads ${inChannels}-channel ${R}×${R}`);
  const keepPixels = namedMask(mask, R);
  const repaint = new Uint8Array(outCh * R * R);
  for (let c = 0; c < outCh; c++) for (let p = 0; p < R * R; p++) repaint[c * R * R + p] = 1 - keepPixels[p];
  const started = performance.now();
  const set = new FeatureSet(classifier.model);
  let l1 = 0, psnr = 0, done = 0, i = 0;
  for (const b of heldOutBatches(heldOut, count, batchSize, seed)) {
    noGrad(() => tidy(() => {
      const x = tensor(b.images, [b.count, inChannels, R, R]);
      const x0 = stage.encodeToIndices(x).long();
      // completions keep the true label as the condition only when asked; by default a class chain completes with its null class
      const choice: ClassChoice = o.classChoice === 'balanced' && b.labels ? 'balanced' : 'null';
      const cond = classes === null ? undefined
        : choice === 'null' ? conditioning(chain, 'null', classes, b.count, 0).cond
          : tensor(BigInt64Array.from(b.labels!, BigInt), [b.count, 1]);
      const g = guidance !== undefined && cond && choice !== 'null' ? { scale: guidance, nullCond: full([1, 1], chain.nullClass!, { dtype: 'int64' }) } : undefined;
      const keep = tokenMask(keepPixels, R, chain.tokenShape);
      const edit = maskedEdit(chain, x0, keep, { seed: seed + i, cond, guidance: g, settings: o.settings });
      const { data } = decodeTokens(stage, edit.tokens);
      const plane = outCh * R * R;
      for (let k = 0; k < b.count; k++) {
        const e = regionError(data.subarray(k * plane, (k + 1) * plane), b.images.subarray(k * plane, (k + 1) * plane), repaint);
        l1 += e.l1;
        psnr += e.psnr;
      }
      set.add(tensor(data, [b.count, outCh, R, R]).clamp(-1, 1), b.labels);
    }));
    done += b.count;
    i++;
    o.onProgress?.(done, count);
  }
  const rec: EvalRecord = {
    kind: 'completion', ...set.metrics(classifier.reference), seed, seconds: (performance.now() - started) / 1000,
    mask, regionL1: l1 / done, regionPsnr: psnr / done, data: heldOut.name, settings: o.settings ?? {},
  };
  // with labels, FeatureSet's accuracy is the fraction of completions that keep the true label
  if (rec.accuracy !== undefined) rec.labelKept = rec.accuracy;
  set.dispose();
  return rec;
}
