/**
 * `imagebart sample` and `imagebart edit`: new images from a trained chain, and masked edits of a
 * picture. Both write a PNG grid and, next to it, a JSON sidecar with every setting and seed, so a
 * run can be repeated exactly.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError, integer, need } from './args.js';
import { decodeImage } from '../data/index.js';
import { DECODINGS, NAMED_MASKS, isNamedMask, type Decoding, type ScaleSettings } from '../sample/index.js';
import { Pipeline, RequestError, gridPng, parseSeed, useLatencyBoundThreads } from '../pipeline/index.js';

const SETTINGS_HELP = `Per-scale values (--temperature, --top-k, --top-p, --repeats) are one value for every scale or a
comma list in sampling order, scale T first: with T = 3, '--temperature 1,0.9,0.8' runs scale 3 at 1.0
and scale 1 at 0.8.`;

const SAMPLE_HELP = `imagebart sample --chain CHAIN.json [options]

Samples images from a trained chain: x_T uniform over the codebook, then every scale's model from T to 1
(EMA weights), then the VQGAN decoder. Writes a PNG grid and a JSON sidecar (same name, .json).

Options:
  --chain PATH          chain manifest (imagebart-chain/1) or a model directory holding chain.json, required
  --out FILE.png        output grid (default samples.png)
  --count N             images (default 16)
  --batch-size N        images per batch (default min(count, 16)); batch i draws from its own stream,
                        splitmix64 of (seed, i), so neighbouring seeds share no batch
  --seed N              base seed, 64-bit (default: random, recorded in the sidecar)
  --temperature X[,…]   softmax temperature (default 1)
  --top-k N[,…]         keep the N most likely codes (default: all)
  --top-p X[,…]         nucleus sampling mass (default 1: off)
  --class N[,…]         class ids of a class-conditional chain: one for all images or one per image
  --grid HxW            token grid larger than the trained one: sliding-window sampling
  --decoding MODE       cached (default), uncached (re-run the decoder prefix per token) or official
  --intermediates       also write FILE-steps.png: each image's x_T … x_0 decoded, coarse to fine
  --nrow N              images per grid row (default 8)
  --no-ema              the training weights instead of the EMA weights

${SETTINGS_HELP}
`;

const EDIT_HELP = `imagebart edit --chain CHAIN.json --image IMG --mask MASK [options]

Repaints the masked part of a picture so that it agrees with the rest on every side (the masked
multinomial diffusion: kept tokens stay the image's own at every step of every scale; each scale is
repeated with partial re-noising). Writes a PNG row [input, masked input, reconstruction, edits…] and a
JSON sidecar.

Options:
  --chain FILE          chain manifest, required
  --image FILE          PNG or JPEG of any size (resized and padded to the model's resolution), required
  --mask MASK           a mask image (PNG, any size and channels; white = keep) or one of
                        ${NAMED_MASKS.join(', ')} (the name says what is repainted), required
  --invert              swap keep and repaint
  --composite           kept pixels equal the input exactly (else the decoder's reconstruction)
  --out FILE.png        output (default edit.png)
  --count N             edits of the one input (default 4)
  --seed N              seed (default: random, recorded in the sidecar)
  --repeats N[,…]       repeats per scale (default: 3 per scale for geometric schedules, else 5; 1 at scale T)
  --temperature X[,…]  --top-k N[,…]  --top-p X[,…]  --decoding MODE  --class N  --no-ema   as for sample

${SETTINGS_HELP}
`;

const COMMON = {
  help: { type: 'boolean', short: 'h' },
  chain: { type: 'string' },
  out: { type: 'string' },
  count: { type: 'string' },
  seed: { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  class: { type: 'string' },
  decoding: { type: 'string' },
  'no-ema': { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

const SAMPLE_OPTIONS = {
  ...COMMON,
  'batch-size': { type: 'string' },
  grid: { type: 'string' },
  intermediates: { type: 'boolean' },
  nrow: { type: 'string' },
} satisfies ParseArgsConfig['options'];

const EDIT_OPTIONS = {
  ...COMMON,
  image: { type: 'string' },
  mask: { type: 'string' },
  invert: { type: 'boolean' },
  composite: { type: 'boolean' },
  repeats: { type: 'string' },
} satisfies ParseArgsConfig['options'];

/** One value or a list in sampling order (scale T first) → values by t. */
function perScale(v: string | undefined, T: number, name: string, parse: (s: string) => number): Record<number, number> {
  if (v === undefined) return {};
  const parts = v.split(',').map((s) => {
    const x = parse(s.trim());
    if (!Number.isFinite(x)) throw new UsageError(`--${name}: '${s}' is not a number`);
    return x;
  });
  if (parts.length !== 1 && parts.length !== T) throw new UsageError(`--${name} takes one value or ${T} (one per scale, scale ${T} first), got ${parts.length}`);
  const out: Record<number, number> = {};
  for (let t = T; t >= 1; t--) out[t] = parts.length === 1 ? parts[0] : parts[T - t];
  return out;
}

/** The per-scale settings flags → overrides by t (validated later by the sampler). */
function settingsFlags(v: { temperature?: string; 'top-k'?: string; 'top-p'?: string }, T: number): Record<number, ScaleSettings> {
  const temperature = perScale(v.temperature, T, 'temperature', Number);
  const topK = perScale(v['top-k'], T, 'top-k', Number);
  const topP = perScale(v['top-p'], T, 'top-p', Number);
  const out: Record<number, ScaleSettings> = {};
  for (let t = 1; t <= T; t++) out[t] = { temperature: temperature[t], topK: topK[t], topP: topP[t] };
  return out;
}

function decodingFlag(v: string | undefined): Decoding {
  if (v === undefined) return 'cached';
  if (!(DECODINGS as readonly string[]).includes(v)) throw new UsageError(`--decoding must be one of ${DECODINGS.join(', ')}, got '${v}'`);
  return v as Decoding;
}

function writePng(path: string, png: Buffer): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, png);
}

/** Writes the sidecar next to `png` (same name, .json) and returns its path. */
function writeSidecar(png: string, sidecar: Record<string, unknown>): string {
  const json = png.replace(/\.png$/i, '') + '.json';
  writeFileSync(json, JSON.stringify(sidecar, null, 2) + '\n');
  return json;
}

/** --seed: 64-bit, default drawn. */
function seedFlag(v: string | undefined): bigint | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSeed(v);
  } catch (e) {
    throw new UsageError(`--${(e as Error).message}`);
  }
}

/** --class: one id or a comma list. */
const classFlag = (v: string | undefined): number[] | undefined => v?.split(',').map((s) => integer(s.trim(), 'class')!);

type Values<O extends ParseArgsConfig['options']> = ReturnType<typeof parseArgs<{ options: O; strict: true }>>['values'];

async function runSample(v: Values<typeof SAMPLE_OPTIONS>): Promise<number> {
  const chainPath = need(v.chain, 'chain');
  const count = integer(v.count, 'count', 1) ?? 16;
  const batchSize = integer(v['batch-size'], 'batch-size', 1) ?? Math.min(count, 16);
  const nrow = integer(v.nrow, 'nrow', 1) ?? 8;
  const decoding = decodingFlag(v.decoding);
  const seed = seedFlag(v.seed);
  const out = v.out ?? 'samples.png';
  const model = Pipeline.load(chainPath, { ema: !v['no-ema'] });
  const T = model.info.T;
  const scales = settingsFlags(v, T);
  let grid: [number, number] | undefined;
  if (v.grid !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(v.grid);
    if (!m) throw new UsageError(`--grid must be HxW in tokens, e.g. 16x16, got '${v.grid}'`);
    grid = [Number(m[1]), Number(m[2])];
  }
  const batches = Math.ceil(count / batchSize);
  const r = model.sample(
    { count, batchSize, seed, scales, decoding, grid, intermediates: v.intermediates, classes: classFlag(v.class) },
    { onProgress: (p) => process.stderr.write(`\rbatch ${p.batch + 1}/${batches}: scale ${p.t} done `) },
  );
  process.stderr.write('\n');
  const files = [out];
  writePng(out, gridPng(r.images, r.shape, nrow));
  if (r.steps) {
    files.push(out.replace(/\.png$/i, '') + '-steps.png');
    writePng(files[1], gridPng(r.steps.flat(), r.shape, T + 1));
  }
  const sidecar = writeSidecar(out, { ...r.sidecar, files });
  process.stderr.write(`${count} samples in ${r.sidecar.seconds.toFixed(1)} s → ${files.join(', ')} (settings: ${sidecar})\n`);
  return 0;
}

async function runEdit(v: Values<typeof EDIT_OPTIONS>): Promise<number> {
  const chainPath = need(v.chain, 'chain');
  const imagePath = need(v.image, 'image');
  const maskArg = need(v.mask, 'mask');
  const count = integer(v.count, 'count', 1) ?? 4;
  const decoding = decodingFlag(v.decoding);
  const seed = seedFlag(v.seed);
  const out = v.out ?? 'edit.png';
  const image = decodeImage(readFileSync(imagePath), imagePath);
  const mask = isNamedMask(maskArg) ? maskArg : decodeImage(readFileSync(maskArg), maskArg);
  const model = Pipeline.load(chainPath, { ema: !v['no-ema'] });
  const scales = settingsFlags(v, model.info.T);
  const repeats = perScale(v.repeats, model.info.T, 'repeats', Number);
  const r = model.edit({
    image, mask, invert: v.invert, count, seed, scales, decoding, composite: v.composite, classes: classFlag(v.class),
    repeats: Object.keys(repeats).length ? repeats : undefined,
  }, { onProgress: (p) => process.stderr.write(`\rscale ${p.t}, repeat ${p.repeat + 1} done `) });
  process.stderr.write('\n');
  const row = [r.input, r.masked, r.reconstruction, ...r.images];
  writePng(out, gridPng(row, r.shape, row.length));
  const s = r.sidecar;
  const sidecar = writeSidecar(out, {
    ...s, image: resolve(imagePath), mask: typeof mask === 'string' ? mask : resolve(maskArg),
    layout: 'input, masked input, reconstruction, edits', files: [out],
  });
  process.stderr.write(`${count} edits (${s.tokens - s.keptTokens} of ${s.tokens} tokens repainted) in ${s.seconds.toFixed(1)} s → ${out} (settings: ${sidecar})\n`);
  return 0;
}

/** Parses, runs and maps errors to exit codes: 0 done, 1 failed, 2 bad usage (and requests the model cannot serve). */
async function command<V extends { help?: boolean }>(name: string, help: string, parse: () => V, run: (v: V) => Promise<number>): Promise<number> {
  let values: V;
  try {
    values = parse();
  } catch (e) {
    process.stderr.write(`imagebart ${name}: ${(e as Error).message}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  try {
    useLatencyBoundThreads();
    return await run(values);
  } catch (e) {
    process.stderr.write(`imagebart ${name}: ${(e as Error).message}\n`);
    return e instanceof UsageError || e instanceof RequestError ? 2 : 1;
  }
}

/** `imagebart sample …` (the arguments after `sample`); resolves to the exit code. */
export const sampleCommand = (argv: string[]): Promise<number> =>
  command('sample', SAMPLE_HELP, () => parseArgs({ args: argv, options: SAMPLE_OPTIONS, strict: true }).values, runSample);

/** `imagebart edit …` (the arguments after `edit`); resolves to the exit code. */
export const editCommand = (argv: string[]): Promise<number> =>
  command('edit', EDIT_HELP, () => parseArgs({ args: argv, options: EDIT_OPTIONS, strict: true }).values, runEdit);
