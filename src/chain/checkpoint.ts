/**
 * Scale checkpoints: one safetensors file per scale holding everything to resume or sample.
 *
 * - `model.<key>`: the denoiser's state dict (training weights; keys `transformer.*`);
 * - `ema.<key>`: the EMA of its parameters (what sampling uses);
 * - `optim.state.<i>.exp_avg|exp_avg_sq`: AdamW moments;
 * - metadata (JSON strings): `format`, `scale` (t, chain shape, schedule, model config), `step`,
 *   `ema_updates`, `optim_step`, plus whatever the caller adds.
 * Writes are atomic (temporary file, fsync, rename).
 */
import { type Tensor, loadSafetensors, saveSafetensors } from '../torch/index.js';
import type { AdamW, EMA } from '../optim/index.js';
import { makeSchedule, type Schedule, type ScheduleSpec } from '../diffusion/index.js';
import { createDenoiser, type ChainShape, type Denoiser, type ScaleModelConfig } from './denoiser.js';

export const SCALE_CHECKPOINT_FORMAT = 'imagebart-chain-scale/1';

/** What a checkpoint needs to rebuild its model. */
export interface ScaleSpec {
  t: number;
  shape: ChainShape;
  schedule: ScheduleSpec;
  model: ScaleModelConfig;
}

export interface ScaleCheckpoint {
  spec: ScaleSpec;
  step: number;
  /** Without prefixes: `model`, `ema` (may be empty), `optim` (AdamW's own keys). */
  model: Map<string, Tensor>;
  ema: Map<string, Tensor>;
  optim: { tensors: Map<string, Tensor>; step: number };
  emaUpdates: number;
  metadata: Record<string, string>;
}

export function saveScaleCheckpoint(
  path: string, denoiser: Denoiser, spec: ScaleSpec,
  o: { step: number; ema?: EMA; optimizer?: AdamW; metadata?: Record<string, string> },
): void {
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of denoiser.stateDict()) tensors.set(`model.${k}`, v);
  for (const [k, v] of o.ema?.stateDict() ?? []) tensors.set(`ema.${k}`, v);
  const optim = o.optimizer?.stateDict();
  for (const [k, v] of optim?.tensors ?? []) tensors.set(`optim.${k}`, v);
  saveSafetensors(path, tensors, {
    ...o.metadata,
    format: SCALE_CHECKPOINT_FORMAT,
    scale: JSON.stringify(spec),
    step: JSON.stringify(o.step),
    ema_updates: JSON.stringify(o.ema?.updates ?? 0),
    optim_step: JSON.stringify(optim?.step ?? 0),
  });
}

export function readScaleCheckpoint(path: string): ScaleCheckpoint {
  const { tensors, metadata } = loadSafetensors(path, { finite: true });
  if (metadata.format !== SCALE_CHECKPOINT_FORMAT) {
    throw new Error(`${path} is not an ImageBART scale checkpoint (format '${metadata.format}', expected '${SCALE_CHECKPOINT_FORMAT}')`);
  }
  const part = (prefix: string) => new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return {
    spec: JSON.parse(metadata.scale) as ScaleSpec,
    step: JSON.parse(metadata.step) as number,
    model: part('model.'),
    ema: part('ema.'),
    optim: { tensors: part('optim.'), step: JSON.parse(metadata.optim_step) as number },
    emaUpdates: JSON.parse(metadata.ema_updates) as number,
    metadata,
  };
}

/** Rebuilds a scale's denoiser in eval mode, with its EMA weights unless `ema: false`. */
export function loadScaleCheckpoint(path: string, o: { ema?: boolean } = {}): { denoiser: Denoiser; spec: ScaleSpec; schedule: Schedule; step: number } {
  const ck = readScaleCheckpoint(path);
  const schedule = makeSchedule(ck.spec.schedule, ck.spec.shape.T);
  const denoiser = createDenoiser(ck.spec.t, ck.spec.model, ck.spec.shape, schedule);
  const weights = new Map(ck.model);
  if (o.ema ?? true) {
    if (ck.ema.size === 0) throw new Error(`${path} holds no EMA weights; load with { ema: false }`);
    for (const [k, v] of ck.ema) weights.set(k, v);
  }
  denoiser.loadStateDict(weights);
  disposeCheckpoint(ck);
  return { denoiser: denoiser.eval(), spec: ck.spec, schedule, step: ck.step };
}

/** Frees a checkpoint's tensors once they have been copied into a model. */
export function disposeCheckpoint(ck: ScaleCheckpoint): void {
  for (const m of [ck.model, ck.ema, ck.optim.tensors]) for (const t of m.values()) t.dispose();
}

/**
 * A release copy of a scale checkpoint: the EMA weights (optionally as float16, half the size)
 * and the model's buffers, without training weights or optimiser moments — about a quarter of
 * the training checkpoint. It loads with loadScaleCheckpoint like any other; it cannot resume training.
 */
export function exportScaleCheckpoint(src: string, dst: string, o: { half?: boolean } = {}): void {
  const ck = readScaleCheckpoint(src);
  if (ck.ema.size === 0) throw new Error(`${src} holds no EMA weights to export`);
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of ck.model) if (!ck.ema.has(k)) tensors.set(`model.${k}`, v);
  for (const [k, v] of ck.ema) tensors.set(`ema.${k}`, o.half && v.dtype === 'float32' ? v.to('float16') : v);
  saveSafetensors(dst, tensors, { ...ck.metadata, optim_step: '0', exported_from_step: String(ck.step) });
  for (const t of tensors.values()) t.dispose();
  disposeCheckpoint(ck);
}
