/**
 * Likelihood of token grids under the chain: the negative ELBO in bits per token,
 *
 *   -log p(x_0) ≤ KL(q(x_T | x_0) ‖ p(x_T)) + Σ_{t=2..T} E_q KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t))
 *                 + E_q[-log p_θ(x_0 | x_1)],
 *
 * - the prior term is closed form (0 when β_T = 1: x_T is exactly uniform);
 * - each scale's KL is computed analytically per token given the teacher-forced prefix (the posterior
 *   factorises over tokens, p_θ is autoregressive), on one sample of the forward chain per image;
 * - at t = 1 the posterior is one-hot, so the same expression is -log p_θ(x_0 | x_1) (the paper's
 *   single-sample Monte-Carlo term).
 * Token-space likelihood only: the VQGAN's reconstruction term is not included.
 */
import { type Tensor, noGrad, tidy } from '../torch/index.js';
import { forwardChain, posterior, priorKL, softLoss, type Schedule } from '../diffusion/index.js';
import type { Denoiser } from './denoiser.js';

export interface ChainNll {
  /** Bits per token of scale t's term at index t-1. */
  perScale: number[];
  /** Bits per token of KL(q(x_T | x_0) ‖ uniform). */
  prior: number;
  /** The negative ELBO, bits per token. */
  total: number;
}

/** Scale t's ELBO term for a batch (x_0, x_{t-1}, x_t all [B, N]): mean nats per token, a scalar tensor. */
export function elboTerm(d: Denoiser, x0: Tensor, xtm1: Tensor, xt: Tensor, schedule: Schedule, cond?: Tensor): Tensor {
  return softLoss(d.logits(xt, xtm1, cond).float(), posterior(x0, xt, d.t, schedule, d.shape.K));
}

/** The chain's negative ELBO on token grids x0 [M, h, w] (labels [M] for class-conditional chains). */
export function chainNll(denoisers: readonly Denoiser[], x0: Tensor, schedule: Schedule, o: { cond?: Tensor; batchSize?: number } = {}): ChainNll {
  const T = schedule.T;
  const byScale = [...denoisers].sort((a, b) => a.t - b.t);
  if (byScale.length !== T || byScale.some((d, i) => d.t !== i + 1)) {
    throw new Error(`chainNll needs one denoiser per scale 1..${T}, got scales [${denoisers.map((d) => d.t).join(', ')}]`);
  }
  const K = byScale[0].shape.K;
  const M = x0.size(0), bs = o.batchSize ?? 32;
  const nats = new Array<number>(T).fill(0);
  for (let start = 0; start < M; start += bs) {
    const n = Math.min(bs, M - start);
    noGrad(() => tidy(() => {
      const xb = x0.narrow(0, start, n).flatten(1);
      const cond = o.cond?.narrow(0, start, n);
      const xs = forwardChain(xb, schedule, K);
      byScale.forEach((d, i) => (nats[i] += elboTerm(d, xb, xs[d.t - 1], xs[d.t], schedule, cond).item() * n));
    }));
  }
  const perScale = nats.map((v) => v / M / Math.LN2);
  const prior = priorKL(schedule, K) / Math.LN2;
  return { perScale, prior, total: perScale.reduce((a, b) => a + b, prior) };
}
