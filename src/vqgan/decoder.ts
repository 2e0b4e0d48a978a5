/**
 * taming's Decoder: latent [B, zChannels, r, r] → image [B, outCh, R, R], the encoder's mirror.
 *
 * - conv_in (3×3) to ch·chMult[L−1] channels, mid (ResnetBlock, AttnBlock, ResnetBlock);
 * - levels run from the coarsest to the finest; `up.{i}` is stored by level (up.0 = full resolution)
 *   and holds numResBlocks+1 ResnetBlocks at width ch·chMult[i] (AttnBlocks after each when the level's
 *   resolution is in attnResolutions), then an Upsample on every level but up.0;
 * - norm_out, swish, conv_out (3×3) to outCh. No output nonlinearity (no tanh).
 */
import { Tensor } from '../torch/index.js';
import { Module, ModuleList, Conv2d, GroupNorm } from '../nn/index.js';
import { ResnetBlock, AttnBlock, Upsample, MidBlock, Level, Normalize, swish, chain } from './blocks.js';
import { latentSize, type DDConfig } from './config.js';

export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly mid: MidBlock;
  readonly up = new ModuleList<Level>();
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(dd: DDConfig) {
    super();
    const groups = dd.normGroups;
    const levels = dd.chMult.length;
    let blockIn = dd.ch * dd.chMult[levels - 1]!;
    let res = latentSize(dd);
    this.convIn = this.module('conv_in', new Conv2d(dd.zChannels, blockIn, 3, { padding: 1 }));
    this.mid = this.module('mid', new MidBlock(blockIn, dd.dropout, groups));
    const built: Level[] = [];
    for (let i = levels - 1; i >= 0; i--) {
      const level = new Level();
      const blockOut = dd.ch * dd.chMult[i]!;
      for (let j = 0; j < dd.numResBlocks + 1; j++) {
        level.block.push(new ResnetBlock(blockIn, blockOut, dd.dropout, groups));
        blockIn = blockOut;
        if (dd.attnResolutions.includes(res)) level.attn.push(new AttnBlock(blockIn, groups));
      }
      if (i !== 0) {
        level.setResample('upsample', new Upsample(blockIn));
        res *= 2;
      }
      built[i] = level;
    }
    this.module('up', this.up);
    for (const level of built) this.up.push(level);
    this.normOut = this.module('norm_out', Normalize(blockIn, groups));
    this.convOut = this.module('conv_out', new Conv2d(blockIn, dd.outCh, 3, { padding: 1 }));
  }

  /** [B, zChannels, r, r] → [B, outCh, R, R] */
  forward(z: Tensor): Tensor {
    return chain(z,
      (t) => this.convIn.forward(t), (t) => this.mid.forward(t),
      ...[...this.up.items].reverse().map((level) => (t: Tensor) => level.forward(t)),
      (t) => this.normOut.forward(t), swish, (t) => this.convOut.forward(t));
  }
}
