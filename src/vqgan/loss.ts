/**
 * taming's VQLPIPSWithDiscriminator, the VQGAN training objective:
 *
 * - nll = mean |x − x̂| (+ perceptualWeight · mean LPIPS(x, x̂) when LPIPS weights are given);
 * - generator (autoencoder) loss = nll + codebookWeight · q_loss + λ · discFactor · g_loss, with
 *   g_loss = −mean D(x̂) and the adaptive weight λ = discWeight · clamp(‖∇nll‖ / (‖∇g_loss‖ + 1e-4), 0, 1e4),
 *   both gradients taken at the decoder's last conv weight;
 * - discriminator loss = discFactor · hinge(D(x), D(sg[x̂])), with D a PatchGAN (NLayerDiscriminator);
 * - the adversarial terms start at step `discStart` (taming multiplies them by 0 before; here they are
 *   skipped, which gives the same updates without the cost).
 *
 * Its state-dict keys are taming's `discriminator.*`; checkpoints store them under `loss.`.
 */
import { Tensor, grad, noGrad, tidy } from '../torch/index.js';
import { Module } from '../nn/index.js';
import { NLayerDiscriminator, hingeDLoss } from './discriminator.js';
import type { LPIPS } from './perceptual.js';

export interface VQGANLossConfig {
  /** Step at which the discriminator and the adversarial term switch on. */
  discStart: number;
  codebookWeight: number;
  /** Weight of LPIPS; needs `perceptual` weights, else must be 0. */
  perceptualWeight: number;
  /** safetensors file with LPIPS (or VGG16 + LPIPS lin) weights; none ship with the project. */
  perceptualWeights?: string;
  discNumLayers: number;
  discNdf: number;
  discFactor: number;
  discWeight: number;
}

/** taming's defaults, with discWeight 0.8 as in the official VQGAN configs and LPIPS off (no weights offline). */
export const DEFAULT_LOSS: VQGANLossConfig = {
  discStart: 10_000,
  codebookWeight: 1,
  perceptualWeight: 0,
  discNumLayers: 3,
  discNdf: 64,
  discFactor: 1,
  discWeight: 0.8,
};

export interface GeneratorLoss {
  loss: Tensor;
  /** Logged terms (numbers). */
  log: { rec: number; p: number; nll: number; q: number; g: number; dWeight: number };
}

export class VQGANLoss extends Module {
  readonly discriminator: NLayerDiscriminator;

  constructor(readonly config: VQGANLossConfig, imageChannels: number, readonly perceptual?: LPIPS) {
    super();
    if (config.perceptualWeight > 0 && !perceptual) {
      throw new Error('VQGAN loss: perceptualWeight > 0 needs LPIPS weights (perceptualWeights); none are available offline, set perceptualWeight to 0');
    }
    this.discriminator = this.module('discriminator', new NLayerDiscriminator({ inputNc: imageChannels, ndf: config.discNdf, nLayers: config.discNumLayers }));
  }

  /** Adversarial terms on at this step? */
  discActive(step: number): boolean { return step >= this.config.discStart && this.config.discFactor > 0; }

  /** x, x̂ [B, C, H, W] → scalar nll, and its parts. */
  nll(x: Tensor, rec: Tensor): { nll: Tensor; rec: Tensor; p: Tensor | undefined } {
    const l1 = x.sub(rec).abs().mean();
    if (!this.perceptual || this.config.perceptualWeight === 0) return { nll: l1, rec: l1, p: undefined };
    const p = this.perceptual.forward(x, rec).mean();
    return { nll: l1.add(p.mul(this.config.perceptualWeight)), rec: l1, p };
  }

  /** The autoencoder's objective (taming optimizer_idx 0). `lastLayer` is the decoder's conv_out weight. */
  generatorLoss(x: Tensor, rec: Tensor, qloss: Tensor, step: number, lastLayer: Tensor): GeneratorLoss {
    const c = this.config;
    const { nll, rec: l1, p } = this.nll(x, rec);
    let loss = nll.add(qloss.mul(c.codebookWeight));
    let g = 0;
    let dWeight = 0;
    if (this.discActive(step)) {
      const gLoss = this.discriminator.forward(rec).mean().neg();
      dWeight = adaptiveWeight(nll, gLoss, lastLayer) * c.discWeight;
      loss = loss.add(gLoss.mul(dWeight * c.discFactor));
      g = gLoss.item();
    }
    return { loss, log: { rec: l1.item(), p: p?.item() ?? 0, nll: nll.item(), q: qloss.item(), g, dWeight } };
  }

  /** The discriminator's objective (taming optimizer_idx 1); x̂ is detached here. */
  discriminatorLoss(x: Tensor, rec: Tensor): { loss: Tensor; log: { d: number; logitsReal: number; logitsFake: number } } {
    const real = this.discriminator.forward(x.detach());
    const fake = this.discriminator.forward(rec.detach());
    const loss = hingeDLoss(real, fake).mul(this.config.discFactor);
    return { loss, log: { d: loss.item(), logitsReal: real.mean().item(), logitsFake: fake.mean().item() } };
  }
}

/** ‖∇nll‖ / (‖∇g‖ + 1e-4) at `lastLayer`, clamped to [0, 1e4], as a plain number (no gradient flows through it). */
export function adaptiveWeight(nll: Tensor, gLoss: Tensor, lastLayer: Tensor): number {
  return tidy(() => {
    const [gn] = grad([nll], [lastLayer], { retainGraph: true });
    const [gg] = grad([gLoss], [lastLayer], { retainGraph: true });
    return noGrad(() => Math.min(Math.max(gn!.norm().item() / (gg!.norm().item() + 1e-4), 0), 1e4));
  });
}
