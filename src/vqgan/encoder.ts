/**
 * taming's Encoder: image [B, inChannels, R, R] → latent [B, zChannels, R/2^(L−1), R/2^(L−1)].
 *
 * - conv_in (3×3) to ch channels;
 * - L levels `down.{i}` of numResBlocks ResnetBlocks at width ch·chMult[i] (AttnBlocks after each when
 *   the level's resolution, tested before downsampling, is in attnResolutions), a Downsample after
 *   every level but the last;
 * - mid (ResnetBlock, AttnBlock, ResnetBlock), norm_out, swish, conv_out (3×3) to zChannels (×2 if doubleZ).
 */
import { Tensor } from '../torch/index.js';
import { Module, ModuleList, Conv2d, GroupNorm } from '../nn/index.js';
import { ResnetBlock, AttnBlock, Downsample, MidBlock, Level, Normalize, swish, chain } from './blocks.js';
import type { DDConfig } from './config.js';

export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly down = new ModuleList<Level>();
  readonly mid: MidBlock;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(dd: DDConfig) {
    super();
    const groups = dd.normGroups;
    this.convIn = this.module('conv_in', new Conv2d(dd.inChannels, dd.ch, 3, { padding: 1 }));
    this.module('down', this.down);
    let res = dd.resolution;
    let blockIn = dd.ch;
    dd.chMult.forEach((mult, i) => {
      const level = new Level();
      const blockOut = dd.ch * mult;
      for (let j = 0; j < dd.numResBlocks; j++) {
        level.block.push(new ResnetBlock(blockIn, blockOut, dd.dropout, groups));
        blockIn = blockOut;
        if (dd.attnResolutions.includes(res)) level.attn.push(new AttnBlock(blockIn, groups));
      }
      if (i !== dd.chMult.length - 1) {
        level.setResample('downsample', new Downsample(blockIn));
        res /= 2;
      }
      this.down.push(level);
    });
    this.mid = this.module('mid', new MidBlock(blockIn, dd.dropout, groups));
    this.normOut = this.module('norm_out', Normalize(blockIn, groups));
    this.convOut = this.module('conv_out', new Conv2d(blockIn, dd.doubleZ ? 2 * dd.zChannels : dd.zChannels, 3, { padding: 1 }));
  }

  /** [B, inChannels, R, R] → [B, zChannels, r, r] */
  forward(x: Tensor): Tensor {
    return chain(x,
      (t) => this.convIn.forward(t),
      ...this.down.items.map((level) => (t: Tensor) => level.forward(t)),
      (t) => this.mid.forward(t), (t) => this.normOut.forward(t), swish, (t) => this.convOut.forward(t));
  }
}
