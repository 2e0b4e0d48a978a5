/**
 * taming's NLayerDiscriminator (a pix2pix PatchGAN), keys `main.{i}.*` as in nn.Sequential:
 *
 * - conv 4×4 stride 2 (inputNc → ndf, with bias), LeakyReLU 0.2;
 * - nLayers−1 times: conv 4×4 stride 2 (no bias), BatchNorm, LeakyReLU 0.2, widths ndf·min(2^n, 8);
 * - conv 4×4 stride 1 (no bias), BatchNorm, LeakyReLU 0.2; conv 4×4 stride 1 → 1 logit per patch.
 * - init: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02) and biases 0 (taming weights_init).
 *
 * A 32×32 input gives 2×2 patch logits with nLayers = 3; 16×16 inputs need nLayers ≤ 2.
 */
import { Tensor } from '../torch/index.js';
import { Module, ModuleList, Conv2d, BatchNorm2d, init } from '../nn/index.js';

export interface DiscriminatorConfig {
  /** Image channels. */
  inputNc: number;
  /** Width of the first layer (taming: 64). */
  ndf: number;
  /** Number of stride-2 convolutions (taming: 3). */
  nLayers: number;
}

class LeakyReLU extends Module {
  forward(x: Tensor): Tensor { return x.leakyRelu(0.2); }
}

type Layer = Conv2d | BatchNorm2d | LeakyReLU;

export class NLayerDiscriminator extends Module {
  readonly main = new ModuleList<Layer>();

  constructor(readonly config: DiscriminatorConfig) {
    super();
    const { inputNc, ndf, nLayers } = config;
    const conv = (i: number, o: number, stride: number, bias: boolean) => new Conv2d(i, o, 4, { stride, padding: 1, bias });
    this.main.push(conv(inputNc, ndf, 2, true)).push(new LeakyReLU());
    let mult = 1;
    for (let n = 1; n <= nLayers; n++) {
      const prev = mult;
      mult = Math.min(2 ** n, 8);
      this.main.push(conv(ndf * prev, ndf * mult, n < nLayers ? 2 : 1, false)).push(new BatchNorm2d(ndf * mult)).push(new LeakyReLU());
    }
    this.main.push(conv(ndf * mult, 1, 1, true));
    this.module('main', this.main);
    for (const layer of this.main) {
      if (layer instanceof Conv2d) init.normal_(layer.weight, 0, 0.02);
      if (layer instanceof BatchNorm2d) {
        init.normal_(layer.weight, 1, 0.02);
        init.zeros_(layer.bias);
      }
    }
  }

  /** [B, inputNc, H, W] → patch logits [B, 1, h, w] */
  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.main) h = layer.forward(h);
    return h;
  }
}

/** Hinge loss for the discriminator: ½(mean relu(1 − D(x)) + mean relu(1 + D(x̂))). */
export const hingeDLoss = (logitsReal: Tensor, logitsFake: Tensor): Tensor =>
  logitsReal.rsub(1).relu().mean().add(logitsFake.add(1).relu().mean()).mul(0.5);
