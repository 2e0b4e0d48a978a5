/**
 * `imagebart sample` and `imagebart edit`: new images from a trained chain, and masked edits of a
 * picture. Both write a PNG grid and, next to it, a JSON sidecar with every setting and seed, so a
 * run can be repeated exactly.
 */
<<<<<<< HEAD
import type { ParseArgsConfig } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { getThreads, setThreads } from '../torch/index.js';
import { UsageError, LIMITS, device, integer, seed as seedFlag, grid as gridFlag, need, parseArgs, warnIfLong, type Parsed } from './args.js';
import { OutputPlan, OutputError } from '../io/output.js';
import { SchemaError } from '../io/schema.js';
import { loadClassifier, rejectionSample } from '../eval/index.js';
import { describeConditioning, encodeConditions, nullCondition, type ChainManifest, type Condition, type Conditioning } from '../chain/index.js';
import { decodeImage, encodePng, makeGrid } from '../data/index.js';
import { readManifest, chainFiles } from '../chain/index.js';
import {
  DECODINGS, NAMED_MASKS, decodeTokens, editImage, fitMask, invertMask, isNamedMask, loadSamplingChain, maskAtPictureSize, namedMask, sample,
  type Decoding, type FirstStage, type Guidance, type SamplingChain, type ScaleSettings,
} from '../sample/index.js';
=======
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError, integer, need } from './args.js';
import { decodeImage } from '../data/index.js';
import { DECODINGS, NAMED_MASKS, isNamedMask, type Decoding, type ScaleSettings } from '../sample/index.js';
import { Pipeline, RequestError, gridPng, parseSeed, useLatencyBoundThreads } from '../pipeline/index.js';
>>>>>>> issue-10

const OUTPUT_RULES = `Outputs: an existing file is never replaced without --force; a path that is one of the run's
inputs (picture, mask, manifest, model files) is refused, as is a name whose extension is not .png
(the sidecar is .json). Every output path is checked before the work starts, and files are written
whole (temporary file, then rename). Limits: --count ≤ ${LIMITS.count}, --batch-size ≤ ${LIMITS.batchSize},
--grid sides ≤ ${LIMITS.gridSide} tokens; pictures ≤ 16384 pixels a side and 40 megapixels.
Examples:
  imagebart sample --chain runs/chain/chain.json --count 64 --seed 1 --out samples.png
  imagebart edit --chain runs/chain/chain.json --image digit.png --mask upper-half --out edit.png --force`;

const SETTINGS_HELP = `Per-scale values (--temperature, --top-k, --top-p, --repeats) are one value for every scale or a
comma list in sampling order, scale T first: with T = 3, '--temperature 1,0.9,0.8' runs scale 3 at 1.0
and scale 1 at 0.8.`;

const SAMPLE_HELP = `imagebart sample --chain CHAIN.json [options]

Samples images from a trained chain: x_T uniform over the codebook, then every scale's model from T to 1
(EMA weights), then the VQGAN decoder. Writes a PNG grid and a JSON sidecar (same name, .json).

${OUTPUT_RULES}

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
                        ('null': the null class of a chain trained with --cond-dropout: unconditional)
  --prompt TEXT[|…]     caption(s) of a text-conditional chain: one for all images or one per image
  --guidance S[,…]      classifier-free guidance scale (chains trained with --cond-dropout): logits
                        l_u + S·(l_c − l_u); 1 is plain conditional sampling, > 1 sharper
  --accept-rate R       classifier rejection sampling (class chains): draw count/R samples per class and
                        keep the ones the --classifier FILE ('imagebart eval classifier') finds most
                        likely of their class; the sidecar records the realised rate and thresholds
  --grid HxW            token grid larger than the trained one: sliding-window sampling
  --decoding MODE       cached (default), uncached (re-run the decoder prefix per token) or official
  --intermediates       also write FILE-steps.png: each image's x_T … x_0 decoded, coarse to fine
  --nrow N              images per grid row (default 8)
  --no-ema              the training weights instead of the EMA weights
  --force               replace existing output files
  --device D            cpu (default), cuda or cuda:N: where the models run

${SETTINGS_HELP}
`;

const EDIT_HELP = `imagebart edit --chain CHAIN.json --image IMG --mask MASK [options]

Repaints the masked part of a picture so that it agrees with the rest on every side (the masked
multinomial diffusion: kept tokens stay the image's own at every step of every scale; each scale is
repeated with partial re-noising). Writes a PNG row [input, masked input, reconstruction, edits…] and a
JSON sidecar. A non-square picture is padded to a square with its own border colour; the mask gets the
same geometry (a mask image is stretched to the picture's size first; the padding is never repainted).

${OUTPUT_RULES}

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
  --temperature X[,…]  --top-k N[,…]  --top-p X[,…]  --decoding MODE  --class N  --prompt TEXT
  --guidance S  --no-ema  --force  --device D   as for sample

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
  prompt: { type: 'string' },
  guidance: { type: 'string' },
  decoding: { type: 'string' },
  'no-ema': { type: 'boolean' },
  force: { type: 'boolean' },
  device: { type: 'string' },
} satisfies ParseArgsConfig['options'];

const SAMPLE_OPTIONS = {
  ...COMMON,
  'accept-rate': { type: 'string' },
  classifier: { type: 'string' },
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
  const topK = perScale(v['top-k'], T, 'top-k', (s) => integer(s, 'top-k', 1)!);
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

<<<<<<< HEAD
/**
 * What each of `count` images is conditioned on, from --class (ids, or 'null' for the null class) or
 * --prompt (a caption; several separated by '|'): one for all images or one per image.
 */
function conditionFlags(v: { class?: string; prompt?: string }, c: Conditioning, count: number): Condition[] | undefined {
  const flag = c.kind === 'class' ? 'class' : c.kind === 'text' ? 'prompt' : undefined;
  for (const f of ['class', 'prompt'] as const) {
    if (v[f] !== undefined && f !== flag) {
      throw new UsageError(`--${f}: ${c.kind === 'none' ? 'this chain is unconditional' : `this chain is conditioned on ${describeConditioning(c)}`}`);
    }
  }
  if (!flag) return undefined;
  const raw = v[flag];
  if (raw === undefined) throw new UsageError(`--${flag} is required: this chain is conditioned on ${describeConditioning(c)}`);
  const items: Condition[] = flag === 'class'
    ? raw.split(',').map((s) => (s.trim() === 'null' ? null : integer(s.trim(), 'class')!))
    : raw.split('|').map((s) => s.trim());
  if (items.length !== 1 && items.length !== count) throw new UsageError(`--${flag} takes one value or one per image (${count}), got ${items.length}`);
  const all = Array.from({ length: count }, (_, i) => items[items.length === 1 ? 0 : i]);
  try {
    encodeConditions(c, all)?.dispose(); // checks every value against the chain
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
  return all;
}

/** --guidance S[,…]: classifier-free guidance (per scale, scale T first), for chains trained with dropped conditions. */
function guidanceFlag(v: string | undefined, c: Conditioning, T: number): Guidance | undefined {
  if (v === undefined) return undefined;
  const scale = perScale(v, T, 'guidance', Number);
  try {
    return { scale, nullCond: nullCondition(c) };
  } catch (e) {
    throw new UsageError(`--guidance: ${(e as Error).message}`);
  }
}

const sidecarPath = (png: string) => png.replace(/\.png$/i, '') + '.json';
const stepsPath = (png: string) => png.replace(/\.png$/i, '') + '-steps.png';

/**
 * The outputs of a run, checked before any work: `out` (PNG), its sidecar and `extra` PNGs, none of
 * them the manifest, a file it names or one of `inputs`.
 */
function planOutputs(v: { out?: string; force?: boolean }, chainPath: string, out: string, extra: string[], inputs: [string, string | undefined][] = []): OutputPlan {
  if (!existsSync(chainPath)) throw new UsageError(`--chain ${chainPath} does not exist`);
  const plan = new OutputPlan({ force: v.force }).protect('chain manifest or model', ...chainFiles(chainPath, readManifest(chainPath)));
  for (const [role, path] of inputs) plan.protect(role, path);
  for (const png of [out, ...extra]) plan.add(png, 'png', png === out ? '--out' : 'output');
  plan.add(sidecarPath(out), 'json', 'sidecar');
  return plan;
}

function writePng(plan: OutputPlan, path: string, png: { width: number; height: number; rgba: Uint8Array }): void {
  plan.write(path, encodePng(png.rgba, png.width, png.height));
=======
function writePng(path: string, png: Buffer): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, png);
>>>>>>> issue-10
}

/** Writes the sidecar next to `png` (same name, .json) and returns its path. */
function writeSidecar(plan: OutputPlan, png: string, sidecar: Record<string, unknown>): string {
  plan.write(sidecarPath(png), JSON.stringify(sidecar, null, 2) + '\n');
  return sidecarPath(png);
}

<<<<<<< HEAD
function chainSummary(path: string, chain: SamplingChain, stage: FirstStage, ema: boolean, manifest: ChainManifest) {
  return {
    manifest: resolve(path), K: manifest.K, T: manifest.T, schedule: manifest.schedule, beta: chain.schedule.beta,
    tokenShape: chain.tokenShape, conditioning: describeConditioning(manifest.conditioning), resolution: stage.config.ddconfig.resolution, ema,
  };
}

const baseSeed = (v: string | undefined) => seedFlag(v) ?? randomInt(2 ** 31);
=======
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
>>>>>>> issue-10

type Values<O extends NonNullable<ParseArgsConfig['options']>> = Parsed<O>['values'];

async function runSample(v: Values<typeof SAMPLE_OPTIONS>): Promise<number> {
  const chainPath = need(v.chain, 'chain');
  const count = integer(v.count, 'count', 1, LIMITS.count) ?? 16;
  const batchSize = integer(v['batch-size'], 'batch-size', 1, LIMITS.batchSize) ?? Math.min(count, 16);
  const nrow = integer(v.nrow, 'nrow', 1) ?? 8;
  const decoding = decodingFlag(v.decoding);
<<<<<<< HEAD
  const grid = gridFlag(v.grid);
  const seed = baseSeed(v.seed);
  const out = v.out ?? 'samples.png';
  const plan = planOutputs(v, chainPath, out, v.intermediates ? [stepsPath(out)] : []);
  const { chain, firstStage, manifest } = loadSamplingChain(chainPath, { ema: !v['no-ema'], device: device(v.device) });
  const scales = settingsFlags(v, manifest.T);
  const conditions = conditionFlags(v, manifest.conditioning, count);
  const guidance = guidanceFlag(v.guidance, manifest.conditioning, manifest.T);
  if (v['accept-rate'] !== undefined) return runRejection(v, { plan, chainPath, chain, firstStage, manifest, conditions, guidance, scales, seed, count, batchSize, nrow, out });
  const started = performance.now();
  const images: Float32Array[] = [], steps: Float32Array[] = [];
  const batches: { seed: number; images: number }[] = [];
  let shape: { channels: 1 | 3; height: number; width: number } | undefined;
  let settings: Record<number, Required<ScaleSettings>> = {};
  for (let start = 0, i = 0; start < count; start += batchSize, i++) {
    const n = Math.min(batchSize, count - start);
    const r = sample(chain, {
      batch: n, seed: seed + i, scales, decoding, grid, intermediates: v.intermediates,
      cond: conditions && encodeConditions(manifest.conditioning, conditions.slice(start, start + n)), guidance,
      onScale: (t) => process.stderr.write(`\rbatch ${i + 1}/${Math.ceil(count / batchSize)}: scale ${t} done `),
    });
    settings = r.settings;
    if (i === 0) warnIfLong(((performance.now() - started) / 1000) * (count / n), `${count} samples`);
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
=======
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
>>>>>>> issue-10
  process.stderr.write('\n');
  const files = [out];
<<<<<<< HEAD
  writePng(plan, out, makeGrid(images, shape!, { nrow }));
  if (steps.length) {
    files.push(stepsPath(out));
    writePng(plan, files[1], makeGrid(steps, shape!, { nrow: manifest.T + 1 }));
  }
  const sidecar = writeSidecar(plan, out, {
    command: 'sample', chain: chainSummary(chainPath, chain, firstStage, !v['no-ema'], manifest),
    count, batchSize, seed, batches, settings, decoding, grid: grid ?? chain.tokenShape, conditions: conditions ?? null, guidance: guidance?.scale ?? null,
    intermediates: !!v.intermediates, files, seconds, imagesPerSecond: count / seconds, threads: getThreads(),
  });
  process.stderr.write(`${count} samples in ${seconds.toFixed(1)} s → ${files.join(', ')} (settings: ${sidecar})\n`);
=======
  writePng(out, gridPng(r.images, r.shape, nrow));
  if (r.steps) {
    files.push(out.replace(/\.png$/i, '') + '-steps.png');
    writePng(files[1], gridPng(r.steps.flat(), r.shape, T + 1));
  }
  const sidecar = writeSidecar(out, { ...r.sidecar, files });
  process.stderr.write(`${count} samples in ${r.sidecar.seconds.toFixed(1)} s → ${files.join(', ')} (settings: ${sidecar})\n`);
>>>>>>> issue-10
  return 0;
}

/** `sample --accept-rate R --classifier FILE`: classifier rejection sampling of the requested classes. */
function runRejection(v: Values<typeof SAMPLE_OPTIONS>, r: {
  plan: OutputPlan; chainPath: string; chain: SamplingChain; firstStage: FirstStage; manifest: ChainManifest; conditions?: Condition[]; guidance?: Guidance;
  scales: Record<number, ScaleSettings>; seed: number; count: number; batchSize: number; nrow: number; out: string;
}): number {
  const rate = Number(v['accept-rate']);
  if (!(rate > 0 && rate <= 1)) throw new UsageError(`--accept-rate must lie in (0, 1], got '${v['accept-rate']}'`);
  const classifierPath = need(v.classifier, 'classifier');
  if (!r.conditions || r.conditions.some((c) => typeof c !== 'number')) throw new UsageError('--accept-rate keeps samples of the requested classes: give --class ids of a class-conditional chain');
  if (v.grid !== undefined || v.intermediates) throw new UsageError('--accept-rate does not combine with --grid or --intermediates');
  const { model } = loadClassifier(classifierPath);
  const started = performance.now();
  const res = rejectionSample(model, r.chain, r.firstStage, {
    labels: r.conditions as number[], acceptRate: rate, batchSize: r.batchSize, seed: r.seed, guidance: r.guidance, scales: r.scales,
    onProgress: (d, n) => process.stderr.write(`\rdrawn ${d}/${n} `),
  });
  process.stderr.write('\n');
  const seconds = (performance.now() - started) / 1000;
  writePng(r.plan, r.out, makeGrid(res.images, { channels: res.channels, height: res.resolution, width: res.resolution }, { nrow: r.nrow }));
  const sidecar = writeSidecar(r.plan, r.out, {
    command: 'sample', chain: chainSummary(r.chainPath, r.chain, r.firstStage, !v['no-ema'], r.manifest),
    count: r.count, seed: r.seed, conditions: r.conditions, guidance: r.guidance?.scale ?? null, classifier: resolve(classifierPath),
    requestedAcceptRate: rate, acceptRate: res.acceptRate, drawn: res.drawn, kept: res.kept, thresholds: res.thresholds, scores: res.scores,
    files: [r.out], seconds, threads: getThreads(),
  });
  process.stderr.write(`kept ${res.kept} of ${res.drawn} samples (acceptance rate ${res.acceptRate.toFixed(3)}) in ${seconds.toFixed(1)} s → ${r.out} (settings: ${sidecar})\n`);
  return 0;
}

async function runEdit(v: Values<typeof EDIT_OPTIONS>): Promise<number> {
  const chainPath = need(v.chain, 'chain');
  const imagePath = need(v.image, 'image');
  const maskArg = need(v.mask, 'mask');
  const count = integer(v.count, 'count', 1, LIMITS.count) ?? 4;
  const decoding = decodingFlag(v.decoding);
<<<<<<< HEAD
  const seed = baseSeed(v.seed);
=======
  const seed = seedFlag(v.seed);
>>>>>>> issue-10
  const out = v.out ?? 'edit.png';
  if (!isNamedMask(maskArg) && !existsSync(maskArg)) {
    throw new UsageError(`--mask '${maskArg}' is neither a mask name (${NAMED_MASKS.join(', ')}) nor an existing mask image`);
  }
  if (!existsSync(imagePath)) throw new UsageError(`--image ${imagePath} does not exist`);
  const plan = planOutputs(v, chainPath, out, [], [['input picture (--image)', imagePath], ['mask (--mask)', isNamedMask(maskArg) ? undefined : maskArg]]);
  const image = decodeImage(readFileSync(imagePath), imagePath);
  const mask = isNamedMask(maskArg) ? maskArg : decodeImage(readFileSync(maskArg), maskArg);
<<<<<<< HEAD
  const { chain, firstStage, manifest } = loadSamplingChain(chainPath, { ema: !v['no-ema'], device: device(v.device) });
  const scales = settingsFlags(v, manifest.T);
  const repeats = perScale(v.repeats, manifest.T, 'repeats', (s) => integer(s, 'repeats', 1)!);
  const conditions = conditionFlags(v, manifest.conditioning, count);
  const guidance = guidanceFlag(v.guidance, manifest.conditioning, manifest.T);
  const R = firstStage.config.ddconfig.resolution;
  // the mask at the picture's own size, then the picture's geometry (padding kept, resize)
  let pictureKeep = typeof mask === 'string' ? namedMask(mask, image.width, image.height) : maskAtPictureSize(mask, image);
  if (v.invert) pictureKeep = invertMask(pictureKeep);
  const keep = fitMask(pictureKeep, image.width, image.height, R);
  const started = performance.now();
  const r = editImage(chain, firstStage, image, keep, {
    count, seed, scales, decoding, composite: v.composite, cond: conditions && encodeConditions(manifest.conditioning, conditions), guidance,
=======
  const model = Pipeline.load(chainPath, { ema: !v['no-ema'] });
  const scales = settingsFlags(v, model.info.T);
  const repeats = perScale(v.repeats, model.info.T, 'repeats', Number);
  const r = model.edit({
    image, mask, invert: v.invert, count, seed, scales, decoding, composite: v.composite, classes: classFlag(v.class),
>>>>>>> issue-10
    repeats: Object.keys(repeats).length ? repeats : undefined,
  }, { onProgress: (p) => process.stderr.write(`\rscale ${p.t}, repeat ${p.repeat + 1} done `) });
  process.stderr.write('\n');
<<<<<<< HEAD
  const seconds = (performance.now() - started) / 1000;
  const shape = { channels: r.channels, height: R, width: R };
  const masked = r.input.map((x, i) => (keep[i % (R * R)] ? x : 0)); // repainted pixels grey
  const row = [r.input, masked, r.reconstruction, ...Array.from({ length: count }, (_, b) => r.images.subarray(b * r.input.length, (b + 1) * r.input.length))];
  const kept = r.keep.toNumbers().reduce((a, b) => a + b, 0);
  writePng(plan, out, makeGrid(row, shape, { nrow: row.length }));
  const sidecar = writeSidecar(plan, out, {
    command: 'edit', chain: chainSummary(chainPath, chain, firstStage, !v['no-ema'], manifest),
    image: resolve(imagePath), mask: typeof mask === 'string' ? mask : resolve(maskArg), invert: !!v.invert, composite: !!v.composite,
    keptTokens: kept, tokens: r.keep.numel, count, seed: r.seed, settings: r.settings, repeats: r.repeats, decoding,
    conditions: conditions ?? null, guidance: guidance?.scale ?? null, layout: 'input, masked input, reconstruction, edits', files: [out], seconds, threads: getThreads(),
=======
  const row = [r.input, r.masked, r.reconstruction, ...r.images];
  writePng(out, gridPng(row, r.shape, row.length));
  const s = r.sidecar;
  const sidecar = writeSidecar(out, {
    ...s, image: resolve(imagePath), mask: typeof mask === 'string' ? mask : resolve(maskArg),
    layout: 'input, masked input, reconstruction, edits', files: [out],
>>>>>>> issue-10
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
<<<<<<< HEAD
    return e instanceof UsageError || e instanceof OutputError || e instanceof SchemaError ? 2 : 1;
=======
    return e instanceof UsageError || e instanceof RequestError ? 2 : 1;
>>>>>>> issue-10
  }
}

/** `imagebart sample …` (the arguments after `sample`); resolves to the exit code. */
export const sampleCommand = (argv: string[]): Promise<number> =>
  command('sample', SAMPLE_HELP, () => parseArgs(argv, SAMPLE_OPTIONS).values, runSample);

/** `imagebart edit …` (the arguments after `edit`); resolves to the exit code. */
export const editCommand = (argv: string[]): Promise<number> =>
  command('edit', EDIT_HELP, () => parseArgs(argv, EDIT_OPTIONS).values, runEdit);
