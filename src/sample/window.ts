/**
 * Sliding-window decoding for grids larger than the trained one (taming's high-resolution sampler,
 * here at every scale of the chain). An H×W grid is decoded in raster order; for position (i, j) the
 * model sees the trained-size h×w window with origin
 *   r0 = clamp(i − ⌊h/2⌋, 0, H − h),  c0 = clamp(j − ⌊w/2⌋, 0, W − w),
 * i.e. centred on the position except near the borders:
 * - encoder: that window of x_t (run once per window origin and reused along the row);
 * - decoder: that window of x_{t-1} read in window raster order up to the position — rows above it
 *   and tokens left of it, all already decoded in the big grid's raster order;
 * - a segmentation chain's label map (given for the whole H×W grid) is cropped to the same window;
 * - the logits are those of the position's place in the window.
 * The window moves with the position, so no KV cache carries over: each position costs one decoder
 * pass over its window prefix (the uncached path of decoder.ts).
 */
import type { Tensor } from '../torch/index.js';
import { EncoderDecoderDenoiser, type Denoiser } from '../chain/index.js';
import { openDecoder, encodeContext, type ScaleDecoder } from './decoder.js';

/** Where position (i, j) of an H×W grid sits in its h×w window: the origin and the flat index inside. */
export function windowOf(i: number, j: number, [H, W]: readonly [number, number], [h, w]: readonly [number, number]): { r0: number; c0: number; local: number } {
  const r0 = Math.min(Math.max(i - Math.floor(h / 2), 0), H - h);
  const c0 = Math.min(Math.max(j - Math.floor(w / 2), 0), W - w);
  return { r0, c0, local: (i - r0) * w + (j - c0) };
}

/** A ScaleDecoder over x_t [B, H, W] whose every position looks through its trained-size window. */
export function openWindow(d: Denoiser, xt: Tensor, o: { cond?: Tensor; tokenShape: readonly [number, number] }): ScaleDecoder {
  const [B, H, W] = xt.shape as [number, number, number];
  const [h, w] = o.tokenShape;
  /** [B, H·W] or [B, H, W] → the window's tokens [B, h·w]. */
  const crop = (x: Tensor, r0: number, c0: number) => x.view(B, H, W).narrow(1, r0, h).narrow(2, c0, w).reshape(B, h * w);
  const encodings = new Map<number, Tensor>(); // by c0, for the current r0
  let row = -1;
  const release = () => {
    for (const e of encodings.values()) e.dispose();
    encodings.clear();
  };
  return {
    logitsAt(xtm1: Tensor, n: number): Tensor {
      const { r0, c0, local } = windowOf(Math.floor(n / W), n % W, [H, W], [h, w]);
      const context = crop(xt, r0, c0);
      const cond = d.shape.mapVocab && o.cond ? crop(o.cond, r0, c0) : o.cond;
      let enc: Tensor | undefined;
      if (d instanceof EncoderDecoderDenoiser) {
        if (r0 !== row) {
          release();
          row = r0;
        }
        enc = encodings.get(c0);
        if (!enc) encodings.set(c0, (enc = encodeContext(d, context, cond)));
      }
      const decoder = openDecoder(d, context, { cond, decoding: 'uncached', enc });
      try {
        return decoder.logitsAt(crop(xtm1, r0, c0), local);
      } finally {
        decoder.dispose();
      }
    },
    dispose: release,
  };
}
