/**
 * The evaluations `imagebart eval` runs, each scoring N images on the feature classifier against the
 * reference statistics of its training split (DESIGN §7):
 *
 * - `evaluateReference`: the two reference points of every sample metric — N real held-out images
 *   (the floor) and the VQGAN's reconstructions of the same images (the best any chain on that VQGAN
 *   can reach);
 * - `evaluateSamples`: N samples of a chain — unconditional, with the null class of a chain trained
 *   with dropped labels, or class-conditional with balanced labels (then accuracy = conditional
 *   accuracy), with classifier-free guidance or autoguidance (a weaker chain; a chain's own by default,
 *   and every record names the guidance it was measured with); a segmentation chain is conditioned on
 *   held-out label maps (e.g. mnist-segmentation's test split), and the record adds its segmentation
 *   fidelity (mean IoU of each map with the label map of its sample) and, the maps being of digits,
 *   accuracy = how often the classifier sees the map's digit; a text chain is conditioned on the
 *   captions of a captioned dataset (e.g. emoji's test split, whose names are held out of training),
 *   accuracy = how often the classifier sees the category of the captioned image;
 * - `evaluateCompletion`: N held-out images with a named region repainted by the chain (masked
 *   editing, no compositing): Fréchet distance of the completed images, L1/PSNR over the repainted
 *   pixels against the originals, and how often the classifier still sees the true label.
 * Images are drawn by a seeded permutation of the held-out split; every result records N and the seed.
 */
import { rejectionSample } from './rejection.js';
import { type Tensor, tensor, noGrad, tidy } from '../torch/index.js';
import { NONE, describeConditioning, encodeConditions, nullCondition } from '../chain/index.js';
import { permutation, collate, labelsOf, type ImageDataset } from '../data/index.js';
import {
  sample, maskedEdit, decodeImages, namedMask, tokenMask, mapTokensOf, segmentationFidelity, checkWeakChain, guidanceWith,
  type SamplingChain, type FirstStage, type NamedMask, type ScaleSettings, type Guidance, type LabelMap,
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

/**
 * How a class-conditional chain is sampled: every class in turn, one class, or its null class; a
 * completion may also be conditioned on the true label of the image it completes ('label').
 */
export type ClassChoice = 'balanced' | 'null' | 'label' | number;

export interface ChainEvalOptions extends EvalCommon {
  classChoice?: ClassChoice;
  /** Guidance scale s; 1 = plain sampling. Classifier-free (needs the null class) unless `weak` is given. */
  guidance?: number | Record<number, number>;
  /** Autoguidance: the weaker chain that guidance pushes away from (any conditioning, unconditional too). */
  weak?: SamplingChain;
  settings?: ScaleSettings;
  /** Classifier rejection sampling (class chains): draw count / acceptRate, keep the most likely of their class. */
  acceptRate?: number;
  /** Segmentation chains: held-out label maps (one-hot map images, labelled) and the chain's label-map VQ model. */
  maps?: { dataset: ImageDataset; stage: FirstStage };
  /** Text chains: captioned images whose captions condition the samples (and whose labels they should be classified as). */
  captions?: ImageDataset;
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
function* heldOutBatches(ds: ImageDataset, n: number, batchSize: number, seed: number): Generator<{ images: Float32Array; labels?: Int32Array; captions?: string[]; count: number }> {
  if (n > ds.size) throw new Error(`${ds.name} has ${ds.size} images, fewer than the ${n} asked for`);
  const order = permutation(ds.size, seed).subarray(0, n);
  for (let s = 0; s < n; s += batchSize) {
    const b = collate(ds, order.subarray(s, Math.min(n, s + batchSize)));
    yield { images: b.images, labels: b.labels, captions: b.captions, count: b.indices.length };
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

/**
 * Conditioning tokens for B images of a chain and the labels they should be classified as: nothing
 * for an unconditional chain, the null class, or class ids (every class in turn from `offset`, or one).
 */
function conditioning(chain: SamplingChain, choice: ClassChoice, B: number, offset: number, trueLabels?: ArrayLike<number>): { cond?: Tensor; labels?: number[]; guided: boolean } {
  const c = chain.conditioning ?? NONE;
  if (c.kind === 'none') {
    if (choice !== 'balanced' && choice !== 'null') throw new Error('class-conditional sampling asked of an unconditional chain');
    return { guided: false };
  }
  const [h, w] = chain.tokenShape;
  if (choice === 'null') return { cond: encodeConditions(c, new Array<null>(B).fill(null), { tokens: h * w }), guided: false };
  if (c.kind !== 'class') throw new Error(`evaluations condition on classes, captions of a dataset or label maps; this chain is conditioned on ${describeConditioning(c)}`);
  if (choice === 'label' && !trueLabels) throw new Error("'label' conditioning needs the images' labels");
  const labels = Array.from({ length: B }, (_, i) => (trueLabels ? trueLabels[i] : typeof choice === 'number' ? choice : (offset + i) % c.classes));
  return { cond: encodeConditions(c, labels), labels, guided: true };
}

/**
 * Guidance at `o.guidance`: against the weaker chain given, else the chain's own weaker chain, else
 * classifier-free when the samples are conditioned. Undefined: the chain's default guidance.
 */
function guidanceFor(chain: SamplingChain, o: Pick<ChainEvalOptions, 'guidance' | 'weak'>, guided: boolean): Guidance | undefined {
  const scale = o.guidance;
  if (scale === undefined) return undefined;
  if (o.weak) return { scale, weak: o.weak };
  return guided || chain.guidance?.weak ? guidanceWith(chain, scale) : undefined;
}

/** The guidance a record was measured with, for its JSON line: scale and reference, or nothing. */
function guidanceRecord(chain: SamplingChain, o: Pick<ChainEvalOptions, 'guidance' | 'weak'>): { guidance?: number | Record<number, number>; guidedBy?: 'weaker chain' | 'null condition' } {
  const scale = o.guidance ?? chain.guidance?.scale;
  if (scale === undefined) return {};
  return { guidance: scale, guidedBy: o.weak || chain.guidance?.weak ? 'weaker chain' : 'null condition' };
}

/**
 * Batches of held-out label maps as a segmentation chain's conditions: the maps, their tokens and the
 * digit labels of the images they were derived from.
 */
function* mapConditions(chain: SamplingChain, maps: ChainEvalOptions['maps'], count: number, batchSize: number, seed: number): Generator<{ cond: Tensor; labels?: number[]; maps: LabelMap[] }> {
  const c = chain.conditioning ?? NONE;
  if (c.kind !== 'segmentation') throw new Error(`held-out label maps condition a segmentation chain; this chain is conditioned on ${describeConditioning(c)}`);
  if (!maps) throw new Error('a segmentation chain is evaluated on held-out label maps: give a segmentation dataset (e.g. mnist-segmentation)');
  const { dataset: ds, stage } = maps;
  const R = stage.config.ddconfig.resolution, classes = c.labels.length;
  if (ds.channels !== classes || ds.resolution !== R) throw new Error(`${ds.name} holds ${ds.channels}-channel ${ds.resolution}×${ds.resolution} maps; the chain's label-map model reads ${classes}-channel ${R}×${R}`);
  for (const b of heldOutBatches(ds, count, batchSize, seed)) {
    const plane = classes * R * R;
    const batch = Array.from({ length: b.count }, (_, k) => ({ labels: labelsOf(b.images.subarray(k * plane, (k + 1) * plane), R, classes), width: R, height: R }));
    const cond = encodeConditions(c, mapTokensOf(stage, batch, classes))!.keep();
    yield { cond, labels: b.labels && Array.from(b.labels), maps: batch };
  }
}

/** Batches of captions of a captioned dataset as a text chain's conditions, with the labels of their images. */
function* captionConditions(chain: SamplingChain, ds: ImageDataset | undefined, count: number, batchSize: number, seed: number): Generator<{ cond: Tensor; labels?: number[] }> {
  const c = chain.conditioning ?? NONE;
  if (c.kind !== 'text') throw new Error(`captions condition a text chain; this chain is conditioned on ${describeConditioning(c)}`);
  if (!ds) throw new Error('a text chain is evaluated on the captions of a dataset: give a captioned dataset (e.g. emoji, whose test split holds out whole names)');
  for (const b of heldOutBatches(ds, count, batchSize, seed)) {
    if (!b.captions) throw new Error(`${ds.name} has no captions`);
    yield { cond: encodeConditions(c, b.captions)!.keep(), labels: b.labels && Array.from(b.labels) };
  }
}

/** N samples of the chain. */
export function evaluateSamples(classifier: TrainedClassifier, chain: SamplingChain, stage: FirstStage, o: ChainEvalOptions = {}): EvalRecord {
  const { count = 1000, batchSize = 50, seed = 0, classChoice = 'balanced', guidance } = o;
  const { resolution: R, outCh } = stage.config.ddconfig;
  checkResolution(classifier, outCh, R, 'the chain\'s VQGAN');
  if (o.weak) checkWeakChain(chain, o.weak);
  else if (guidance !== undefined && !chain.guidance?.weak) nullCondition(chain.conditioning ?? NONE).dispose(); // fails early for chains without a null condition
  if (o.acceptRate !== undefined) return evaluateAccepted(classifier, chain, stage, { ...o, count, batchSize, seed, classChoice });
  const c = chain.conditioning ?? NONE;
  const segmentation = c.kind === 'segmentation', labelCount = c.kind === 'segmentation' ? c.labels.length : 0;
  // held-out conditions (label maps, captions) unless the chain is sampled with its null condition
  const held: Generator<{ cond: Tensor; labels?: number[]; maps?: LabelMap[] }> | undefined = classChoice === 'null' ? undefined
    : segmentation ? mapConditions(chain, o.maps, count, batchSize, seed)
    : c.kind === 'text' ? captionConditions(chain, o.captions, count, batchSize, seed) : undefined;
  const started = performance.now();
  const set = new FeatureSet(classifier.model);
  let iou = 0;
  for (let s = 0, i = 0; s < count; s += batchSize, i++) {
    const B = Math.min(batchSize, count - s);
    noGrad(() => tidy(() => {
      const next = held?.next();
      const m = next && !next.done ? next.value : undefined;
      const { cond, labels, guided } = m ? { ...m, guided: true } : conditioning(chain, classChoice, B, s);
      const r = sample(chain, { batch: B, seed: seed + i, cond, guidance: guidanceFor(chain, o, guided), settings: o.settings });
      const images = decodeImages(stage, r.tokens);
      if (m?.maps) {
        const data = images.toFloat32Array(), plane = outCh * R * R;
        m.maps.forEach((map, k) => (iou += segmentationFidelity(map, data.subarray(k * plane, (k + 1) * plane), outCh, labelCount)));
      }
      m?.cond.dispose();
      set.add(images, labels);
    }));
    o.onProgress?.(Math.min(count, s + B), count);
  }
  const rec: EvalRecord = {
    kind: 'samples', ...set.metrics(classifier.reference), seed, seconds: (performance.now() - started) / 1000,
    ...(held === undefined ? { classChoice } : segmentation ? { conditions: `label maps of ${o.maps!.dataset.name}`, segmentationIoU: iou / count }
      : { conditions: `captions of ${o.captions!.name}` }),
    ...guidanceRecord(chain, o), settings: o.settings ?? {},
  };
  set.dispose();
  return rec;
}

/** N samples kept by classifier rejection sampling (rejection.ts) at `acceptRate`, scored like any samples. */
function evaluateAccepted(classifier: TrainedClassifier, chain: SamplingChain, stage: FirstStage, o: ChainEvalOptions & Required<Pick<ChainEvalOptions, 'count' | 'batchSize' | 'seed' | 'classChoice'>>): EvalRecord {
  const { count, batchSize, seed, classChoice, acceptRate } = o;
  const { resolution: R, outCh } = stage.config.ddconfig;
  const refuse = () => new Error('rejection sampling keeps samples of requested classes: give a class-conditional chain and a class choice other than null');
  if (classChoice === 'null') throw refuse();
  const requested = conditioning(chain, classChoice, count, 0);
  requested.cond?.dispose();
  if (!requested.labels) throw refuse();
  const started = performance.now();
  const r = rejectionSample(classifier.model, chain, stage, {
    labels: requested.labels, acceptRate: acceptRate!, batchSize, seed, settings: o.settings,
    guidance: guidanceFor(chain, o, true), onProgress: o.onProgress,
  });
  const set = new FeatureSet(classifier.model);
  const plane = outCh * R * R;
  for (let s = 0; s < count; s += batchSize) {
    const part = r.images.slice(s, s + batchSize), batch = new Float32Array(part.length * plane);
    part.forEach((x, k) => batch.set(x, k * plane));
    noGrad(() => tidy(() => set.add(tensor(batch, [part.length, outCh, R, R]), requested.labels!.slice(s, s + batchSize))));
  }
  const rec: EvalRecord = {
    kind: 'samples', ...set.metrics(classifier.reference), seed, seconds: (performance.now() - started) / 1000, classChoice,
    ...guidanceRecord(chain, o), settings: o.settings ?? {},
    requestedAcceptRate: acceptRate, acceptRate: r.acceptRate, drawn: r.drawn,
  };
  set.dispose();
  return rec;
}

export interface CompletionOptions extends ChainEvalOptions {
  mask?: NamedMask;
}

/** N held-out images with the `mask` region repainted by the chain. */
export function evaluateCompletion(classifier: TrainedClassifier, chain: SamplingChain, stage: FirstStage, heldOut: ImageDataset, o: CompletionOptions = {}): EvalRecord {
  const { count = 1000, batchSize = 50, seed = 0, mask = 'upper-half' } = o;
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
      // a class chain completes with the true label only when asked ('label'); otherwise with its null class
      const { cond, guided } = o.classChoice === 'label' && b.labels ? conditioning(chain, 'balanced', b.count, 0, b.labels)
        : conditioning(chain, (chain.conditioning ?? NONE).kind === 'none' ? 'balanced' : 'null', b.count, 0);
      const keep = tokenMask(keepPixels, R, chain.tokenShape);
      const edit = maskedEdit(chain, x0, keep, { seed: seed + i, cond, guidance: guidanceFor(chain, o, guided), settings: o.settings });
      const images = decodeImages(stage, edit.tokens), data = images.toFloat32Array();
      const plane = outCh * R * R;
      for (let k = 0; k < b.count; k++) {
        const e = regionError(data.subarray(k * plane, (k + 1) * plane), b.images.subarray(k * plane, (k + 1) * plane), repaint);
        l1 += e.l1;
        psnr += e.psnr;
      }
      set.add(images, b.labels);
    }));
    done += b.count;
    i++;
    o.onProgress?.(done, count);
  }
  const rec: EvalRecord = {
    kind: 'completion', ...set.metrics(classifier.reference), seed, seconds: (performance.now() - started) / 1000,
    mask, regionL1: l1 / done, regionPsnr: psnr / done, data: heldOut.name, ...guidanceRecord(chain, o), settings: o.settings ?? {},
  };
  // with labels, FeatureSet's accuracy is the fraction of completions that keep the true label
  if (rec.accuracy !== undefined) rec.labelKept = rec.accuracy;
  set.dispose();
  return rec;
}
