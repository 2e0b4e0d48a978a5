/** Basic layers with PyTorch's parameter names, shapes and default initialisation. */
import { Tensor, empty, zeros, ones, linear, conv2d, groupNorm, layerNorm, batchNorm, embedding, dropout, type ConvOptions } from '../torch/index.js';
import { Module, ModuleList } from './module.js';
import { defaultWeight_, defaultBias_, normal_ } from './init.js';

/** y = x·Wᵀ + b; weight [out, in]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias?: Tensor;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.param('weight', defaultWeight_(empty([outFeatures, inFeatures])));
    if (bias) this.bias = this.param('bias', defaultBias_(empty([outFeatures]), this.weight));
  }
  forward(x: Tensor): Tensor { return linear(x, this.weight, this.bias); }
}

/** 2-d convolution; weight [out, in, k, k]. */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias?: Tensor;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, readonly opts: ConvOptions & { bias?: boolean } = {}) {
    super();
    this.weight = this.param('weight', defaultWeight_(empty([outChannels, inChannels / (opts.groups ?? 1), kernelSize, kernelSize])));
    if (opts.bias ?? true) this.bias = this.param('bias', defaultBias_(empty([outChannels]), this.weight));
  }
  forward(x: Tensor): Tensor { return conv2d(x, this.weight, this.bias, this.opts); }
}

export class GroupNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5) {
    super();
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: ${numChannels} channels do not split into ${numGroups} groups`);
    this.weight = this.param('weight', ones([numChannels]));
    this.bias = this.param('bias', zeros([numChannels]));
  }
  /** Normalises at the weights' precision: a bf16 activation from an autocast conv is normalised in float32 (libtorch's CPU autocast has no rule for group_norm). */
  forward(x: Tensor): Tensor {
    return groupNorm(x.dtype === this.weight.dtype ? x : x.to(this.weight.dtype), this.numGroups, this.weight, this.bias, this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', ones([dim]));
    this.bias = this.param('bias', zeros([dim]));
  }
  forward(x: Tensor): Tensor { return layerNorm(x, [this.dim], this.weight, this.bias, this.eps); }
}

/** Batch norm over [N, C, H, W] with running statistics (buffers running_mean, running_var, num_batches_tracked). */
export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly numBatchesTracked: Tensor;
  constructor(readonly numFeatures: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.param('weight', ones([numFeatures]));
    this.bias = this.param('bias', zeros([numFeatures]));
    this.runningMean = this.buffer('running_mean', zeros([numFeatures]));
    this.runningVar = this.buffer('running_var', ones([numFeatures]));
    this.numBatchesTracked = this.buffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
  }
  forward(x: Tensor): Tensor {
    if (this.training) this.numBatchesTracked.add_(1);
    return batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, this.training, this.momentum, this.eps);
  }
}

/** Lookup table [num, dim], initialised N(0, 1) as PyTorch. */
export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(readonly num: number, readonly dim: number) {
    super();
    this.weight = this.param('weight', normal_(empty([num, dim])));
  }
  forward(ids: Tensor): Tensor { return embedding(this.weight, ids); }
}

export class Dropout extends Module {
  constructor(readonly p: number) { super(); }
  forward(x: Tensor): Tensor { return dropout(x, this.p, this.training); }
}

/** A module with the one-tensor forward Sequential chains. */
export type Layer = Module & { forward(x: Tensor): Tensor };

/** PyTorch's nn.Sequential: children keyed '0', '1', …, applied in order. */
export class Sequential extends ModuleList<Layer> {
  forward(x: Tensor): Tensor {
    return this.items.reduce((h, m) => m.forward(h), x);
  }
}

/** Exact (erf) GELU, as nn.GELU(). */
export class GELU extends Module {
  forward(x: Tensor): Tensor { return x.gelu(); }
}
