/**
 * Model cards: a README.md beside a chain that says what it is and how well it does — the data,
 * the chain (T, K, schedule, conditioning), each scale's architecture, parameters, training steps,
 * wall time and validation NLL (read from the scale checkpoints' recorded training config and
 * history), and any evaluation records given (sample metrics with N and seed, beside their
 * reference points), plus the commands that use it.
 */
import { readSafetensorsHeader } from '../torch/index.js';
import { describeConditioning } from './conditioning.js';
import type { ChainManifest } from './manifest.js';
import type { ScaleTrainConfig, ValRecord } from './trainer.js';

/** One evaluation result as `imagebart eval` writes it (a JSON line). */
export interface EvalRow {
  kind: string;
  n?: number;
  seed?: number;
  frechet?: number;
  inceptionScore?: number;
  confident?: number;
  accuracy?: number;
  regionL1?: number;
  regionPsnr?: number;
  [k: string]: unknown;
}

export interface CardOptions {
  title: string;
  /** Free text: where the data comes from, what the model is for. */
  description?: string;
  /** Evaluation records (references first, then the chain's). */
  metrics?: EvalRow[];
  /** Paths of pictures of real outputs, relative to the card. */
  pictures?: string[];
  /** Parameters of the first stage, shown beside the chain's. */
  vqganParameters?: number;
}

const fmt = (x: unknown, digits = 3) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—');
const pct = (x: unknown) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '—');
/** Sampling settings other than the defaults, as the CLI spells them ("temperature 0.9, top-k 20"). */
const settingsText = (s: unknown) => {
  const { temperature, topK, topP } = (s ?? {}) as { temperature?: number; topK?: number; topP?: number };
  return [temperature !== undefined && temperature !== 1 ? `temperature ${temperature}` : '', topK !== undefined ? `top-k ${topK}` : '',
    topP !== undefined && topP !== 1 ? `top-p ${topP}` : ''].filter(Boolean).join(', ');
};

/** A row's guidance: "guidance s" (classifier-free), "autoguidance s", or, on a chain that ships a guide, "no guidance". */
const guidanceText = (m: EvalRow, guided: boolean) => {
  if (m.kind !== 'samples' && m.kind !== 'completion') return '';
  const s = m.guidance as number | Record<number, number> | undefined;
  if (s === undefined || s === 1) return guided ? 'no guidance' : '';
  const value = typeof s === 'number' ? String(s) : Object.entries(s).map(([t, x]) => `${x} at scale ${t}`).join(', ');
  return m.guidedBy === 'weaker chain' ? `autoguidance ${value}` : `guidance ${value}`;
};

/** The card's markdown for the manifest at `path` (its scale files are read for their recorded training). */
export function modelCard(manifest: ChainManifest, resolveFile: (p: string) => string, o: CardOptions): string {
  const scaleRows = (scales: ChainManifest['scales']) => [...scales].sort((a, b) => a.t - b.t).map(({ t, checkpoint }) => {
    const header = readSafetensorsHeader(resolveFile(checkpoint));
    const cfg = JSON.parse(header.metadata.train_config ?? 'null') as ScaleTrainConfig | null;
    const history = JSON.parse(header.metadata.history ?? '[]') as ValRecord[];
    const params = [...header.tensors].filter(([k]) => k.startsWith('ema.')).reduce((a, [, v]) => a + v.shape.reduce((x: number, y: number) => x * y, 1), 0);
    const step = Number(header.metadata.exported_from_step ?? header.metadata.step ?? NaN);
    return { t, cfg, last: history.at(-1), params, step, seconds: Number(header.metadata.train_seconds ?? NaN) };
  });
  const rows = scaleRows(manifest.scales), guideRows = manifest.guide ? scaleRows(manifest.guide.scales) : [];
  const total = rows.reduce((a, r) => a + r.params, 0), guideTotal = guideRows.reduce((a, r) => a + r.params, 0);
  const arch = (c: ScaleTrainConfig | null) => {
    const m = c?.model;
    if (!m) return '—';
    return m.type === 'gpt' ? `GPT, ${m.depth} layers × ${m.dim}` : `${m.type === 'residual-xtransformer' ? 'ResidualScaled ' : ''}encoder ${m.encoderDepth} / decoder ${m.decoderDepth} layers × ${m.dim}`;
  };
  const c0 = rows[0].cfg;
  const lines = [
    `# ${o.title}`, '',
    ...(o.description ? [o.description, ''] : []),
    '## The chain', '',
    `- ImageBART chain of T = ${manifest.T} scales over ${manifest.tokenShape.join('×')} token grids of K = ${manifest.K} codes; schedule ${JSON.stringify(manifest.schedule)}, β = [${manifest.beta.map((b) => b.toFixed(4)).join(', ')}].`,
    `- Conditioning: ${describeConditioning(manifest.conditioning)}.`,
    `- ${(total / 1e6).toFixed(2)}M parameters in the chain${o.vqganParameters ? `, ${(o.vqganParameters / 1e6).toFixed(2)}M in the VQGAN` : ''}; weights are the EMA of training.`,
    ...(c0 ? [`- Training: batch ${c0.batchSize}, peak learning rate ${c0.lr} (warm-up ${c0.warmup}, cosine), AdamW(0.9, 0.95), EMA ${c0.emaDecay}` +
      `${c0.conditionDropout ? `, conditions dropped with probability ${c0.conditionDropout} (classifier-free guidance)` : ''}; data ${c0.train.split('/').slice(-2).join('/')}.`] : []),
    ...(manifest.guide ? [`- Autoguidance (Karras et al. 2024): a weaker chain of the same process (${(guideTotal / 1e6).toFixed(2)}M parameters, the "guide" rows) ` +
      `guides it by default at s = ${manifest.guide.scale}: next-token logits l_w + s·(l − l_w), l from the chain and l_w from the guide; \`--guidance 1\` samples the chain alone.`] : []),
    '',
    '| scale | model | parameters | steps | wall time | validation NLL (EMA), bits/token |',
    '|---|---|---|---|---|---|',
    ...[...rows, ...guideRows.map((r) => ({ ...r, label: `guide ${r.t}` }))].map((r) => `| ${'label' in r ? r.label : r.t} | ${arch(r.cfg)} | ${(r.params / 1e6).toFixed(2)}M | ${Number.isFinite(r.step) ? r.step : '—'} | ` +
      `${Number.isFinite(r.seconds) && r.seconds > 0 ? `${(r.seconds / 60).toFixed(0)} min` : '—'} | ${fmt(r.last?.nllEma)} |`),
    '',
  ];
  if (o.metrics?.length) {
    const iou = o.metrics.some((m) => m.segmentationIoU !== undefined); // segmentation chains: fidelity to the requested maps
    lines.push('## Quality', '',
      'Measured with the project\'s own feature classifier (`imagebart eval`): Fréchet distance of its features against its training split, an Inception-like score, the share classified with confidence above 0.9, class accuracy; completions also report L1 and PSNR over the repainted pixels. Compare Fréchet distances only at equal N.', '',
      `| what | N | seed | Fréchet | IS-like | confident | accuracy | region L1 | region PSNR |${iou ? ' map IoU |' : ''}`,
      `|---|---|---|---|---|---|---|---|---|${iou ? '---|' : ''}`,
      ...o.metrics.map((row) => {
        const m = row.kind === 'classifier' ? { ...row, kind: 'classifier (its test split)', n: row.testImages as number, accuracy: row.testAccuracy as number } : row;
        const what = [m.kind, m.classChoice && m.kind === 'samples' && manifest.conditioning.kind !== 'none' ? `(${m.classChoice})` : '', m.conditions && m.kind === 'samples' ? `(${m.conditions})` : '', guidanceText(m, !!manifest.guide),
          m.requestedAcceptRate !== undefined ? `acceptance ${m.requestedAcceptRate}` : '', m.mask ? `${m.mask}` : '', settingsText(m.settings)].filter(Boolean).join(' ');
        return `| ${what} | ${m.n ?? '—'} | ${m.seed ?? '—'} | ${fmt(m.frechet, 2)} | ${fmt(m.inceptionScore, 2)} | ${pct(m.confident)} | ${pct(m.accuracy)} | ${fmt(m.regionL1)} | ${fmt(m.regionPsnr, 2)} |${iou ? ` ${fmt(m.segmentationIoU)} |` : ''}`;
      }), '');
  }
  for (const p of o.pictures ?? []) lines.push(`![${p}](${p})`, '');
  const kind = manifest.conditioning.kind;
  const cls = kind === 'class' ? ' --class 3' : kind === 'text' ? " --prompt 'a red heart'" : kind === 'segmentation' ? ' --segmentation shape.png' : '';
  lines.push('## Use', '', '```sh',
    `imagebart sample --chain chain.json --count 16${cls} --out samples.png`,
    `imagebart edit --chain chain.json --image digit.png --mask upper-half${cls} --out edit.png`,
    '```', '');
  return lines.join('\n');
}
