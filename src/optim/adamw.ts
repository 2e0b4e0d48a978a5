/**
 * Adam and AdamW (PyTorch's single-tensor update, same arithmetic), with parameter groups.
 * AdamW decays weights directly (p ← p·(1 − lr·wd)); Adam with weightDecay adds wd·p to the gradient.
 */
import { Tensor, zerosLike, noGrad, tidy } from '../torch/index.js';

export interface ParamGroup {
  params: Tensor[];
  weightDecay?: number;
  /** Multiplies the optimiser's learning rate for this group. */
  lrScale?: number;
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** true: AdamW (decoupled decay, the default); false: Adam with L2 added to the gradient. */
  decoupled?: boolean;
}

interface Slot {
  p: Tensor;
  m?: Tensor;
  v?: Tensor;
  wd: number;
  lrScale: number;
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly decoupled: boolean;
  /** Number of optimiser steps taken (shared by all parameters, as each one steps every time). */
  step = 0;
  private readonly slots: Slot[] = [];

  constructor(params: Tensor[] | ParamGroup[], o: AdamOptions = {}) {
    this.lr = o.lr ?? 1e-3;
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.decoupled = o.decoupled ?? true;
    const groups: ParamGroup[] = params.length > 0 && params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroup[]);
    const seen = new Set<Tensor>();
    for (const g of groups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new Error('AdamW: a parameter appears in more than one group');
        seen.add(p);
        this.slots.push({ p, wd: g.weightDecay ?? o.weightDecay ?? (this.decoupled ? 0.01 : 0), lrScale: g.lrScale ?? 1 });
      }
    }
  }

  get params(): Tensor[] { return this.slots.map((s) => s.p); }

  zeroGrad(): void {
    for (const s of this.slots) s.p.grad = undefined;
  }

  /** One update from the gradients in `.grad` (parameters without a gradient are skipped). */
  stepUpdate(): void {
    this.step += 1;
    const [b1, b2] = this.betas;
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    noGrad(() => tidy(() => {
      for (const s of this.slots) {
        let g = s.p.grad;
        if (!g) continue;
        const lr = this.lr * s.lrScale;
        s.m ??= zerosLike(s.p).keep();
        s.v ??= zerosLike(s.p).keep();
        if (s.wd !== 0) {
          if (this.decoupled) s.p.mul_(1 - lr * s.wd);
          else g = g.add(s.p, s.wd);
        }
        s.m.lerp_(g, 1 - b1);
        s.v.mul_(b2).addcmul_(g, g, 1 - b2);
        const denom = s.v.sqrt().div_(Math.sqrt(bc2)).add_(this.eps);
        s.p.addcdiv_(s.m, denom, -lr / bc1);
      }
    }));
  }

  /** Moment estimates and step count, for checkpoints (keys `state.{i}.exp_avg|exp_avg_sq`). */
  stateDict(): { tensors: Map<string, Tensor>; step: number } {
    const tensors = new Map<string, Tensor>();
    this.slots.forEach((s, i) => {
      if (s.m && s.v) {
        tensors.set(`state.${i}.exp_avg`, s.m);
        tensors.set(`state.${i}.exp_avg_sq`, s.v);
      }
    });
    return { tensors, step: this.step };
  }

  loadStateDict(sd: { tensors: Map<string, Tensor>; step: number }): void {
    this.step = sd.step;
    this.slots.forEach((s, i) => {
      const m = sd.tensors.get(`state.${i}.exp_avg`);
      const v = sd.tensors.get(`state.${i}.exp_avg_sq`);
      if (!m !== !v) throw new Error(`optimizer state ${i}: exp_avg and exp_avg_sq must come together`);
      if (!m || !v) {
        s.m = s.v = undefined;
        return;
      }
      const want = s.p.shape.join(',');
      if (m.shape.join(',') !== want || v.shape.join(',') !== want) {
        throw new Error(`optimizer state ${i}: moments have shape [${m.shape}] but the parameter has [${s.p.shape}]`);
      }
      s.m = m.clone().keep();
      s.v = v.clone().keep();
    });
  }
}
