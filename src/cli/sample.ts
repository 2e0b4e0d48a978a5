/**
 * `imagebart sample` and `imagebart edit`: new images from a trained chain, and masked edits of a
 * picture. Both write a PNG grid and, next to it, a JSON sidecar with every setting and seed, so a
 * run can be repeated exactly.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { tensor, getThreads, setThreads } from '../torch/index.js';
import { UsageError, device, integer, need } from './args.js';
import { decodeImage, encodePng, makeGrid } from '../data/index.js';
import {
  DECODINGS, NAMED_MASKS, decodeTokens, editImage, invertMask, isNamedMask, loadSamplingChain, maskFromImage, namedMask, sample,
  type Decoding, type FirstStage, type SamplingChain, type ScaleSettings,
} from '../sample/index.js';

const SETTINGS_HELP = `Per-scale values (--temperature, --top-k, --top-p, --repeats) are one value for every scale or a
comma list in sampling order, scale T first: with T = 3, '--temperature 1,0.9,0.8' runs scale 3 at 1.0
and scale 1 at 0.8.`;

const SAMPLE_HELP = `imagebart sample --chain CHAIN.json [options]

Samples images from a trained chain: x_T uniform over the codebook, then every scale's model from T to 1
(EMA weights), then the VQGAN decoder. Writes a PNG grid and a JSON sidecar (same name, .json).

Options:
  --chain FILE          chain manifest (imagebart-chain/1), required
  --out FILE.png        output grid (default samples.png)
  --count N             images (default 16)
  --batch-size N        images per batch (default min(count, 16)); batch i is seeded with seed + i
  --seed N              base seed (default: random, recorded in the sidecar)
  --temperature X[,…]   softmax temperature (default 1)
  --top-k N[,…]         keep the N most likely codes (default: all)
  --top-p X[,…]         nucleus sampling mass (default 1: off)
  --class N[,…]         class ids of a class-conditional chain: one for all images or one per image
  --grid HxW            token grid larger than the trained one: sliding-window sampling
  --decoding MODE       cached (default), uncached (re-run the decoder prefix per token) or official
  --intermediates       also write FILE-steps.png: each image's x_T … x_0 decoded, coarse to fine
  --nrow N              images per grid row (default 8)
  --no-ema              the training weights instead of the EMA weights
  --device D            cpu (default), cuda or cuda:N: where the models run

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
  --temperature X[,…]  --top-k N[,…]  --top-p X[,…]  --decoding MODE  --class N  --no-ema  --device D   as for sample

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
  device: { type: 'string' },
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

/** --class for `count` images of a chain with `classes` classes (null: unconditional). */
function classFlag(v: string | undefined, classes: number | null, count: number): number[] | undefined {
  if (classes === null) {
    if (v !== undefined) throw new UsageError('--class: this chain is unconditional');
    return undefined;
  }
  if (v === undefined) throw new UsageError(`--class is required: this chain is conditional on ${classes} classes`);
  const ids = v.split(',').map((s) => integer(s.trim(), 'class')!);
  if (ids.some((c) => c >= classes)) throw new UsageError(`--class: ids must lie in 0..${classes - 1}`);
  if (ids.length !== 1 && ids.length !== count) throw new UsageError(`--class takes one id or one per image (${count}), got ${ids.length}`);
  return Array.from({ length: count }, (_, i) => ids[ids.length === 1 ? 0 : i]);
}

const condTensor = (ids: number[] | undefined) => (ids ? tensor(BigInt64Array.from(ids, BigInt), [ids.length, 1]) : undefined);

function writePng(path: string, png: { width: number; height: number; rgba: Uint8Array }): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, encodePng(png.rgba, png.width, png.height));
}

/** Writes the sidecar next to `png` (same name, .json) and returns its path. */
function writeSidecar(png: string, sidecar: Record<string, unknown>): string {
  const json = png.replace(/\.png$/i, '') + '.json';
  writeFileSync(json, JSON.stringify(sidecar, null, 2) + '\n');
  return json;
}

function chainSummary(path: string, chain: SamplingChain, stage: FirstStage, ema: boolean, manifest: { K: number; T: number; schedule: unknown; classes: number | null }) {
  return {
    manifest: resolve(path), K: manifest.K, T: manifest.T, schedule: manifest.schedule, beta: chain.schedule.beta,
    tokenShape: chain.tokenShape, classes: manifest.classes, resolution: stage.config.ddconfig.resolution, ema,
  };
}

const baseSeed = (v: string | undefined) => integer(v, 'seed') ?? randomInt(2 ** 31);

type Values<O extends ParseArgsConfig['options']> = ReturnType<typeof parseArgs<{ options: O; strict: true }>>['values'];

async function runSample(v: Values<typeof SAMPLE_OPTIONS>): Promise<number> {
  const chainPath = need(v.chain, 'chain');
  const count = integer(v.count, 'count', 1) ?? 16;
  const batchSize = integer(v['batch-size'], 'batch-size', 1) ?? Math.min(count, 16);
  const nrow = integer(v.nrow, 'nrow', 1) ?? 8;
  const decoding = decodingFlag(v.decoding);
  const out = v.out ?? 'samples.png';
  const { chain, firstStage, manifest } = loadSamplingChain(chainPath, { ema: !v['no-ema'], device: device(v.device) });
  const scales = settingsFlags(v, manifest.T);
  const classes = classFlag(v.class, manifest.classes, count);
  let grid: [number, number] | undefined;
  if (v.grid !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(v.grid);
    if (!m) throw new UsageError(`--grid must be HxW in tokens, e.g. 16x16, got '${v.grid}'`);
    grid = [Number(m[1]), Number(m[2])];
  }
  const seed = baseSeed(v.seed);
  const started = performance.now();
  const images: Float32Array[] = [], steps: Float32Array[] = [];
  const batches: { seed: number; images: number }[] = [];
  let shape: { channels: 1 | 3; height: number; width: number } | undefined;
  let settings: Record<number, Required<ScaleSettings>> = {};
  for (let start = 0, i = 0; start < count; start += batchSize, i++) {
    const n = Math.min(batchSize, count - start);
    const r = sample(chain, {
      batch: n, seed: seed + i, scales, decoding, grid, intermediates: v.intermediates,
      cond: condTensor(classes?.slice(start, start + n)),
      onScale: (t) => process.stderr.write(`\rbatch ${i + 1}/${Math.ceil(count / batchSize)}: scale ${t} done `),
    });
    settings = r.settings;
    batches.push({ seed: r.seed, images: n });
    const decoded = decodeTokens(firstStage, r.tokens);
    shape = decoded;
    const per = decoded.channels * decoded.height * decoded.width;
    for (let b = 0; b < n; b++) images.push(decoded.data.slice(b * per, (b + 1) * per));
    if (r.intermediates) {
      const xs = r.intermediates.map((x) => decodeTokens(firstStage, x).data); // [T + 1] × [n, C, H, W]
      for (let b = 0; b < n; b++) for (const x of xs) steps.push(x.slice(b * per, (b + 1) * per));
    }
  }
  process.stderr.write('\n');
  const seconds = (performance.now() - started) / 1000;
  const files = [out];
  writePng(out, makeGrid(images, shape!, { nrow }));
  if (steps.length) {
    files.push(out.replace(/\.png$/i, '') + '-steps.png');
    writePng(files[1], makeGrid(steps, shape!, { nrow: manifest.T + 1 }));
  }
  const sidecar = writeSidecar(out, {
    command: 'sample', chain: chainSummary(chainPath, chain, firstStage, !v['no-ema'], manifest),
    count, batchSize, seed, batches, settings, decoding, grid: grid ?? chain.tokenShape, classes: classes ?? null,
    intermediates: !!v.intermediates, files, seconds, imagesPerSecond: count / seconds, threads: getThreads(),
  });
  process.stderr.write(`${count} samples in ${seconds.toFixed(1)} s → ${files.join(', ')} (settings: ${sidecar})\n`);
  return 0;
}

async function runEdit(v: Values<typeof EDIT_OPTIONS>): Promise<number> {
  const chainPath = need(v.chain, 'chain');
  const imagePath = need(v.image, 'image');
  const maskArg = need(v.mask, 'mask');
  const count = integer(v.count, 'count', 1) ?? 4;
  const decoding = decodingFlag(v.decoding);
  const out = v.out ?? 'edit.png';
  const image = decodeImage(readFileSync(imagePath), imagePath);
  const mask = isNamedMask(maskArg) ? maskArg : decodeImage(readFileSync(maskArg), maskArg);
  const { chain, firstStage, manifest } = loadSamplingChain(chainPath, { ema: !v['no-ema'], device: device(v.device) });
  const scales = settingsFlags(v, manifest.T);
  const repeats = perScale(v.repeats, manifest.T, 'repeats', Number);
  const classes = classFlag(v.class, manifest.classes, count);
  const R = firstStage.config.ddconfig.resolution;
  let keep = typeof mask === 'string' ? namedMask(mask, R) : maskFromImage(mask, R);
  if (v.invert) keep = invertMask(keep);
  const seed = baseSeed(v.seed);
  const started = performance.now();
  const r = editImage(chain, firstStage, image, keep, {
    count, seed, scales, decoding, composite: v.composite, cond: condTensor(classes),
    repeats: Object.keys(repeats).length ? repeats : undefined,
    onScale: (t, i) => process.stderr.write(`\rscale ${t}, repeat ${i + 1} done `),
  });
  process.stderr.write('\n');
  const seconds = (performance.now() - started) / 1000;
  const shape = { channels: r.channels, height: R, width: R };
  const masked = r.input.map((x, i) => (keep[i % (R * R)] ? x : 0)); // repainted pixels grey
  const row = [r.input, masked, r.reconstruction, ...Array.from({ length: count }, (_, b) => r.images.subarray(b * r.input.length, (b + 1) * r.input.length))];
  const kept = r.keep.toNumbers().reduce((a, b) => a + b, 0);
  writePng(out, makeGrid(row, shape, { nrow: row.length }));
  const sidecar = writeSidecar(out, {
    command: 'edit', chain: chainSummary(chainPath, chain, firstStage, !v['no-ema'], manifest),
    image: resolve(imagePath), mask: typeof mask === 'string' ? mask : resolve(maskArg), invert: !!v.invert, composite: !!v.composite,
    keptTokens: kept, tokens: r.keep.numel, count, seed: r.seed, settings: r.settings, repeats: r.repeats, decoding,
    classes: classes ?? null, layout: 'input, masked input, reconstruction, edits', files: [out], seconds, threads: getThreads(),
  });
  process.stderr.write(`${count} edits (${r.keep.numel - kept} of ${r.keep.numel} tokens repainted) in ${seconds.toFixed(1)} s → ${out} (settings: ${sidecar})\n`);
  return 0;
}

/** Parses, runs and maps errors to exit codes: 0 done, 1 failed, 2 bad usage. */
/**
 * Token-by-token decoding runs many small operations whose cost is waking thread pools, not
 * arithmetic: one thread per pool samples ≈1.7× faster than all cores (bench:sample, 16×16 grids).
 * Used unless the user chose a split with IMAGEBART_THREADS / IMAGEBART_BLAS_THREADS.
 */
function latencyBoundThreads(): void {
  if (process.env.IMAGEBART_THREADS === undefined && process.env.IMAGEBART_BLAS_THREADS === undefined) setThreads({ intraOp: 1, blas: 1 });
}

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
    latencyBoundThreads();
    return await run(values);
  } catch (e) {
    process.stderr.write(`imagebart ${name}: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

/** `imagebart sample …` (the arguments after `sample`); resolves to the exit code. */
export const sampleCommand = (argv: string[]): Promise<number> =>
  command('sample', SAMPLE_HELP, () => parseArgs({ args: argv, options: SAMPLE_OPTIONS, strict: true }).values, runSample);

/** `imagebart edit …` (the arguments after `edit`); resolves to the exit code. */
export const editCommand = (argv: string[]): Promise<number> =>
  command('edit', EDIT_HELP, () => parseArgs({ args: argv, options: EDIT_OPTIONS, strict: true }).values, runEdit);
