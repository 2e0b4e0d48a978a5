/**
 * The building blocks of taming-transformers' convolutional autoencoder
 * (taming/modules/diffusionmodules/model.py), with its parameter names:
 *
 * - Normalize = GroupNorm(32 groups, eps 1e-6, affine); nonlinearity = swish, x·sigmoid(x).
 * - ResnetBlock: norm1 → swish → conv1(3×3) → norm2 → swish → dropout → conv2(3×3), plus the input
 *   (through a 1×1 `nin_shortcut` when the channel count changes).
 * - AttnBlock: single-head self-attention over all H·W positions, 1×1 q/k/v/proj_out convs, scale c^-½.
 * - Downsample: zero-pad right and bottom by one, then a 3×3 stride-2 conv without padding.
 * - Upsample: nearest-neighbour ×2, then a 3×3 conv.
 */
import { Tensor, pad, interpolate, dropout } from '../torch/index.js';
import { Module, ModuleList, Conv2d, GroupNorm } from '../nn/index.js';

/** taming's default number of GroupNorm groups. */
export const NORM_GROUPS = 32;

export const Normalize = (channels: number, groups = NORM_GROUPS): GroupNorm => new GroupNorm(groups, channels, 1e-6);

export const swish = (x: Tensor): Tensor => x.silu();

export class ResnetBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly ninShortcut?: Conv2d;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly dropoutP: number, groups = NORM_GROUPS) {
    super();
    this.norm1 = this.module('norm1', Normalize(inChannels, groups));
    this.conv1 = this.module('conv1', new Conv2d(inChannels, outChannels, 3, { padding: 1 }));
    this.norm2 = this.module('norm2', Normalize(outChannels, groups));
    this.conv2 = this.module('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1 }));
    if (inChannels !== outChannels) this.ninShortcut = this.module('nin_shortcut', new Conv2d(inChannels, outChannels, 1));
  }

  /** [B, in, H, W] → [B, out, H, W] */
  forward(x: Tensor): Tensor {
    let h = this.conv1.forward(swish(this.norm1.forward(x)));
    h = this.conv2.forward(dropout(swish(this.norm2.forward(h)), this.dropoutP, this.training));
    return (this.ninShortcut ? this.ninShortcut.forward(x) : x).add(h);
  }
}

export class AttnBlock extends Module {
  readonly norm: GroupNorm;
  readonly q: Conv2d;
  readonly k: Conv2d;
  readonly v: Conv2d;
  readonly projOut: Conv2d;

  constructor(readonly channels: number, groups = NORM_GROUPS) {
    super();
    this.norm = this.module('norm', Normalize(channels, groups));
    this.q = this.module('q', new Conv2d(channels, channels, 1));
    this.k = this.module('k', new Conv2d(channels, channels, 1));
    this.v = this.module('v', new Conv2d(channels, channels, 1));
    this.projOut = this.module('proj_out', new Conv2d(channels, channels, 1));
  }

  /** [B, C, H, W] → [B, C, H, W] */
  forward(x: Tensor): Tensor {
    const h = this.norm.forward(x);
    const [b, c, hh, ww] = h.shape as [number, number, number, number];
    const q = this.q.forward(h).reshape(b, c, hh * ww).permute(0, 2, 1); // [B, HW, C]
    const k = this.k.forward(h).reshape(b, c, hh * ww); // [B, C, HW]
    const v = this.v.forward(h).reshape(b, c, hh * ww); // [B, C, HW]
    const w = q.bmm(k).mul(c ** -0.5).softmax(2); // [B, HW(query), HW(key)]
    const out = v.bmm(w.permute(0, 2, 1)).reshape(b, c, hh, ww); // [B, C, HW(query)]
    return x.add(this.projOut.forward(out));
  }
}

export class Downsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, channels, 3, { stride: 2 }));
  }
  /** [B, C, H, W] → [B, C, H/2, W/2] */
  forward(x: Tensor): Tensor { return this.conv.forward(pad(x, [0, 1, 0, 1])); }
}

export class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, channels, 3, { padding: 1 }));
  }
  /** [B, C, H, W] → [B, C, 2H, 2W] */
  forward(x: Tensor): Tensor { return this.conv.forward(interpolate(x, { scale: 2 })); }
}

/** The middle of both encoder and decoder: ResnetBlock → AttnBlock → ResnetBlock at constant width. */
export class MidBlock extends Module {
  readonly block1: ResnetBlock;
  readonly attn1: AttnBlock;
  readonly block2: ResnetBlock;
  constructor(channels: number, dropoutP: number, groups = NORM_GROUPS) {
    super();
    this.block1 = this.module('block_1', new ResnetBlock(channels, channels, dropoutP, groups));
    this.attn1 = this.module('attn_1', new AttnBlock(channels, groups));
    this.block2 = this.module('block_2', new ResnetBlock(channels, channels, dropoutP, groups));
  }
  forward(x: Tensor): Tensor { return this.block2.forward(this.attn1.forward(this.block1.forward(x))); }
}

/**
 * One resolution level: `block.{i}` ResnetBlocks, each followed by `attn.{i}` when the level's
 * resolution is in attn_resolutions, then an optional resampling layer (`downsample` or `upsample`).
 */
export class Level extends Module {
  readonly block = this.module('block', new ModuleList<ResnetBlock>());
  readonly attn = this.module('attn', new ModuleList<AttnBlock>());
  private resample?: Downsample | Upsample;

  setResample(name: 'downsample' | 'upsample', m: Downsample | Upsample): void {
    this.resample = this.module(name, m);
  }

  forward(x: Tensor): Tensor {
    let h = x;
    this.block.items.forEach((b, i) => {
      h = b.forward(h);
      if (this.attn.length > 0) h = this.attn.at(i).forward(h);
    });
    return this.resample ? this.resample.forward(h) : h;
  }
}
