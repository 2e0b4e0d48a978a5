/**
 * Edit masks: which pixels of an image to keep (1) and which to repaint (0), and their token grid.
 *
 * - named masks (the official editing UI's): the name says what is repainted —
 *   `upper-half` (complete the upper half from the lower, the paper's Fig. 5), `lower-half`,
 *   `left-half`, `center` (repaint the central square of half the side: inpainting) and `border`
 *   (keep that square, repaint around it: outpainting);
 * - mask images of any size and channel layout (grey, grey+alpha, RGB, RGBA, palette): white = keep.
 *   A pixel is kept when its luma (Rec. 601) times its alpha is at least half, so transparent pixels
 *   are repainted. A mask image is first stretched (nearest neighbour) to the picture's own size;
 * - `fitMask` then gives a mask at the picture's size the picture's geometry: padded to a square
 *   ("keep": the padding is never repainted) and resized by nearest neighbour, as `encodeImage` pads
 *   and resizes the picture, so the mask covers the same pixels of it whatever the aspect ratios;
 * - `invertMask` swaps keep and repaint (before fitting, so the padding stays kept);
 * - `tokenMask`: pixel mask → token grid by nearest neighbour (PyTorch's 'nearest', as the official
 *   `F.interpolate(mask, size=(h, w))`).
 */
import { type Tensor, tensor, interpolate } from '../torch/index.js';
import { resizeTo, resample, type RGBAImage } from '../data/index.js';

export const NAMED_MASKS = ['upper-half', 'lower-half', 'left-half', 'center', 'border'] as const;
export type NamedMask = (typeof NAMED_MASKS)[number];

export const isNamedMask = (s: string): s is NamedMask => (NAMED_MASKS as readonly string[]).includes(s);

/** A width×height keep mask (row-major, 1 = keep) for a named edit (height defaults to width). */
export function namedMask(name: NamedMask, width: number, height = width): Uint8Array {
  const half = (n: number) => Math.floor(n / 2), lo = (n: number) => Math.floor(n / 4);
  const inCenter = (y: number, x: number) => y >= lo(height) && y < lo(height) + half(height) && x >= lo(width) && x < lo(width) + half(width);
  const keep: Record<NamedMask, (y: number, x: number) => boolean> = {
    'upper-half': (y) => y >= half(height),
    'lower-half': (y) => y < half(height),
    'left-half': (_, x) => x >= half(width),
    center: (y, x) => !inCenter(y, x),
    border: inCenter,
  };
  if (!keep[name]) throw new Error(`unknown mask '${name}': expected one of ${NAMED_MASKS.join(', ')} or a mask image`);
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = keep[name](y, x) ? 1 : 0;
  return out;
}

/** 1 where a pixel is kept: luma (Rec. 601) × alpha at least half. */
function keepOf(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgba.length / 4);
  for (let i = 0; i < out.length; i++) {
    const p = 4 * i;
    const luma = 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
    out[i] = luma * rgba[p + 3] >= 0.5 * 255 * 255 ? 1 : 0;
  }
  return out;
}

/** A size×size keep mask from a mask image (white = keep), with the mask's own geometry. */
export function maskFromImage(image: RGBAImage, size: number): Uint8Array {
  return keepOf(resizeTo(image, size, { mode: 'nearest', fill: [255, 255, 255, 255] }).rgba);
}

/** A mask image stretched to the picture's width×height (nearest neighbour): a keep mask at the picture's size. */
export function maskAtPictureSize(image: RGBAImage, picture: { width: number; height: number }): Uint8Array {
  return keepOf(resample(image, picture.width, picture.height, 'nearest').rgba);
}

/** A width×height keep mask → size×size with the picture's geometry (padded with "keep" to a square, nearest resize). */
export function fitMask(keep: Uint8Array, width: number, height: number, size: number): Uint8Array {
  if (keep.length !== width * height) throw new RangeError(`fitMask: ${keep.length} values is not ${width}×${height}`);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < keep.length; i++) rgba.fill(keep[i] ? 255 : 0, 4 * i, 4 * i + 4);
  return maskFromImage({ width, height, rgba }, size);
}

export const invertMask = (keep: Uint8Array): Uint8Array => keep.map((v) => 1 - v);

/** A size×size pixel keep mask → token keep mask [1, h, w] bool (nearest neighbour). */
export function tokenMask(keep: Uint8Array, size: number, [h, w]: readonly [number, number]): Tensor {
  if (keep.length !== size * size) throw new RangeError(`tokenMask: ${keep.length} values is not ${size}×${size}`);
  const pixels = tensor(Float32Array.from(keep), [1, 1, size, size]);
  return interpolate(pixels, { size: [h, w], mode: 'nearest' }).gt(0.5).view(1, h, w);
}
