/**
 * The training objective of one scale, exactly as the official `compute_loss`:
 *
 * - hard = cross-entropy of p_θ against the sampled x_{t-1}: mean over tokens, then over the batch;
 * - soft = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ): summed over the K classes (0·log 0 = 0), mean over tokens,
 *   then over the batch;
 * - loss = α_mix·soft + (1 - α_mix)·hard (α_mix = 0 "hard", 1 "soft"; at t = 1 they coincide).
 *
 * The soft term is also the scale's term of the negative ELBO (per token, nats): the posterior
 * factorises over tokens, so with teacher forcing on a sample x_{t-1} ~ q the per-token KLs sum to an
 * unbiased estimate of KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)); at t = 1 it is -log p_θ(x_0 | x_1).
 */
import { type Tensor, crossEntropy, klDiv } from '../torch/index.js';

export interface DenoisingLoss {
  /** The scalar to minimise. */
  loss: Tensor;
  hard: Tensor;
  /** Absent when no posterior was given. */
  soft?: Tensor;
}

/**
 * logits [B, N, K] of p_θ(x_{t-1} | x_t), target x_{t-1} [B, N], posterior [B, N, K] (needed when
 * alphaMix > 0).
 */
export function denoisingLoss(logits: Tensor, target: Tensor, posterior: Tensor | undefined, alphaMix: number): DenoisingLoss {
  if (!(alphaMix >= 0 && alphaMix <= 1)) throw new RangeError(`alphaMix must be in [0, 1], got ${alphaMix}`);
  const hard = crossEntropy(logits.transpose(1, 2), target, { reduction: 'none' }).mean(-1).mean();
  if (!posterior) {
    if (alphaMix > 0) throw new Error('denoisingLoss: a posterior is needed when alphaMix > 0');
    return { loss: hard, hard };
  }
  const soft = softLoss(logits, posterior);
  return { loss: soft.mul(alphaMix).add(hard.mul(1 - alphaMix)), hard, soft };
}

/** KL(posterior ‖ softmax(logits)) summed over classes, mean over tokens and batch (nats per token). */
export function softLoss(logits: Tensor, posterior: Tensor): Tensor {
  return klDiv(logits.logSoftmax(-1), posterior, 'none').sum(-1).mean(-1).mean();
}
