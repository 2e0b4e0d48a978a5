/** Functions over several tensors and neural-network primitives (PyTorch's torch.* and F.*). */
import { Tensor, op, wrap, type Operand } from './tensor.js';

const H = (t: Tensor | undefined | null) => (t == null ? undefined : t.h);

const A = {
  cat: op('aten::cat'), stack: op('aten::stack'), where: op('aten::where.self'), whereScalar: op('aten::where.ScalarOther'),
  whereScalarSelf: op('aten::where.ScalarSelf'), whereScalars: op('aten::where.Scalar'),
  conv2d: op('aten::conv2d'), convTranspose2d: op('aten::conv_transpose2d.input'), linear: op('aten::linear'),
  groupNorm: op('aten::group_norm'), layerNorm: op('aten::layer_norm'), batchNorm: op('aten::batch_norm'),
  embedding: op('aten::embedding'), crossEntropy: op('aten::cross_entropy_loss'), nllLoss: op('aten::nll_loss_nd'),
  klDiv: op('aten::kl_div'), mse: op('aten::mse_loss'), l1: op('aten::l1_loss'), bceLogits: op('aten::binary_cross_entropy_with_logits'),
  dropout: op('aten::dropout'), nearest2d: op('aten::upsample_nearest2d.vec'), bilinear2d: op('aten::upsample_bilinear2d.vec'),
  constantPad: op('aten::constant_pad_nd'), reflectionPad2d: op('aten::reflection_pad2d'), replicationPad2d: op('aten::replication_pad2d'),
  cdist: op('aten::cdist'), avgPool2d: op('aten::avg_pool2d'), baddbmm: op('aten::baddbmm'),
  eigh: op('aten::linalg_eigh'), eigvalsh: op('aten::linalg_eigvalsh'),
};

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;

export const cat = (ts: readonly Tensor[], dim = 0): Tensor => wrap(A.cat(ts.map((t) => t.h), dim));
export const stack = (ts: readonly Tensor[], dim = 0): Tensor => wrap(A.stack(ts.map((t) => t.h), dim));

/** cond ? a : b, elementwise with broadcasting. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (typeof a === 'number' && typeof b === 'number') return wrap(A.whereScalars(cond.h, a, b));
  if (typeof a === 'number') return wrap(A.whereScalarSelf(cond.h, a, (b as Tensor).h));
  if (typeof b === 'number') return wrap(A.whereScalar(cond.h, a.h, b));
  return wrap(A.where(cond.h, a.h, b.h));
}

/** y = x·Wᵀ + b, W laid out [out, in] as in PyTorch. */
export const linear = (x: Tensor, weight: Tensor, bias?: Tensor): Tensor => wrap(A.linear(x.h, weight.h, H(bias)));

export interface ConvOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}
/** 2-d convolution, weight [out, in/groups, kh, kw]. Asymmetric padding: pad() first. */
export const conv2d = (x: Tensor, weight: Tensor, bias?: Tensor, o: ConvOptions = {}): Tensor =>
  wrap(A.conv2d(x.h, weight.h, H(bias), o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1));
/** Transposed 2-d convolution, weight [in, out/groups, kh, kw]. */
export const convTranspose2d = (x: Tensor, weight: Tensor, bias?: Tensor, o: ConvOptions & { outputPadding?: number | [number, number] } = {}): Tensor =>
  wrap(A.convTranspose2d(x.h, weight.h, H(bias), o.stride ?? 1, o.padding ?? 0, o.outputPadding ?? 0, o.groups ?? 1, o.dilation ?? 1));

export const groupNorm = (x: Tensor, groups: number, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor =>
  wrap(A.groupNorm(x.h, groups, H(weight), H(bias), eps, false));
export const layerNorm = (x: Tensor, normalizedShape: number[], weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor =>
  wrap(A.layerNorm(x.h, normalizedShape, H(weight), H(bias), eps, false));
/** Batch norm; in training mode the running statistics are updated in place. */
export const batchNorm = (
  x: Tensor, runningMean: Tensor | undefined, runningVar: Tensor | undefined, weight: Tensor | undefined, bias: Tensor | undefined,
  training: boolean, momentum = 0.1, eps = 1e-5,
): Tensor => wrap(A.batchNorm(x.h, H(weight), H(bias), H(runningMean), H(runningVar), training, momentum, eps, false));

export const embedding = (weight: Tensor, indices: Tensor): Tensor => wrap(A.embedding(weight.h, indices.h, -1, false, false));

export interface CrossEntropyOptions {
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
  weight?: Tensor;
}
/** Cross-entropy from logits [N, C, ...] and class targets [N, ...] (or class probabilities, same shape as logits). */
export const crossEntropy = (logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor =>
  wrap(A.crossEntropy(logits.h, target.h, H(o.weight), REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100, o.labelSmoothing ?? 0));
export const nllLoss = (logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor =>
  wrap(A.nllLoss(logProbs.h, target.h, H(o.weight), REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100));
/** PyTorch's kl_div: input is log-probabilities, target probabilities (or log with logTarget); 0·log 0 = 0. */
export const klDiv = (input: Tensor, target: Tensor, reduction: Reduction = 'mean', logTarget = false): Tensor =>
  wrap(A.klDiv(input.h, target.h, REDUCTION[reduction], logTarget));
export const mseLoss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor => wrap(A.mse(a.h, b.h, REDUCTION[reduction]));
export const l1Loss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor => wrap(A.l1(a.h, b.h, REDUCTION[reduction]));
export const bceWithLogits = (logits: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor =>
  wrap(A.bceLogits(logits.h, target.h, undefined, undefined, REDUCTION[reduction]));

export const dropout = (x: Tensor, p: number, training: boolean): Tensor => (p === 0 || !training ? x : wrap(A.dropout(x.h, p, training)));

/** Resizes [N, C, H, W] to `size` or by `scale`: nearest (PyTorch's legacy 'nearest') or bilinear. */
export function interpolate(x: Tensor, o: { size?: [number, number]; scale?: number; mode?: 'nearest' | 'bilinear'; alignCorners?: boolean }): Tensor {
  if ((o.size === undefined) === (o.scale === undefined)) throw new Error('interpolate: give exactly one of size and scale');
  const scales = o.scale === undefined ? undefined : [o.scale, o.scale];
  if ((o.mode ?? 'nearest') === 'nearest') return wrap(A.nearest2d(x.h, o.size, scales));
  return wrap(A.bilinear2d(x.h, o.size, o.alignCorners ?? false, scales));
}

/** Pads the last dimensions: [left, right, top, bottom, ...] as PyTorch's F.pad. */
export function pad(x: Tensor, amounts: number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant', value = 0): Tensor {
  if (mode === 'constant') return wrap(A.constantPad(x.h, amounts, value));
  if (amounts.length !== 4) throw new Error(`pad: ${mode} padding takes 4 amounts for [N, C, H, W]`);
  return wrap(mode === 'reflect' ? A.reflectionPad2d(x.h, amounts) : A.replicationPad2d(x.h, amounts));
}

/** Eigen-decomposition of symmetric matrices: eigenvalues ascending [.., n] and eigenvectors as columns [.., n, n]. */
export function eigh(x: Tensor): [Tensor, Tensor] {
  const [values, vectors] = A.eigh(x.h, 'L') as unknown[];
  return [wrap(values), wrap(vectors)];
}

/** Eigenvalues of symmetric matrices, ascending [.., n]. */
export const eigvalsh = (x: Tensor): Tensor => wrap(A.eigvalsh(x.h, 'L'));

export const avgPool2d = (x: Tensor, kernel: number, stride = kernel): Tensor => wrap(A.avgPool2d(x.h, kernel, stride));

/** Pairwise p-norm distances between rows of [B, P, M] and [B, R, M] (or 2-d). */
export const cdist = (a: Tensor, b: Tensor, p = 2): Tensor => wrap(A.cdist(a.h, b.h, p));

/** beta·input + alpha·(a @ b), batched. */
export const baddbmm = (input: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor => wrap(A.baddbmm(input.h, a.h, b.h, beta, alpha));

/**
 * softmax(q·kᵀ·scale + mask)·v over [..., L, D] tensors; `mask` is added to the scores
 * (use -Infinity or a large negative number for blocked positions).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: { scale?: number; mask?: Tensor } = {}): Tensor {
  const scale = o.scale ?? 1 / Math.sqrt(q.size(-1));
  const kt = k.transpose(-2, -1);
  let scores = q.matmul(kt).mul(scale);
  if (o.mask) scores = scores.add(o.mask);
  return scores.softmax(-1).matmul(v);
}
