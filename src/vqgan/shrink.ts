/**
 * Codebook shrinking (ImageBART §2): after training, keep only the codes a held-out set actually uses.
 *
 * - count raw codes on held-out images; `used` = the sorted codes with a non-zero count;
 * - the shrunk model reports token i for code used[i] (K_eff = len(used) token ids, +1 with the 'extra'
 *   id) and maps a code outside `used` to `unknownIndex`; decoding maps i back to used[i];
 * - `used` is the `quantize.used` buffer, so it is saved and loaded with the weights.
 */
import { tensor } from '../torch/index.js';
import type { ImageDataset } from '../data/index.js';
import { VQModel } from './model.js';
import { evaluate, type EvalResult } from './metrics.js';
import type { UnknownIndex } from './config.js';

/** Sorted codes with a non-zero count. */
export const usedCodes = (counts: ArrayLike<number>): number[] => Array.from(counts, (c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);

/** A copy of `model` that tokenizes through the `used` list (the original is left unchanged). */
export function shrinkCodebook(model: VQModel, used: readonly number[], unknownIndex: UnknownIndex = model.config.unknownIndex): VQModel {
  const k = model.config.nEmbed;
  if (used.length === 0) throw new Error('shrinkCodebook: no used codes');
  used.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= k) throw new Error(`shrinkCodebook: code ${c} outside 0..${k - 1}`);
    if (i > 0 && c <= used[i - 1]!) throw new Error('shrinkCodebook: used codes must be sorted and distinct');
  });
  const shrunk = new VQModel({ ...model.config, unknownIndex });
  const weights = new Map(model.stateDict()).set('quantize.used', tensor(BigInt64Array.from(used, BigInt)));
  shrunk.loadStateDict(weights); // installs the new `used` list
  return shrunk.train(model.training);
}

/** Codes used on `heldOut` (raw codes, whatever remap `model` has), the shrunk model, and the evaluation behind it. */
export function shrinkOn(model: VQModel, heldOut: ImageDataset, o: { batchSize?: number; maxImages?: number; unknownIndex?: UnknownIndex } = {}): {
  model: VQModel; used: number[]; evaluation: EvalResult;
} {
  const evaluation = evaluate(model, heldOut, o);
  const used = usedCodes(evaluation.counts);
  return { model: shrinkCodebook(model, used, o.unknownIndex), used, evaluation };
}
