/**
 * First-stage quality on a dataset: reconstruction PSNR and L1, and how the codebook is used
 * (distinct codes, perplexity = exp(entropy of the code histogram)); on label maps (one-hot images,
 * data/segmentation.ts) also the label accuracy and the mean IoU of the reconstructed maps (labels
 * read back by argmax over channels).
 */
import { tensor, tidy, noGrad } from '../torch/index.js';
import { batches, labelsOf, meanIoU, type ImageDataset } from '../data/index.js';
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
  /** Label maps only: the fraction of pixels whose reconstructed label is right, and the mean over maps of their mean IoU. */
  labelAccuracy?: number;
  meanIoU?: number;
}

/** `labelMaps`: the images are one-hot label maps of that many labels (one per channel). */
export function evaluate(model: VQModel, ds: ImageDataset, o: { batchSize?: number; maxImages?: number; labelMaps?: number } = {}): EvalResult {
  const batchSize = o.batchSize ?? 64;
  const limit = Math.min(o.maxImages ?? ds.size, ds.size);
  const counts = new Float64Array(model.config.nEmbed);
  const wasTraining = model.training;
  model.eval();
  let images = 0, psnrSum = 0, l1Sum = 0, correct = 0, iouSum = 0;
  const R = ds.resolution, plane = R * R;
  try {
    for (const batch of batches(ds, batchSize, { shuffle: false })) {
      if (images >= limit) break;
      const n = Math.min(batch.indices.length, limit - images);
      const per = ds.channels * ds.resolution * ds.resolution;
      const [psnrs, l1, codes, recs] = noGrad(() => tidy(() => {
        const x = tensor(batch.images.subarray(0, n * per), [n, ds.channels, ds.resolution, ds.resolution]);
        const { rec, codes } = model.forward(x);
        const err = rec.clamp(-1, 1).sub(x);
        const mse = err.div(2).square().mean([1, 2, 3]).clamp(1e-10);
        return [mse.log().mul(-10 / Math.LN10).toNumbers(), err.abs().sum().item(), codes.toNumbers(), o.labelMaps ? rec.toFloat32Array() : undefined] as const;
      }));
      for (let k = 0; recs && k < n; k++) {
        const want = labelsOf(batch.images.subarray(k * per, (k + 1) * per), R, o.labelMaps!), got = labelsOf(recs.subarray(k * per, (k + 1) * per), R, o.labelMaps!);
        for (let p = 0; p < plane; p++) correct += want[p] === got[p] ? 1 : 0;
        iouSum += meanIoU(want, got, o.labelMaps!);
      }
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
    ...(o.labelMaps ? { labelAccuracy: correct / Math.max(images * plane, 1), meanIoU: iouSum / Math.max(images, 1) } : {}),
  };
}
