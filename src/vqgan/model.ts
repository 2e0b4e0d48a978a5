/**
 * VQModel: taming's first stage, image ↔ grid of discrete tokens (x0).
 *
 * - encoder: image [B, inChannels, R, R] → h [B, zChannels, r, r], r = R / 2^(levels−1);
 * - quant_conv (1×1): zChannels → embedDim; quantize: nearest codebook row, straight-through;
 * - post_quant_conv (1×1): embedDim → zChannels; decoder → image [B, outCh, R, R] (no tanh).
 *
 * State-dict keys are the official ones (`encoder.down.0.block.0.conv1.weight`, `quantize.embedding.weight`,
 * `quantize.used`, …), so taming/ImageBART weights load as they are. Checkpoint files are safetensors
 * with those keys and the config as JSON in the metadata (see saveVQModel).
 */
import { Tensor, tidy, loadSafetensors, saveSafetensors, readSafetensorsHeader } from '../torch/index.js';
import { Module, Conv2d, type LoadResult } from '../nn/index.js';
import { Encoder } from './encoder.js';
import { Decoder } from './decoder.js';
import { VectorQuantizer } from './quantizer.js';
import { chain } from './blocks.js';
import { ddconfigFromTaming, latentSize, makeConfig, validateConfig, type VQModelConfig, type UnknownIndex } from './config.js';

export interface EncodeOutput {
  /** [B, embedDim, r, r] straight-through quantized latent. */
  zq: Tensor;
  /** [B, r, r] token ids (remapped when the codebook is shrunk). */
  indices: Tensor;
  /** Scalar codebook + commitment loss. */
  loss: Tensor;
  /** [B, r, r] raw codebook rows. */
  codes: Tensor;
}

export class VQModel extends Module {
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantize: VectorQuantizer;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;

  constructor(readonly config: VQModelConfig) {
    super();
    validateConfig(config);
    const dd = config.ddconfig;
    this.encoder = this.module('encoder', new Encoder(dd));
    this.decoder = this.module('decoder', new Decoder(dd));
    this.quantize = this.module('quantize', new VectorQuantizer(config.nEmbed, config.embedDim, config.beta, config.unknownIndex, config.saneIndexShape, config.legacy));
    this.quantConv = this.module('quant_conv', new Conv2d(dd.zChannels, config.embedDim, 1));
    this.postQuantConv = this.module('post_quant_conv', new Conv2d(config.embedDim, dd.zChannels, 1));
  }

  /** Side length r of the token grid. */
  get latentSize(): number { return latentSize(this.config.ddconfig); }
  /** Number of token ids the chain sees: K, or K_eff after codebook shrinking. */
  get numTokens(): number { return this.quantize.reEmbed; }

  /** x [B, inChannels, R, R] → quantizer input [B, embedDim, r, r] (taming encode_to_prequant). */
  encodeToPrequant(x: Tensor): Tensor { return chain(x, (t) => this.encoder.forward(t), (t) => this.quantConv.forward(t)); }

  encode(x: Tensor): EncodeOutput {
    const { zq, loss, indices, codes } = this.quantize.forward(this.encodeToPrequant(x));
    return { zq, loss, indices, codes };
  }

  /** z_q [B, embedDim, r, r] → image [B, outCh, R, R] */
  decode(zq: Tensor): Tensor { return chain(zq, (t) => this.postQuantConv.forward(t), (t) => this.decoder.forward(t)); }

  /** Token grid [B, r, r] → image [B, outCh, R, R] */
  decodeIndices(indices: Tensor): Tensor { return chain(indices, (t) => this.quantize.getCodebookEntry(t), (t) => this.decode(t)); }

  /** x → token grid [B, r, r] */
  encodeToIndices(x: Tensor): Tensor {
    const [b] = x.shape as [number];
    return this.encode(x).indices.view(b, this.latentSize, this.latentSize);
  }

  /** x → reconstruction, quantizer loss and the codes used. */
  forward(x: Tensor): { rec: Tensor; qloss: Tensor; codes: Tensor } {
    const { zq, loss, codes } = this.encode(x);
    return { rec: this.decode(zq), qloss: loss, codes };
  }

  /** Installs a `quantize.used` list from the checkpoint when the model has none yet. */
  override loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, o: { strict?: boolean } = {}): LoadResult {
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const used = src.get('quantize.used');
    if (used && !this.quantize.used) this.quantize.setUsed(used.clone());
    return super.loadStateDict(src, o);
  }

  /** The `used` list's length depends on the data it was computed on. */
  protected override resizeBuffer(key: string, value: Tensor): boolean {
    if (key !== 'quantize.used') return false;
    this.quantize.setUsed(value.clone());
    return true;
  }
}

/** Keys of training state that share a checkpoint with the model: taming's `loss.*` (LPIPS, discriminator) and our optimiser moments. */
const NON_MODEL = /^(loss|optimizer)\./;

/** The model's weights out of a checkpoint's tensors (drops `loss.*` and `optimizer.*`). */
export function modelWeights(tensors: Map<string, Tensor>): Map<string, Tensor> {
  return new Map([...tensors].filter(([k]) => !NON_MODEL.test(k)));
}

export const VQGAN_FORMAT = 'imagebart-vqgan/1';

/**
 * The model config from checkpoint metadata: ours (`config`, JSON) or taming-style fields as in the
 * official parity fixture (`ddconfig` snake_case JSON, `n_embed`, `embed_dim`, `beta`, `legacy`, `sane_index_shape`, `unknown_index`).
 */
export function configFromMetadata(meta: Record<string, string>, path = 'checkpoint'): VQModelConfig {
  if (meta.config !== undefined) return makeConfig(JSON.parse(meta.config) as VQModelConfig);
  if (meta.ddconfig !== undefined) {
    const json = (k: string) => (meta[k] === undefined ? undefined : JSON.parse(meta[k]!));
    const unknown = meta.unknown_index;
    return makeConfig({
      ddconfig: ddconfigFromTaming(json('ddconfig') as Record<string, unknown>),
      nEmbed: json('n_embed') as number,
      embedDim: json('embed_dim') as number,
      beta: json('beta') ?? 0.25,
      legacy: json('legacy') ?? true,
      saneIndexShape: json('sane_index_shape') ?? true,
      unknownIndex: (unknown === undefined ? 'random' : /^\d+$/.test(String(unknown)) ? Number(unknown) : String(unknown)) as UnknownIndex,
    });
  }
  throw new Error(`${path}: no VQGAN config in the metadata (expected 'config' or taming-style 'ddconfig')`);
}

/** Reads a checkpoint, naming the file in any error (truncated, not safetensors, …). */
export function readCheckpoint(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  try {
    return loadSafetensors(path, { finite: true });
  } catch (e) {
    throw new Error(`cannot read VQGAN checkpoint ${path}: ${(e as Error).message}`);
  }
}

/** Builds a VQModel from a checkpoint written by saveVQModel / the trainer, or the official fixture layout. */
export function loadVQModel(path: string): VQModel {
  const { tensors, metadata } = readCheckpoint(path);
  const model = new VQModel(configFromMetadata(metadata, path));
  model.loadStateDict(modelWeights(tensors));
  for (const t of tensors.values()) t.dispose();
  return model.eval();
}

/** Just the config of a checkpoint (reads the header only). */
export const readVQConfig = (path: string): VQModelConfig => configFromMetadata(readSafetensorsHeader(path).metadata, path);

/**
 * Writes the model (official keys) and its config, plus any extra tensors/metadata, atomically; `half`
 * stores its float32 weights as float16 (a release copy: loading casts them back to float32).
 */
export function saveVQModel(
  path: string, model: VQModel,
  extra: { tensors?: Map<string, Tensor>; metadata?: Record<string, string>; half?: boolean } = {},
): void {
  tidy(() => {
    const stored = (t: Tensor) => (extra.half && t.dtype === 'float32' ? t.detach().to('float16') : t.detach());
    const tensors = new Map([...model.stateDict()].map(([k, t]) => [k, stored(t)] as [string, Tensor]));
    for (const [k, t] of extra.tensors ?? []) tensors.set(k, t.detach());
    saveSafetensors(path, tensors, { format: VQGAN_FORMAT, config: JSON.stringify(model.config), ...extra.metadata });
  });
}
