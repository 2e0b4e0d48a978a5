/**
 * What a release is, from its configs alone: T, K_eff, the schedule, each scale's architecture and
 * parameter count, the conditioning, and the memory sampling needs.
 *
 * Parameter counts are this port's own modules, built on the `meta` device (shapes, no memory), so
 * they are exactly what an import will load. Memory to sample, at a dtype of b bytes:
 * - weights: b · (Σ_t params_t + VQGAN params) — every scale stays loaded while sampling;
 * - per image, the largest scale's decoding state: an encoder-decoder scale caches k, v of its
 *   decoder's self-attention (2·L·N·inner per layer) and cross-attention (2·S·inner per layer) and
 *   keeps the encoder output (S·dim); the GPT caches 2·L·blockSize·dim per layer.
 */
import { onDevice } from '../torch/index.js';
import { createDenoiser, type ScaleModelConfig } from '../chain/index.js';
import { VQModel } from '../vqgan/index.js';
import type { Release } from './config.js';

export interface ScaleSummary {
  t: number;
  denoiser: string;
  transformer: string;
  architecture: string;
  parameters: number;
  /** β_t, ᾱ_t of this scale. */
  beta: number;
  alphacum: number;
  /** Bytes of decoding state per image at float32. */
  stateBytesPerImage: number;
}

export interface ReleaseSummary {
  sampling: string;
  root: string;
  T: number;
  K: number;
  tokenShape: [number, number];
  resolution: number;
  conditioning: string;
  schedule: { spec: string | number; source: string; beta: number[]; alphacum: number[] };
  scales: ScaleSummary[];
  firstStageParameters: number;
  parameters: { transformers: number; total: number };
  memory: { float32: { weights: number; perImage: number }; float16: { weights: number; perImage: number } };
  ignored: string[];
}

function describe(m: ScaleModelConfig): string {
  if (m.type === 'gpt') return `GPT ${m.depth} layers × ${m.dim}, ${m.heads} heads, block ${m.blockSize}, n_unmasked ${m.nUnmasked ?? 0}`;
  return `${m.type === 'residual-xtransformer' ? 'ResidualScaled ' : ''}XTransformer enc ${m.encoderDepth} / dec ${m.decoderDepth} × ${m.dim}, ${m.heads} heads of ${m.dimHead ?? 64}`;
}

function stateElements(m: ScaleModelConfig, N: number, S: number): number {
  if (m.type === 'gpt') return m.depth * 2 * (m.blockSize ?? S) * m.dim;
  const inner = m.heads * (m.dimHead ?? 64);
  return m.decoderDepth * (2 * N * inner + 2 * S * inner) + S * m.dim;
}

export function summarizeRelease(r: Release): ReleaseSummary {
  const N = r.shape.tokens, S = 1 + (r.shape.condLength ?? 0) + N;
  const scales = r.scales.map((s) => {
    const parameters = onDevice('meta', () => createDenoiser(s.t, s.model, r.shape, r.schedule).numParameters());
    return {
      t: s.t, denoiser: s.denoiser, transformer: s.transformer, architecture: describe(s.model), parameters,
      beta: r.schedule.beta[s.t]!, alphacum: r.schedule.alphacum[s.t]!, stateBytesPerImage: 4 * stateElements(s.model, N, S),
    };
  });
  const firstStageParameters = onDevice('meta', () => new VQModel(r.firstStage.config).numParameters());
  const transformers = scales.reduce((a, s) => a + s.parameters, 0);
  const weights = transformers + firstStageParameters;
  const perImage = Math.max(...scales.map((s) => s.stateBytesPerImage));
  return {
    sampling: r.sampling, root: r.root, T: r.T, K: r.K, tokenShape: r.tokenShape, resolution: r.firstStage.config.ddconfig.resolution,
    conditioning: r.classes === null ? 'none' : `class (${r.classes} classes)`,
    schedule: { spec: r.schedule.spec, source: r.scheduleSource, beta: [...r.schedule.beta], alphacum: [...r.schedule.alphacum] },
    scales, firstStageParameters,
    // Each official scale checkpoint holds its own copy of the first stage; the import keeps one.
    parameters: { transformers, total: weights },
    memory: { float32: { weights: 4 * weights, perImage }, float16: { weights: 2 * weights, perImage: perImage / 2 } },
    ignored: r.ignored,
  };
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const num = (n: number) => n.toLocaleString('en-US');
const fix = (x: number) => x.toFixed(5);

/** The summary as text for a terminal. */
export function formatSummary(s: ReleaseSummary): string {
  const lines = [
    `release ${s.sampling}`,
    `  root ${s.root}`,
    `  T ${s.T}, K_eff ${s.K}, tokens ${s.tokenShape.join('×')} at ${s.resolution}×${s.resolution} px, conditioning: ${s.conditioning}`,
    `  schedule ${s.schedule.spec} (${s.schedule.source})`,
    `    β  = [${s.schedule.beta.map(fix).join(', ')}]`,
    `    ᾱ  = [${s.schedule.alphacum.map(fix).join(', ')}]`,
    '  scale  parameters     architecture',
    ...s.scales.map((c) => `  ${String(c.t).padStart(5)}  ${num(c.parameters).padStart(13)}  ${c.architecture}`),
    `  VQGAN  ${num(s.firstStageParameters).padStart(13)}`,
    `  total  ${num(s.parameters.total).padStart(13)}  (transformers ${num(s.parameters.transformers)})`,
    `  memory to sample: float32 ${gib(s.memory.float32.weights)} weights + ${mib(s.memory.float32.perImage)} per image; float16 ${gib(s.memory.float16.weights)} + ${mib(s.memory.float16.perImage)} per image`,
  ];
  if (s.ignored.length) lines.push('  ignored (read, not needed to sample):', ...s.ignored.map((k) => `    ${k}`));
  return lines.join('\n') + '\n';
}
