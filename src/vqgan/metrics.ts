/**
 * First-stage quality on a dataset: reconstruction PSNR and L1, and how the codebook is used
 * (distinct codes, perplexity = exp(entropy of the code histogram)).
 */
import { tensor, tidy, noGrad } from '../torch/index.js';
import { batches, type ImageDataset } from '../data/index.js';
import type { VQModel } from './model.js';

export interface EvalResult {
  images: number;
  /** Mean over images of 10·log10(1 / mse), pixels mapped to [0, 1] and reconstructions clipped. */
  psnr: number;
  /** Mean |x − x̂| in the model's [-1, 1] range. */
  l1: number;
  /** How often each raw codebook row was chosen (length nEmbed). */
  counts: Float64Array;
  /** Codes used at least once. */
  usedCodes: number;
  /** usedCodes / nEmbed. */
  usage: number;
  perplexity: number;
}

export function evaluate(model: VQModel, ds: ImageDataset, o: { batchSize?: number; maxImages?: number } = {}): EvalResult {
  const batchSize = o.batchSize ?? 64;
  const limit = Math.min(o.maxImages ?? ds.size, ds.size);
  const counts = new Float64Array(model.config.nEmbed);
  const wasTraining = model.training;
  model.eval();
  let images = 0, psnrSum = 0, l1Sum = 0;
  try {
    for (const batch of batches(ds, batchSize, { shuffle: false })) {
      if (images >= limit) break;
      const n = Math.min(batch.indices.length, limit - images);
      const per = ds.channels * ds.resolution * ds.resolution;
      const [psnrs, l1, codes] = noGrad(() => tidy(() => {
        const x = tensor(batch.images.subarray(0, n * per), [n, ds.channels, ds.resolution, ds.resolution]);
        const { rec, codes } = model.forward(x);
        const err = rec.clamp(-1, 1).sub(x);
        const mse = err.div(2).square().mean([1, 2, 3]).clamp(1e-10);
        return [mse.log().mul(-10 / Math.LN10).toNumbers(), err.abs().sum().item(), codes.toNumbers()] as const;
      }));
      for (const c of codes) counts[c]! += 1;
      for (const p of psnrs) psnrSum += p;
      l1Sum += l1;
      images += n;
    }
  } finally {
    model.train(wasTraining);
  }
  const total = counts.reduce((a, b) => a + b, 0);
  let entropy = 0;
  for (const c of counts) if (c > 0) entropy -= (c / total) * Math.log(c / total);
  const usedCodes = counts.filter((c) => c > 0).length;
  return {
    images,
    psnr: psnrSum / Math.max(images, 1),
    l1: l1Sum / Math.max(images * ds.channels * ds.resolution * ds.resolution, 1),
    counts, usedCodes, usage: usedCodes / model.config.nEmbed, perplexity: Math.exp(entropy),
  };
}
