/** Gradient clipping, learning-rate schedules, weight-decay groups and an EMA of weights. */
import { Tensor, stack, noGrad, tidy } from '../torch/index.js';
import type { Module } from '../nn/module.js';
import type { ParamGroup } from './adamw.js';

/** Scales gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return noGrad(() => tidy(() => {
    const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== undefined);
    if (grads.length === 0) return 0;
    const total = stack(grads.map((g) => g.norm(2))).norm(2).item();
    const coef = maxNorm / (total + 1e-6);
    if (coef < 1) for (const g of grads) g.mul_(coef);
    return total;
  }));
}

/** Linear warm-up from 0 to `base` over `warmup` steps, then cosine decay to `min` at `total`. */
export function warmupCosine(o: { base: number; warmup: number; total: number; min?: number }): (step: number) => number {
  const min = o.min ?? 0;
  return (step) => {
    if (step < o.warmup) return (o.base * (step + 1)) / o.warmup;
    const progress = Math.min(1, (step - o.warmup) / Math.max(1, o.total - o.warmup));
    return min + 0.5 * (o.base - min) * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * Splits a module's parameters into decayed and non-decayed groups, as minGPT and the official
 * ImageBART code: weights of layers named in `decay` (Linear, Conv) decay; biases, norms,
 * embeddings and positional tables do not. Throws unless every parameter lands in exactly one group.
 */
export function weightDecayGroups(model: Module, weightDecay: number, isDecayed: (paramName: string, owner: Module) => boolean): ParamGroup[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [prefix, m] of model.namedModules()) {
    for (const [name, p] of m.namedParameters()) {
      if (name.includes('.')) continue; // owned by a child; visited there
      (isDecayed(prefix ? `${prefix}.${name}` : name, m) ? decay : noDecay).push(p);
    }
  }
  const all = model.parameters();
  const covered = new Set([...decay, ...noDecay]);
  if (covered.size !== all.length || decay.length + noDecay.length !== all.length) {
    throw new Error(`weightDecayGroups: ${all.length} parameters but ${covered.size} grouped`);
  }
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }];
}

/**
 * Exponential moving average of a module's parameters (the official LitEma): the decay warms up
 * as min(decay, (1 + n) / (10 + n)) over the first updates. Buffers are copied, not averaged.
 */
export class EMA {
  readonly shadow = new Map<string, Tensor>();
  updates = 0;
  private backup?: Map<string, Tensor>;

  constructor(readonly model: Module, readonly decay = 0.9999, readonly warmup = true) {
    noGrad(() => {
      for (const [n, p] of model.namedParameters()) this.shadow.set(n, p.detach().clone().keep());
    });
  }

  update(): void {
    this.updates += 1;
    const d = this.warmup ? Math.min(this.decay, (1 + this.updates) / (10 + this.updates)) : this.decay;
    noGrad(() => tidy(() => {
      for (const [n, p] of this.model.namedParameters()) this.shadow.get(n)!.lerp_(p, 1 - d);
    }));
  }

  /** Puts the averaged weights into the model (restore() undoes it). */
  apply(): void {
    noGrad(() => {
      this.backup = new Map(this.model.namedParameters().map(([n, p]) => [n, p.detach().clone().keep()]));
      for (const [n, p] of this.model.namedParameters()) p.copy_(this.shadow.get(n)!);
    });
  }

  restore(): void {
    if (!this.backup) throw new Error('EMA.restore() without apply()');
    noGrad(() => {
      for (const [n, p] of this.model.namedParameters()) p.copy_(this.backup!.get(n)!);
    });
    for (const t of this.backup.values()) t.dispose();
    this.backup = undefined;
  }

  /** Runs fn with the averaged weights in place. */
  with<T>(fn: () => T): T {
    this.apply();
    try {
      return fn();
    } finally {
      this.restore();
    }
  }

  stateDict(): Map<string, Tensor> { return new Map(this.shadow); }

  loadStateDict(sd: Map<string, Tensor>, updates: number): void {
    noGrad(() => {
      for (const [n, t] of this.shadow) {
        const v = sd.get(n);
        if (!v) throw new Error(`EMA state is missing '${n}'`);
        t.copy_(v);
      }
    });
    this.updates = updates;
  }
}
