/**
 * Label maps for segmentation-conditional chains: reading one from a picture, tokenizing it with the
 * chain's label-map VQ model, and measuring how well a sample follows it.
 *
 * A picture becomes a label map by one of two rules, chosen by its pixels (alpha is ignored):
 * - colour-coded: every pixel one of the label colours — label l is the pure colour of RGB channel l
 *   (background red #ff0000, stroke green #00ff00, outline blue #0000ff), which is how the one-hot map
 *   images of data/segmentation.ts look as PNGs. It must be exactly R×R, the label-map model's size;
 * - grey (every pixel r = g = b): a light-on-dark shape of any size, e.g. a drawn digit; it is resized to
 *   R×R (padded to a square with its border colour) and its labels derived with `labelMap`, as the
 *   training maps were: so "draw a digit shape, get a digit with that shape".
 * Any other colour is refused, naming the first such pixel.
 *
 * Fidelity: the mean IoU (data/segmentation.ts `meanIoU`) between the requested map and `labelMap` of
 * the decoded sample (its channels averaged to grey).
 */
import { tensor, noGrad, tidy } from '../torch/index.js';
import type { MapTokens } from '../chain/index.js';
import { labelMap, meanIoU, oneHot, resizeTo, toCHW, type RGBAImage } from '../data/index.js';
import type { FirstStage } from './stage.js';

/** One label index per pixel, raster order. */
export interface LabelMap {
  labels: Uint8Array;
  width: number;
  height: number;
}

/** A picture the label-map rules refuse (wrong size, unknown colour): the caller's mistake. */
export class LabelMapError extends Error {}

/** The colour of label l: the pure colour of channel l. */
const labelColour = (l: number): [number, number, number] => [l === 0 ? 255 : 0, l === 1 ? 255 : 0, l === 2 ? 255 : 0];

/** A picture → its R×R label map over `labels` (at most 3: one per RGB channel), by the rules above. */
export function readLabelMap(image: RGBAImage, R: number, labels: readonly string[]): LabelMap {
  if (labels.length > 3) throw new LabelMapError(`label maps of ${labels.length} labels cannot be colour-coded in RGB`);
  const { width, height, rgba } = image;
  const n = width * height;
  let grey = true;
  for (let p = 0; p < n && grey; p++) grey = rgba[4 * p] === rgba[4 * p + 1] && rgba[4 * p] === rgba[4 * p + 2];
  if (grey) {
    const pixels = toCHW(resizeTo({ width, height, rgba: opaque(rgba) }, R, { fill: 'border' }), 1);
    return { labels: labelMap(pixels, R), width: R, height: R };
  }
  const palette = labels.map((name, l) => ({ name, rgb: labelColour(l) }));
  const out = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const rgb = [rgba[4 * p], rgba[4 * p + 1], rgba[4 * p + 2]];
    const l = palette.findIndex((c) => c.rgb.every((v, k) => v === rgb[k]));
    if (l < 0) {
      throw new LabelMapError(`unknown label colour rgb(${rgb.join(', ')}) at pixel (${p % width}, ${Math.floor(p / width)}): ` +
        `a label map's pixels are ${palette.map((c) => `${c.name} rgb(${c.rgb.join(', ')})`).join(', ')}, or the picture is grey (labels derived from its shape)`);
    }
    out[p] = l;
  }
  if (width !== R || height !== R) throw new LabelMapError(`a colour-coded label map must be ${R}×${R} pixels (the label-map model's size), got ${width}×${height}`);
  return { labels: out, width, height };
}

/** A label map as the colour-coded picture `readLabelMap` reads back (label l: the pure colour of channel l). */
export function labelMapImage(map: LabelMap): RGBAImage {
  const rgba = new Uint8Array(4 * map.width * map.height);
  map.labels.forEach((l, p) => {
    if (l > 2) throw new LabelMapError(`label ${l} at pixel ${p} cannot be colour-coded in RGB`);
    rgba.set([...labelColour(l), 255], 4 * p);
  });
  return { width: map.width, height: map.height, rgba };
}

/** The picture with alpha 255 (a label map's alpha carries no meaning). */
const opaque = (rgba: Uint8Array): Uint8Array => rgba.map((v, i) => (i % 4 === 3 ? 255 : v));

/** Label maps (R×R, R the label-map model's resolution) → their token grids, by the label-map VQ model. */
export function mapTokensOf(stage: FirstStage, maps: readonly LabelMap[], classes: number): MapTokens[] {
  const R = stage.config.ddconfig.resolution;
  if (stage.config.ddconfig.inChannels !== classes) throw new Error(`the label-map VQ model reads ${stage.config.ddconfig.inChannels} channels, the chain has ${classes} labels`);
  for (const m of maps) if (m.width !== R || m.height !== R) throw new LabelMapError(`a label map must be ${R}×${R} (the label-map model's size), got ${m.width}×${m.height}`);
  if (maps.length === 0) return [];
  const data = new Float32Array(maps.length * classes * R * R);
  maps.forEach((m, i) => data.set(oneHot(m.labels, R, classes), i * classes * R * R));
  const grids = noGrad(() => tidy(() => stage.encodeToIndices(tensor(data, [maps.length, classes, R, R], { device: stage.device ?? 'cpu' })).long().to('cpu').flatten(1).keep()));
  const N = grids.size(1), ids = grids.toNumbers();
  grids.dispose();
  return maps.map((_, i) => ({ mapTokens: ids.slice(i * N, (i + 1) * N) }));
}

/** The label map of a decoded image (CHW in [-1, 1], C channels, R×R): `labelMap` of its channel mean. */
export function labelsOfImage(image: Float32Array, channels: number, R: number): Uint8Array {
  const plane = R * R;
  if (image.length !== channels * plane) throw new Error(`labelsOfImage: a ${channels}×${R}×${R} image has ${channels * plane} values, got ${image.length}`);
  const grey = new Float32Array(plane);
  for (let c = 0; c < channels; c++) for (let p = 0; p < plane; p++) grey[p] += image[c * plane + p] / channels;
  return labelMap(grey, R);
}

/** Mean IoU between the requested map and the label map derived from a decoded sample (R×R, the same size). */
export function segmentationFidelity(requested: LabelMap, image: Float32Array, channels: number, classes: number): number {
  if (requested.width !== requested.height) throw new Error('segmentationFidelity: square maps only');
  return meanIoU(requested.labels, labelsOfImage(image, channels, requested.width), classes);
}

