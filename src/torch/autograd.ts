/** Grad mode scopes and gradients of arbitrary outputs. */
import { native } from './native.js';
import { Tensor } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = native.isGradEnabled();
  native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn without recording operations for autograd (PyTorch's torch.no_grad()). */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);
/** Re-enables recording inside a noGrad scope. */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);
export const isGradEnabled = (): boolean => native.isGradEnabled();

/** Backpropagates from several outputs at once. */
export function backward(outputs: Tensor[], grads?: (Tensor | undefined)[], opts: { retainGraph?: boolean } = {}): void {
  native.backward(outputs.map((t) => t.h), grads?.map((g) => g?.h), opts.retainGraph ?? false, false);
}

/** d(outputs)/d(inputs) without touching `.grad` (PyTorch's torch.autograd.grad). */
export function grad(
  outputs: Tensor[],
  inputs: Tensor[],
  opts: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean } = {},
): (Tensor | undefined)[] {
  const res = native.autogradGrad(
    outputs.map((t) => t.h), inputs.map((t) => t.h), opts.gradOutputs?.map((g) => g.h),
    opts.retainGraph ?? false, opts.createGraph ?? false, opts.allowUnused ?? false,
  );
  return res.map((h) => (h === undefined ? undefined : new Tensor(h)));
}
