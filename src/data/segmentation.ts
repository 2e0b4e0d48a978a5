/**
 * Label maps derived honestly from light-on-dark grey images (MNIST, Fashion-MNIST), for
 * segmentation-conditional chains:
 *
 *   0 background  pixel ≤ 0 (the image is in [-1, 1])
 *   1 stroke      pixel > 0 with every 4-neighbour a stroke pixel too
 *   2 outline     pixel > 0 with a background 4-neighbour (or on the image border)
 *
 * As images, maps are one-hot: 3 channels in {-1, 1} (so a VQGAN encodes them like any RGB image),
 * and `labelsOf` reads the label of each pixel back by argmax (of a decoded, not exactly one-hot map).
 */
import type { ImageDataset, Sample } from './dataset.js';

export const SEGMENT_LABELS = ['background', 'stroke', 'outline'] as const;

/** The label of every pixel of a 1×R×R image in [-1, 1]. */
export function labelMap(image: Float32Array, R: number): Uint8Array {
  if (image.length !== R * R) throw new Error(`labelMap: a grey ${R}×${R} image has ${R * R} values, got ${image.length}`);
  const on = (y: number, x: number) => y >= 0 && y < R && x >= 0 && x < R && image[y * R + x] > 0;
  const out = new Uint8Array(R * R);
  for (let y = 0; y < R; y++) {
    for (let x = 0; x < R; x++) {
      if (!on(y, x)) continue;
      out[y * R + x] = on(y - 1, x) && on(y + 1, x) && on(y, x - 1) && on(y, x + 1) ? 1 : 2;
    }
  }
  return out;
}

/** Labels → one-hot 3×R×R image in {-1, 1}. */
export function oneHot(labels: Uint8Array, R: number, classes: number = SEGMENT_LABELS.length): Float32Array {
  const out = new Float32Array(classes * R * R).fill(-1);
  for (let p = 0; p < R * R; p++) {
    if (labels[p] >= classes) throw new RangeError(`label ${labels[p]} at pixel ${p} outside 0..${classes - 1}`);
    out[labels[p] * R * R + p] = 1;
  }
  return out;
}

/** The label of each pixel of a C×R×R map by argmax over channels. */
export function labelsOf(map: Float32Array, R: number, classes: number = SEGMENT_LABELS.length): Uint8Array {
  if (map.length !== classes * R * R) throw new Error(`labelsOf: a ${classes}-channel ${R}×${R} map has ${classes * R * R} values, got ${map.length}`);
  const out = new Uint8Array(R * R);
  for (let p = 0; p < R * R; p++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (map[c * R * R + p] > map[best * R * R + p]) best = c;
    out[p] = best;
  }
  return out;
}

/** Mean over labels present in either map of |a ∩ b| / |a ∪ b| (intersection over union). */
export function meanIoU(a: Uint8Array, b: Uint8Array, classes: number = SEGMENT_LABELS.length): number {
  if (a.length !== b.length) throw new Error('meanIoU: maps of different sizes');
  let sum = 0, present = 0;
  for (let c = 0; c < classes; c++) {
    let inter = 0, union = 0;
    for (let p = 0; p < a.length; p++) {
      const x = a[p] === c, y = b[p] === c;
      if (x && y) inter++;
      if (x || y) union++;
    }
    if (union > 0) { sum += inter / union; present++; }
  }
  return present ? sum / present : 1;
}

/** The label maps of a grey dataset as one-hot 3-channel images (labels and captions kept). */
export function segmentationDataset(ds: ImageDataset): ImageDataset {
  if (ds.channels !== 1) throw new Error(`${ds.name}: label maps are derived from grey light-on-dark images, this dataset has ${ds.channels} channels`);
  const R = ds.resolution;
  return {
    name: `${ds.name}:segmentation`, size: ds.size, channels: 3, resolution: R, classes: ds.classes,
    get(i: number): Sample {
      const s = ds.get(i);
      return { ...s, image: oneHot(labelMap(s.image, R), R) };
    },
  };
}
