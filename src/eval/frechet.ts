/**
 * Fréchet distance between two sets of feature vectors, each summarised by a Gaussian (the FID's
 * formula, here on the project's own classifier features):
 *
 *   d² = ‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^{1/2}
 *
 * tr (Σ_a Σ_b)^{1/2} = Σ_i √λ_i with λ the eigenvalues of Σ_a Σ_b, which are those of the symmetric
 * PSD matrix S Σ_b S with S = Σ_a^{1/2} (from the eigen-decomposition of Σ_a). Everything is float64;
 * tiny negative eigenvalues from rounding are clamped to 0.
 *
 * The estimate is biased by the number of vectors: compare distances only at equal N.
 */
import { type Tensor, eigh, eigvalsh, noGrad, tidy, tensor } from '../torch/index.js';

/** Mean and covariance of N feature vectors. */
export interface GaussianStats {
  /** [D] float64 */
  mu: Float64Array;
  /** [D·D] float64, row-major */
  sigma: Float64Array;
  dim: number;
  n: number;
}

/** Mean and (unbiased) covariance of features [N, D]. */
export function gaussianStats(features: Tensor): GaussianStats {
  if (features.ndim !== 2) throw new Error(`features must be [N, D], got [${features.shape.join(', ')}]`);
  const [n, dim] = features.shape as [number, number];
  if (n < 2) throw new Error(`Fréchet statistics need at least 2 feature vectors, got ${n}`);
  return noGrad(() => tidy(() => {
    const x = features.double();
    const mu = x.mean([0]);
    const c = x.sub(mu);
    const sigma = c.transpose(0, 1).mm(c).div(n - 1);
    return { mu: mu.toArray() as Float64Array, sigma: sigma.contiguous().toArray() as Float64Array, dim, n };
  }));
}

/** d² between two Gaussians (see the module comment). */
export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  if (a.dim !== b.dim) throw new Error(`Fréchet distance between ${a.dim}- and ${b.dim}-dimensional features`);
  const D = a.dim;
  return noGrad(() => tidy(() => {
    const sa = tensor(a.sigma, [D, D]), sb = tensor(b.sigma, [D, D]);
    const diff = tensor(a.mu, [D]).sub(tensor(b.mu, [D]));
    const [values, vectors] = eigh(sa);
    const root = vectors.mul(values.clamp(0).sqrt()).mm(vectors.transpose(0, 1)); // Σ_a^{1/2}
    const m = root.mm(sb).mm(root);
    const traceSqrt = eigvalsh(m.add(m.transpose(0, 1)).div(2)).clamp(0).sqrt().sum().item();
    const trace = (s: Float64Array) => Array.from({ length: D }, (_, i) => s[i * D + i]).reduce((x, y) => x + y, 0);
    const d = diff.square().sum().item() + trace(a.sigma) + trace(b.sigma) - 2 * traceSqrt;
    return Math.max(d, 0);
  }));
}
