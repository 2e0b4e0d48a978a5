/**
 * The fixed forward process over token grids (any shape, int64 ids in [0, K)) and its posterior.
 *
 * - `forwardStep`: x_t ~ q(x_t | x_{t-1}): every token is independently redrawn with probability β_t,
 *   uniformly over the K codes (the redraw may land on the same code).
 * - `forwardChain`: x_0, x_1, …, x_t by running those steps from x_0, as the official training does.
 * - `qSample`: x_t ~ q(x_t | x_0) = Cat(ᾱ_t·e_{x_0} + (1-ᾱ_t)/K) in one draw (the closed form).
 * - `posterior`: q(x_{t-1} | x_t, x_0) ∝ (ᾱ_{t-1}·e_{x_0} + (1-ᾱ_{t-1})/K) ⊙ (α_t·e_{x_t} + (1-α_t)/K).
 * - `priorKL`: KL(q(x_T | x_0) ‖ uniform) per token, the ELBO's prior term (0 when β_T = 1).
 *
 * Masked variants (local editing): `keep` (bool, broadcastable to the grid, true = keep) pins tokens
 * so that only the others diffuse. Randomness comes from libtorch's global generator (manualSeed).
 */
import { type Tensor, rand, randint, where } from '../torch/index.js';
import type { Schedule } from './schedule.js';

export interface MaskOptions {
  /** true where a token must never change (the kept part of an edited image). */
  keep?: Tensor;
}

/** Redraws each token with probability `prob`, uniformly from [0, K). Also the editing re-noise step. */
export function forwardStep(x: Tensor, prob: number, K: number, o: MaskOptions = {}): Tensor {
  let redraw = rand(x.shape, { device: x.device }).lt(prob);
  if (o.keep) redraw = redraw.logicalAnd(o.keep.logicalNot());
  return where(redraw, randint(0, K, x.shape, { device: x.device }), x);
}

/** [x_0, x_1, …, x_steps] from x_0 by the chain's steps (steps defaults to T). */
export function forwardChain(x0: Tensor, schedule: Schedule, K: number, o: MaskOptions & { steps?: number } = {}): Tensor[] {
  const steps = o.steps ?? schedule.T;
  checkStep(schedule, steps, 0);
  const xs = [x0];
  for (let t = 1; t <= steps; t++) xs.push(forwardStep(xs[t - 1], schedule.beta[t], K, o));
  return xs;
}

/** x_t ~ q(x_t | x_0) directly: each token redrawn with probability 1 - ᾱ_t. */
export function qSample(x0: Tensor, t: number, schedule: Schedule, K: number, o: MaskOptions = {}): Tensor {
  checkStep(schedule, t, 0);
  return forwardStep(x0, 1 - schedule.alphacum[t], K, o);
}

/**
 * q(x_{t-1} | x_t, x_0) for 1 ≤ t ≤ T: float32 probabilities [..., K] for ids x0, xt of one shape,
 * in the official float32 arithmetic. At t = 1 it is exactly one-hot on x_0.
 */
export function posterior(x0: Tensor, xt: Tensor, t: number, schedule: Schedule, K: number): Tensor {
  checkStep(schedule, t, 1);
  const f = Math.fround;
  const acPrev = schedule.alphacum[t - 1], at = schedule.alpha[t];
  const fromX0 = x0.oneHot(K).float().mul(acPrev).add(f(f(1 - acPrev) / K)); // q(x_{t-1} | x_0)
  const toXt = xt.oneHot(K).float().mul(at).add(f(f(1 - at) / K)); //          q(x_t | x_{t-1}) as a function of x_{t-1}
  const unnorm = fromX0.mul(toXt);
  return unnorm.div(unnorm.sum(-1, true));
}

/** KL(q(x_T | x_0) ‖ uniform over K) in nats per token; the same for every x_0. */
export function priorKL(schedule: Schedule, K: number): number {
  const a = schedule.alphacum[schedule.T];
  const other = (1 - a) / K;
  const own = a + other;
  const term = (p: number) => (p > 0 ? p * Math.log(p * K) : 0);
  return term(own) + (K - 1) * term(other);
}

function checkStep(schedule: Schedule, t: number, min: number): void {
  if (!Number.isInteger(t) || t < min || t > schedule.T) throw new RangeError(`diffusion step ${t} outside ${min}..${schedule.T}`);
}
