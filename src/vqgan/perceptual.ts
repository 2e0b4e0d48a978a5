/**
 * LPIPS perceptual distance (taming/modules/losses/lpips.py), for users who have its weights:
 *
 * - inputs in [-1, 1] are shifted/scaled per channel (`scaling_layer.shift|scale`);
 * - VGG16 features, five slices ending at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
 *   (`net.slice{1..5}.{i}` keep torchvision's `features.{i}` numbering);
 * - each feature map is unit-normalised over channels, the squared difference is weighted by a 1×1
 *   conv without bias (`lin{k}.model.1.weight`), averaged over space, and the five are summed → [B, 1, 1, 1].
 *
 * Neither VGG nor LPIPS weights can be obtained offline here, so the perceptual term is off by default.
 * `loadLPIPS` reads a safetensors file holding either the LPIPS state dict (optionally under taming's
 * `loss.perceptual_loss.` prefix, as in a converted taming checkpoint) or torchvision's VGG16 `features.{i}.*`
 * keys plus the `lin{k}.model.1.weight` keys of LPIPS's vgg.pth.
 */
import { Tensor, tensor, tidy, noGrad, loadSafetensors } from '../torch/index.js';
import { Module, Conv2d } from '../nn/index.js';

/** (torchvision index, in, out) of every VGG16 conv, per slice; each slice but the first starts with a 2×2 max pool. */
const VGG_SLICES: [number, number, number][][] = [
  [[0, 3, 64], [2, 64, 64]],
  [[5, 64, 128], [7, 128, 128]],
  [[10, 128, 256], [12, 256, 256], [14, 256, 256]],
  [[17, 256, 512], [19, 512, 512], [21, 512, 512]],
  [[24, 512, 512], [26, 512, 512], [28, 512, 512]],
];
const CHANNELS = [64, 128, 256, 512, 512];

/** 2×2 stride-2 max pool (floor mode), by reshaping: the engine has no max_pool2d. */
function maxPool2(x: Tensor): Tensor {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const hh = Math.floor(h / 2), ww = Math.floor(w / 2);
  return x.slice(2, 0, 2 * hh).slice(3, 0, 2 * ww).reshape(b, c, hh, 2, ww, 2).amax([3, 5]);
}

class VGGSlice extends Module {
  readonly convs: Conv2d[];
  constructor(readonly pool: boolean, layers: [number, number, number][]) {
    super();
    this.convs = layers.map(([i, cin, cout]) => this.module(String(i), new Conv2d(cin, cout, 3, { padding: 1 })));
  }
  forward(x: Tensor): Tensor {
    let h = this.pool ? maxPool2(x) : x;
    for (const c of this.convs) h = c.forward(h).relu();
    return h;
  }
}

class VGG16Features extends Module {
  readonly slices: VGGSlice[];
  constructor() {
    super();
    this.slices = VGG_SLICES.map((layers, k) => this.module(`slice${k + 1}`, new VGGSlice(k > 0, layers)));
  }
  /** The five relu outputs. */
  forward(x: Tensor): Tensor[] {
    const outs: Tensor[] = [];
    let h = x;
    for (const s of this.slices) outs.push((h = s.forward(h)));
    return outs;
  }
}

/** nn.Sequential(Dropout, Conv2d 1×1 without bias): only index 1 has weights; LPIPS runs in eval mode. */
class LinSequential extends Module {
  readonly conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = this.module('1', new Conv2d(channels, 1, 1, { bias: false }));
  }
}

class NetLinLayer extends Module {
  readonly model: LinSequential;
  constructor(channels: number) {
    super();
    this.model = this.module('model', new LinSequential(channels));
  }
}

class ScalingLayer extends Module {
  readonly shift = this.buffer('shift', tensor([-0.03, -0.088, -0.188], [1, 3, 1, 1]));
  readonly scale = this.buffer('scale', tensor([0.458, 0.448, 0.45], [1, 3, 1, 1]));
  /** [-1, 1] images → VGG's input normalisation. */
  forward(x: Tensor): Tensor { return x.sub(this.shift).div(this.scale); }
}

export class LPIPS extends Module {
  readonly scalingLayer: ScalingLayer;
  readonly net: VGG16Features;
  readonly lins: NetLinLayer[];

  constructor() {
    super();
    this.scalingLayer = this.module('scaling_layer', new ScalingLayer());
    this.net = this.module('net', new VGG16Features());
    this.lins = CHANNELS.map((c, k) => this.module(`lin${k}`, new NetLinLayer(c)));
    for (const p of this.parameters()) p.requiresGrad_(false);
    this.eval();
  }

  /** Perceptual distance per image: x, y [B, 3, H, W] in [-1, 1] → [B, 1, 1, 1]. Gradients flow to the inputs. */
  forward(x: Tensor, y: Tensor): Tensor {
    const fx = this.net.forward(this.scalingLayer.forward(x));
    const fy = this.net.forward(this.scalingLayer.forward(y));
    const unit = (f: Tensor) => f.div(f.square().sum(1, true).sqrt().add(1e-10));
    let total: Tensor | undefined;
    fx.forEach((a, k) => {
      const d = unit(a).sub(unit(fy[k]!)).square();
      const r = this.lins[k]!.model.conv.forward(d).mean([2, 3], true);
      total = total ? total.add(r) : r;
    });
    return total!;
  }
}

/** Renames torchvision `features.{i}` keys to LPIPS `net.slice{k}.{i}` and strips taming's `loss.perceptual_loss.` prefix. */
function lpipsKey(key: string): string {
  const k = key.replace(/^loss\.perceptual_loss\./, '');
  const m = /^features\.(\d+)\.(weight|bias)$/.exec(k);
  if (!m) return k;
  const slice = VGG_SLICES.findIndex((layers) => layers.some(([i]) => i === Number(m[1])));
  return slice < 0 ? k : `net.slice${slice + 1}.${m[1]}.${m[2]}`;
}

/** Builds an LPIPS module from a safetensors file (see the module comment for the accepted key layouts). */
export function loadLPIPS(path: string): LPIPS {
  const { tensors } = loadSafetensors(path);
  const lpips = new LPIPS();
  const renamed = new Map([...tensors].map(([k, t]) => [lpipsKey(k), t] as [string, Tensor]));
  const own = lpips.stateDict();
  const sd = new Map([...renamed].filter(([k]) => own.has(k)));
  const missing = lpips.namedParameters().map(([k]) => k).filter((k) => !sd.has(k));
  if (missing.length) {
    throw new Error(`${path}: not an LPIPS/VGG16 weights file: missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` … (${missing.length} in all)` : ''}`);
  }
  noGrad(() => tidy(() => lpips.loadStateDict(sd, { strict: false })));
  for (const t of tensors.values()) t.dispose();
  return lpips;
}
