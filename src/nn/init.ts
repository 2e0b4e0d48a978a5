/** Parameter initialisers (in place, without recording gradients), as torch.nn.init. */
import { Tensor, noGrad } from '../torch/index.js';

function fans(t: Tensor): [number, number] {
  const s = t.shape;
  if (s.length < 2) throw new Error(`fan in/out needs a tensor of ≥2 dims, got [${s.join(', ')}]`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return [s[1]! * receptive, s[0]! * receptive];
}

export const uniform_ = (t: Tensor, a: number, b: number): Tensor => noGrad(() => t.uniform_(a, b));
export const normal_ = (t: Tensor, mean = 0, std = 1): Tensor => noGrad(() => t.normal_(mean, std));
export const zeros_ = (t: Tensor): Tensor => noGrad(() => t.zero_());
export const ones_ = (t: Tensor): Tensor => noGrad(() => t.fill_(1));
export const constant_ = (t: Tensor, v: number): Tensor => noGrad(() => t.fill_(v));

/** PyTorch's default for Linear/Conv weights: kaiming_uniform(a=√5) = U(±1/√fan_in). */
export function defaultWeight_(t: Tensor): Tensor {
  const bound = 1 / Math.sqrt(fans(t)[0]);
  return uniform_(t, -bound, bound);
}
/** PyTorch's default for Linear/Conv biases: U(±1/√fan_in of the weight). */
export const defaultBias_ = (bias: Tensor, weight: Tensor): Tensor => {
  const bound = 1 / Math.sqrt(fans(weight)[0]);
  return uniform_(bias, -bound, bound);
};
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const [fi, fo] = fans(t);
  const a = gain * Math.sqrt(6 / (fi + fo));
  return uniform_(t, -a, a);
}
