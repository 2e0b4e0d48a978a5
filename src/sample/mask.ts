/**
 * Edit masks: which pixels of an image to keep (1) and which to repaint (0), and their token grid.
 *
 * - named masks (the official editing UI's): the name says what is repainted —
 *   `upper-half` (complete the upper half from the lower, the paper's Fig. 5), `lower-half`,
 *   `left-half`, `center` (repaint the central square of half the side: inpainting) and `border`
 *   (keep that square, repaint around it: outpainting);
 * - mask images of any size and channel layout (grey, grey+alpha, RGB, RGBA, palette): white = keep.
 *   A pixel is kept when its luma (Rec. 601) times its alpha is at least half, so transparent pixels
 *   are repainted. Non-square masks are padded to a square with "keep", as images are padded with
 *   white, then resized by nearest neighbour;
 * - `invertMask` swaps keep and repaint;
 * - `tokenMask`: pixel mask → token grid by nearest neighbour (PyTorch's 'nearest', as the official
 *   `F.interpolate(mask, size=(h, w))`).
 */
import { type Tensor, tensor, interpolate } from '../torch/index.js';
import { resizeTo, type RGBAImage } from '../data/index.js';

export const NAMED_MASKS = ['upper-half', 'lower-half', 'left-half', 'center', 'border'] as const;
export type NamedMask = (typeof NAMED_MASKS)[number];

export const isNamedMask = (s: string): s is NamedMask => (NAMED_MASKS as readonly string[]).includes(s);

/** A size×size keep mask (row-major, 1 = keep) for a named edit. */
export function namedMask(name: NamedMask, size: number): Uint8Array {
  const half = Math.floor(size / 2), lo = Math.floor(size / 4), hi = lo + half;
  const inCenter = (y: number, x: number) => y >= lo && y < hi && x >= lo && x < hi;
  const keep: Record<NamedMask, (y: number, x: number) => boolean> = {
    'upper-half': (y) => y >= half,
    'lower-half': (y) => y < half,
    'left-half': (_, x) => x >= half,
    center: (y, x) => !inCenter(y, x),
    border: inCenter,
  };
  if (!keep[name]) throw new Error(`unknown mask '${name}': expected one of ${NAMED_MASKS.join(', ')} or a mask image`);
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) out[y * size + x] = keep[name](y, x) ? 1 : 0;
  return out;
}

/** A size×size keep mask from a mask image (white = keep). */
export function maskFromImage(image: RGBAImage, size: number): Uint8Array {
  const { rgba } = resizeTo(image, size, { mode: 'nearest', fill: [255, 255, 255, 255] });
  const out = new Uint8Array(size * size);
  for (let i = 0; i < out.length; i++) {
    const p = 4 * i;
    const luma = 0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
    out[i] = luma * rgba[p + 3] >= 0.5 * 255 * 255 ? 1 : 0;
  }
  return out;
}

export const invertMask = (keep: Uint8Array): Uint8Array => keep.map((v) => 1 - v);

/** A size×size pixel keep mask → token keep mask [1, h, w] bool (nearest neighbour). */
export function tokenMask(keep: Uint8Array, size: number, [h, w]: readonly [number, number]): Tensor {
  if (keep.length !== size * size) throw new RangeError(`tokenMask: ${keep.length} values is not ${size}×${size}`);
  const pixels = tensor(Float32Array.from(keep), [1, 1, size, size]);
  return interpolate(pixels, { size: [h, w], mode: 'nearest' }).gt(0.5).view(1, h, w);
}
