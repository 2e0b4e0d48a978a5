/**
 * Token files: a dataset encoded once by the first stage, for the chain to train from.
 *
 * A safetensors file with
 * - `tokens`: [N, h, w] token grids (x0), int16 when the ids fit (K ≤ 32768), else int32;
 * - `labels`: int64 [N] class ids (−1 where a sample has none), when the dataset is labelled;
 * - metadata: `format`, `num_tokens` (K, the ids are in [0, K)), `dataset`, `classes` and `captions`
 *   (JSON lists, when present) and `vqgan` (the first stage's config JSON).
 * The chain reads them with chain/tokens.ts's readTokenFile.
 * With the 'random' unknown index (taming's default) a code outside the shrunk codebook gets a random
 * id, so tokenizing is then not deterministic; every other setting is.
 */
import { Tensor, tensor, tidy, noGrad, saveSafetensors } from '../torch/index.js';
import { batches, type ImageDataset } from '../data/index.js';
import type { VQModel } from './model.js';

export const TOKENS_FORMAT = 'imagebart-tokens/1';

/** Encodes every image of `ds` and writes the token file atomically. */
export function tokenizeDataset(
  model: VQModel, ds: ImageDataset, path: string,
  o: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): { count: number; numTokens: number } {
  const r = model.latentSize;
  const numTokens = model.numTokens;
  const grids = numTokens <= 32768 ? new Int16Array(ds.size * r * r) : new Int32Array(ds.size * r * r);
  const labels = new BigInt64Array(ds.size).fill(-1n);
  const captions: string[] = [];
  let labelled = false, captioned = false, done = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for (const b of batches(ds, o.batchSize ?? 64, { shuffle: false })) {
      const n = b.indices.length;
      const ids = noGrad(() => tidy(() => model.encodeToIndices(tensor(b.images, [n, ds.channels, ds.resolution, ds.resolution])).toNumbers()));
      grids.set(ids, done * r * r);
      for (let i = 0; i < n; i++) {
        if (b.labels) { labels[done + i] = BigInt(b.labels[i]!); labelled = true; }
        captions.push(b.captions?.[i] ?? '');
        if (b.captions) captioned = true;
      }
      done += n;
      o.onProgress?.(done, ds.size);
    }
  } finally {
    model.train(wasTraining);
  }
  const tensors = new Map<string, Tensor>([['tokens', tensor(grids, [ds.size, r, r])]]);
  if (labelled) tensors.set('labels', tensor(labels));
  const metadata: Record<string, string> = {
    format: TOKENS_FORMAT, num_tokens: String(numTokens), dataset: ds.name, vqgan: JSON.stringify(model.config),
  };
  if (ds.classes) metadata.classes = JSON.stringify(ds.classes);
  if (captioned) metadata.captions = JSON.stringify(captions);
  saveSafetensors(path, tensors, metadata);
  for (const t of tensors.values()) t.dispose();
  return { count: ds.size, numTokens };
}
