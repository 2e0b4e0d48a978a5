/**
 * Checks autograd against central finite differences (PyTorch's gradcheck), in float64.
 * fn maps the inputs to a tensor; the check compares d(sum(fn·w))/d(input) for a fixed random
 * weighting w, which exercises every output element at the cost of one backward pass.
 */
import { Tensor } from './tensor.js';
import { randnLike } from './create.js';
import { noGrad } from './autograd.js';
import { tidy } from './scope.js';

export interface GradcheckResult {
  ok: boolean;
  maxAbsErr: number;
  maxRelErr: number;
  worst: string;
}

export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], o: { eps?: number; atol?: number; rtol?: number } = {}): GradcheckResult {
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-3;
  return tidy(() => {
    for (const x of inputs) if (x.dtype !== 'float64') throw new Error(`gradcheck needs float64 inputs, got ${x.dtype}`);
    const xs = inputs.map((x) => x.detach().clone().requiresGrad_(true));
    const out0 = fn(...xs);
    const w = randnLike(out0).detach();
    out0.mul(w).sum().backward();
    const analytic = xs.map((x) => x.grad?.toArray() as Float64Array | undefined);
    let maxAbsErr = 0;
    let maxRelErr = 0;
    let worst = '';
    let ok = true;
    noGrad(() => {
      xs.forEach((x, i) => {
        const data = new Float64Array(x.mapData());
        for (let j = 0; j < data.length; j++) {
          const orig = data[j]!;
          data[j] = orig + eps;
          const plus = fn(...xs).mul(w).sum().item();
          data[j] = orig - eps;
          const minus = fn(...xs).mul(w).sum().item();
          data[j] = orig;
          const numeric = (plus - minus) / (2 * eps);
          const a = analytic[i]?.[j] ?? 0;
          const err = Math.abs(a - numeric);
          const rel = err / Math.max(Math.abs(numeric), 1e-12);
          if (err > maxAbsErr) {
            maxAbsErr = err;
            worst = `input ${i} element ${j}: analytic ${a}, numeric ${numeric}`;
          }
          if (rel > maxRelErr && err > atol) maxRelErr = rel;
          if (err > atol + rtol * Math.abs(numeric)) ok = false;
        }
      });
    });
    return { ok, maxAbsErr, maxRelErr, worst };
  });
}
