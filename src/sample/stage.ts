/**
 * The two ends of sampling: the first stage that turns token grids into images and back, and
 * loading a trained chain (manifest → EMA-weighted scales + VQGAN) for sampling.
 *
 * `FirstStage` is the part of VQModel that sampling uses; any object with these members works
 * (tests use a per-token stand-in). Images are CHW float32 in [-1, 1], as the data layer's.
 */
import { type Tensor, tensor, noGrad, tidy } from '../torch/index.js';
import { loadChain, type ChainManifest } from '../chain/index.js';
import { loadVQModel, type VQModel } from '../vqgan/index.js';
import { resizeTo, toCHW, type RGBAImage } from '../data/index.js';
import type { SamplingChain } from './sampler.js';

export interface FirstStage {
  readonly config: { readonly ddconfig: { readonly resolution: number; readonly inChannels: number; readonly outCh: number } };
  /** Where its weights live (images are sent there); default 'cpu'. */
  readonly device?: string;
  /** Token grid [B, h, w] → images [B, outCh, f·h, f·w]. */
  decodeIndices(indices: Tensor): Tensor;
  /** Images [B, inChannels, R, R] → token grid [B, h, w]. */
  encodeToIndices(x: Tensor): Tensor;
}

/** Token grids [B, H, W] → images as one CHW float32 array [B, C, f·H, f·W] with its shape. */
export function decodeTokens(stage: FirstStage, tokens: Tensor): { data: Float32Array; channels: 1 | 3; height: number; width: number } {
  return noGrad(() => tidy(() => {
    const x = stage.decodeIndices(tokens.to(stage.device ?? 'cpu'));
    const [, C, height, width] = x.shape as [number, number, number, number];
    if (C !== 1 && C !== 3) throw new Error(`the first stage decodes ${C}-channel images; only grey and RGB can be written`);
    return { data: x.toFloat32Array(), channels: C as 1 | 3, height, width };
  }));
}

/** Token grids [B, H, W] → images [B, C, f·H, f·W] on the CPU, clamped to [-1, 1] (as they are written and scored). */
export function decodeImages(stage: FirstStage, tokens: Tensor): Tensor {
  return noGrad(() => tidy(() => stage.decodeIndices(tokens.to(stage.device ?? 'cpu')).clamp(-1, 1).to('cpu')));
}

/**
 * An image of any size → the first stage's input (padded to a square with its own border colour,
 * then resized to R×R: the geometry `fitMask` gives its mask) and its tokens x0 [1, h, w].
 */
export function encodeImage(stage: FirstStage, image: RGBAImage): { pixels: Float32Array; x0: Tensor } {
  const { resolution: R, inChannels: C } = stage.config.ddconfig;
  if (C !== 1 && C !== 3) throw new Error(`the first stage reads ${C}-channel images; only grey and RGB images can be edited`);
  const pixels = toCHW(resizeTo(image, R, { fill: 'border' }), C);
  const x0 = noGrad(() => tidy(() => stage.encodeToIndices(tensor(pixels, [1, C, R, R], { device: stage.device ?? 'cpu' })).long()));
  return { pixels, x0 };
}

/**
 * A trained chain ready to sample: every scale's EMA weights (unless `ema: false`), the weaker chain of
 * its autoguidance when it ships one (its default guidance), and its VQGAN, on
 * `device` (default 'cpu'; 'cuda', 'cuda:1', …); a segmentation chain's label-map VQ model too (`mapStage`).
 */
export function loadSamplingChain(manifestPath: string, o: { ema?: boolean; device?: string } = {}): { chain: SamplingChain; firstStage: VQModel; manifest: ChainManifest; mapStage?: VQModel } {
  const { manifest, schedule, denoisers, guide, resolve } = loadChain(manifestPath, o);
  const device = o.device ?? 'cpu';
  if (device !== 'cpu') for (const d of [...denoisers, ...(guide?.denoisers ?? [])]) d.to(device);
  const bad = (why: string) => new Error(`chain manifest ${manifestPath}: ${why}`);
  if (!manifest.vqgan) throw bad('names no VQGAN ("vqgan"), so its tokens cannot be turned into images');
  if (manifest.remap) throw bad(`an external remap file ("remap": ${JSON.stringify(manifest.remap)}) is not supported: install the used-code list in the VQGAN file ('imagebart vqgan shrink')`);
  const firstStage = loadVQModel(resolve(manifest.vqgan));
  if (device !== 'cpu') firstStage.to(device);
  const [h, w] = manifest.tokenShape;
  if (firstStage.numTokens !== manifest.K) throw bad(`the VQGAN has ${firstStage.numTokens} token ids but the chain K = ${manifest.K}`);
  if (firstStage.latentSize !== h || firstStage.latentSize !== w) throw bad(`the VQGAN makes ${firstStage.latentSize}×${firstStage.latentSize} grids, the chain ${h}×${w}`);
  const c = manifest.conditioning;
  let mapStage: VQModel | undefined;
  if (c.kind === 'segmentation') {
    mapStage = loadVQModel(resolve(c.vqgan));
    if (device !== 'cpu') mapStage.to(device);
    const R = firstStage.config.ddconfig.resolution, Rs = mapStage.config.ddconfig.resolution;
    if (mapStage.numTokens !== c.K) throw bad(`the label-map VQ model ${c.vqgan} has ${mapStage.numTokens} token ids but the conditioning says K = ${c.K}`);
    if (mapStage.latentSize !== h || mapStage.latentSize !== w) throw bad(`the label-map VQ model makes ${mapStage.latentSize}×${mapStage.latentSize} grids, the chain ${h}×${w}`);
    if (Rs !== R) throw bad(`the label-map VQ model reads ${Rs}×${Rs} maps but the images are ${R}×${R}`);
  }
  const base = { schedule, tokenShape: [h, w] as [number, number], conditioning: c, settings: manifest.sampling };
  const guidance = guide && { scale: guide.scale, weak: { ...base, denoisers: guide.denoisers } };
  return { chain: { ...base, denoisers, ...(guidance ? { guidance } : {}) }, firstStage, manifest, ...(mapStage ? { mapStage } : {}) };
}
