/**
 * Drawing one token from next-token logits, with the usual truncations:
 *
 * - temperature: logits / τ (τ > 0; 1 leaves them alone);
 * - top-k: the official `top_k_logits` — every logit below the k-th largest becomes -inf, so ties
 *   with the k-th value survive; k ≥ K is a no-op;
 * - top-p (nucleus): after top-k, keep the smallest set of most likely codes whose probability
 *   reaches p (the code that crosses p is kept, as `top_k_top_p_filtering` does); ties with the
 *   last kept logit survive, as in top-k; p ≥ 1 is a no-op;
 * - then softmax and one multinomial draw per row from libtorch's global generator (manualSeed).
 */
import { type Tensor } from '../torch/index.js';

export interface ScaleSettings {
  /** Softmax temperature τ > 0 (default 1). */
  temperature?: number;
  /** Keep the k most likely codes (default: all). */
  topK?: number;
  /** Keep the most likely codes up to probability mass p ∈ (0, 1] (default 1: all). */
  topP?: number;
}

/** Checks a scale's settings and fills in the defaults. */
export function resolveSettings(s: ScaleSettings, K: number, where = 'sampling'): Required<ScaleSettings> {
  const temperature = s.temperature ?? 1, topK = s.topK ?? K, topP = s.topP ?? 1;
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new RangeError(`${where}: temperature must be a positive number, got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 1)) throw new RangeError(`${where}: top-k must be a positive integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`${where}: top-p must be in (0, 1], got ${topP}`);
  return { temperature, topK: Math.min(topK, K), topP };
}

/** logits [B, K] with everything below the k-th largest value of each row set to -inf. */
export function topKLogits(logits: Tensor, k: number): Tensor {
  const [values] = logits.topk(k, -1); // [B, k], descending
  return logits.maskedFill(logits.lt(values.narrow(-1, k - 1, 1)), -Infinity);
}

/** logits [B, K] with everything outside each row's nucleus of mass p set to -inf. */
export function topPLogits(logits: Tensor, p: number): Tensor {
  const K = logits.size(-1);
  const [sorted] = logits.sort(-1, true); // [B, K]
  const cumulative = sorted.softmax(-1).cumsum(-1);
  // code i (in sorted order) is kept when the mass before it is still ≤ p: always the first one
  const kept = cumulative.narrow(-1, 0, K - 1).le(p).sum(-1, true).add(1); // [B, 1]
  const threshold = sorted.gather(-1, kept.sub(1)); // [B, 1] smallest kept logit
  return logits.maskedFill(logits.lt(threshold), -Infinity);
}

/** One code per row of logits [B, K] (any float dtype) → int64 [B]. */
export function drawTokens(logits: Tensor, s: Required<ScaleSettings>): Tensor {
  let l = logits.float();
  if (s.temperature !== 1) l = l.div(s.temperature);
  if (s.topK < l.size(-1)) l = topKLogits(l, s.topK);
  if (s.topP < 1) l = topPLogits(l, s.topP);
  return l.softmax(-1).multinomial(1).view(-1);
}
