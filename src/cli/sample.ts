/**
 * `imagebart sample` and `imagebart edit`: new images from a trained chain, and masked edits of a
 * picture. Both write a PNG grid and, next to it, a JSON sidecar with every setting and seed, so a
 * run can be repeated exactly.
 */
import type { ParseArgsConfig } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError, LIMITS, device, integer, grid as gridFlag, need, parseArgs, warnIfLong, type Parsed } from './args.js';
import { OutputPlan, OutputError } from '../io/output.js';
import { SchemaError } from '../io/schema.js';
import { loadClassifier } from '../eval/index.js';
import { describeConditioning, readManifest, chainFiles } from '../chain/index.js';
import { decodeImage } from '../data/index.js';
import { DECODINGS, NAMED_MASKS, LabelMapError, isNamedMask, readLabelMap, type Decoding, type LabelMap, type ScaleSettings } from '../sample/index.js';
import { Pipeline, RequestError, gridPng, manifestPath, parseSeed, useLatencyBoundThreads, type RequestCondition } from '../pipeline/index.js';
import { Progress } from './progress.js';

const OUTPUT_RULES = `Outputs: an existing file is never replaced without --force; a path that is one of the run's
inputs (picture, mask, manifest, model files) is refused, as is a name whose extension is not .png
(the sidecar is .json). Every output path is checked before the work starts, and files are written
whole (temporary file, then rename). Limits: --count ≤ ${LIMITS.count}, --batch-size ≤ ${LIMITS.batchSize},
--grid sides ≤ ${LIMITS.gridSide} tokens; pictures ≤ 16384 pixels a side and 40 megapixels.
Examples:
  imagebart sample --chain runs/chain/chain.json --count 64 --seed 1 --out samples.png
  imagebart edit --chain runs/chain/chain.json --image digit.png --mask upper-half --out edit.png --force
  imagebart sample --chain runs/seg-chain/chain.json --segmentation my-digit-shape.png --count 8 --out shaped.png`;

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
  --segmentation FILE   label map of a segmentation-conditional chain, for every image ('null': the null
                        map of a chain trained with --cond-dropout). A PNG/JPEG either colour-coded —
                        each pixel background red #ff0000, stroke green #00ff00 or outline blue #0000ff
                        (one-hot, as 'vqgan decode' shows label maps), exactly the model's size — or a
                        grey light-on-dark shape of any size (e.g. a drawn digit), whose labels are
                        derived as in training. The sidecar records each image's segmentation fidelity
                        (mean IoU of the map with the label map of the sample)
  --guidance S[,…]      guidance scale: logits l_u + S·(l_c − l_u), 1 = off, > 1 sharper. l_u: the
                        weaker chain a model ships (autoguidance, on at the model's scale by default,
                        e.g. models/mnist), else the null condition (classifier-free: chains trained
                        with --cond-dropout)
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
  --json                progress as JSON lines on stderr, and the sidecar as one JSON line on stdout

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
  --segmentation FILE  --guidance S  --no-ema  --force  --device D  --json   as for sample
  With --segmentation the repainted region follows the map (the kept one stays the picture's own).

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
  segmentation: { type: 'string' },
  guidance: { type: 'string' },
  decoding: { type: 'string' },
  'no-ema': { type: 'boolean' },
  force: { type: 'boolean' },
  device: { type: 'string' },
  json: { type: 'boolean' },
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

const CONDITION_FLAG = { none: undefined, class: 'class', text: 'prompt', segmentation: 'segmentation' } as const;

/**
 * What the images are conditioned on, from --class (ids, or 'null' for the null class), --prompt
 * (a caption; several separated by '|') or --segmentation (a label-map picture, or 'null'): whichever
 * flag the chain takes (the pipeline checks the values).
 */
function conditionFlags(v: { class?: string; prompt?: string; segmentation?: string }, model: Pipeline): RequestCondition[] | undefined {
  const c = model.manifest.conditioning;
  const flag = CONDITION_FLAG[c.kind];
  for (const f of ['class', 'prompt', 'segmentation'] as const) {
    if (v[f] !== undefined && f !== flag) {
      throw new UsageError(`--${f}: ${c.kind === 'none' ? 'this chain is unconditional' : `this chain is conditioned on ${describeConditioning(c)}`}`);
    }
  }
  if (!flag) return undefined;
  const raw = v[flag];
  if (raw === undefined) throw new UsageError(`--${flag} is required: this chain is conditioned on ${describeConditioning(c)}`);
  if (flag === 'segmentation') return [raw === 'null' ? null : segmentationFlag(raw, model)];
  return flag === 'class'
    ? raw.split(',').map((s) => (s.trim() === 'null' ? null : integer(s.trim(), 'class')!))
    : raw.split('|').map((s) => s.trim());
}

/** --segmentation FILE: the label map a picture holds (sample/segmentation.ts `readLabelMap`), at the label-map model's size. */
function segmentationFlag(path: string, model: Pipeline): LabelMap {
  const c = model.manifest.conditioning;
  if (c.kind !== 'segmentation' || !model.mapStage) throw new UsageError('--segmentation: this chain has no label-map model');
  if (!existsSync(path)) throw new UsageError(`--segmentation ${path} does not exist`);
  try {
    return readLabelMap(decodeImage(readFileSync(path), path), model.mapStage.config.ddconfig.resolution, c.labels);
  } catch (e) {
    if (e instanceof LabelMapError) throw new UsageError(`--segmentation ${path}: ${e.message}`);
    throw e;
  }
}

/**
 * --guidance S[,…]: one scale for every scale of the chain or one per scale (scale T first): autoguidance
 * by the weaker chain the model ships, else classifier-free; refused for a chain with neither.
 */
function guidanceFlag(v: string | undefined, model: Pipeline): number | Record<number, number> | undefined {
  if (v === undefined) return undefined;
  const c = model.manifest.conditioning;
  if (model.info.guidance === null) {
    throw new UsageError(`--guidance needs a chain trained with --cond-dropout (it has a null condition to guide against) or shipped with a weaker chain (autoguidance); this chain is ` +
      `${c.kind === 'none' ? 'unconditional, without a weaker chain' : `conditioned on ${describeConditioning(c)}, without a null ${CONDITION_FLAG[c.kind] === 'prompt' ? 'caption' : CONDITION_FLAG[c.kind] === 'segmentation' ? 'map' : 'class'}`}`);
  }
  const byScale = perScale(v, model.info.T, 'guidance', Number);
  return v.includes(',') ? byScale : byScale[1]; // one value: the same s at every scale
}

/** --seed: 64-bit, decimal; undefined (the pipeline draws one and records it) when absent. */
function seedFlag(v: string | undefined): bigint | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSeed(v);
  } catch (e) {
    throw new UsageError(`--${(e as Error).message}`);
  }
}

/** --segmentation's picture as an input the outputs must not overwrite. */
const segmentationInput = (v: string | undefined): [string, string | undefined] => ['label map (--segmentation)', v === 'null' ? undefined : v];

/** The sidecar's record of --segmentation: the picture's path (or 'null'). */
const segmentationRecord = (v: string | undefined) => (v === undefined ? {} : { segmentationMap: v === 'null' ? null : resolve(v) });

const sidecarPath = (png: string) => png.replace(/\.png$/i, '') + '.json';
const stepsPath = (png: string) => png.replace(/\.png$/i, '') + '-steps.png';

/**
 * The outputs of a run, checked before any work: `out` (PNG), its sidecar and `extra` PNGs, none of
 * them the manifest, a file it names or one of `inputs`.
 */
function planOutputs(v: { force?: boolean }, chainPath: string, out: string, extra: string[], inputs: [string, string | undefined][] = []): OutputPlan {
  if (!existsSync(chainPath)) throw new UsageError(`--chain ${chainPath} does not exist`);
  const plan = new OutputPlan({ force: v.force }).protect('chain manifest or model', ...chainFiles(chainPath, readManifest(chainPath)));
  for (const [role, path] of inputs) plan.protect(role, path);
  for (const png of [out, ...extra]) plan.add(png, 'png', png === out ? '--out' : 'output');
  plan.add(sidecarPath(out), 'json', 'sidecar');
  return plan;
}

/** Writes the sidecar next to `png` (same name, .json) and returns its path. */
function writeSidecar(plan: OutputPlan, png: string, sidecar: Record<string, unknown>): string {
  plan.write(sidecarPath(png), JSON.stringify(sidecar, null, 2) + '\n');
  return sidecarPath(png);
}

/** --accept-rate R --classifier FILE: classifier rejection sampling, checked before the model loads. */
function rejectionFlags(v: { 'accept-rate'?: string; classifier?: string; grid?: string; intermediates?: boolean }) {
  if (v['accept-rate'] === undefined) {
    if (v.classifier !== undefined) throw new UsageError('--classifier is used with --accept-rate (classifier rejection sampling)');
    return undefined;
  }
  const acceptRate = Number(v['accept-rate']);
  if (!(acceptRate > 0 && acceptRate <= 1)) throw new UsageError(`--accept-rate must lie in (0, 1], got '${v['accept-rate']}'`);
  const path = need(v.classifier, 'classifier');
  if (v.grid !== undefined || v.intermediates) throw new UsageError('--accept-rate does not combine with --grid or --intermediates');
  return { acceptRate, path, classifier: loadClassifier(path).model };
}

type Values<O extends NonNullable<ParseArgsConfig['options']>> = Parsed<O>['values'];

/** Progress of a run (scale runs done, over every batch), and a note when the first one says the whole run will be long. */
function reporter(what: string, count: number, json?: boolean) {
  const started = performance.now();
  const bar = new Progress(`${count} ${what}`, { json });
  return {
    onProgress: (p: { batch: number; batches: number; t: number; repeat: number; done: number; total: number }) => {
      bar.update(p.done, p.total, `${p.batches > 1 ? `batch ${p.batch + 1}/${p.batches}, ` : ''}scale ${p.t}${p.repeat > 0 ? ` repeat ${p.repeat + 1}` : ''}`);
      if (p.done === 1 && !json) warnIfLong(((performance.now() - started) / 1000) * p.total, `${count} ${what}`);
    },
    stop: () => bar.stop(),
  };
}

/** The end of a run: a line for people, or the sidecar on stdout with --json. */
function finished(json: boolean | undefined, line: string, sidecar: Record<string, unknown>): void {
  if (json) process.stdout.write(JSON.stringify(sidecar) + '\n');
  else process.stderr.write(line);
}

async function runSample(v: Values<typeof SAMPLE_OPTIONS>): Promise<number> {
  const chainPath = manifestPath(need(v.chain, 'chain'));
  const count = integer(v.count, 'count', 1, LIMITS.count) ?? 16;
  const batchSize = integer(v['batch-size'], 'batch-size', 1, LIMITS.batchSize) ?? Math.min(count, 16);
  const nrow = integer(v.nrow, 'nrow', 1) ?? 8;
  const decoding = decodingFlag(v.decoding);
  const grid = gridFlag(v.grid);
  const seed = seedFlag(v.seed);
  const out = v.out ?? 'samples.png';
  const plan = planOutputs(v, chainPath, out, v.intermediates ? [stepsPath(out)] : [], [segmentationInput(v.segmentation)]);
  const rejection = rejectionFlags(v);
  const progress = reporter('samples', count, v.json);
  const model = Pipeline.load(chainPath, { ema: !v['no-ema'], device: device(v.device) });
  const T = model.info.T;
  const r = model.sample(
    {
      count, batchSize, seed, scales: settingsFlags(v, T), decoding, grid, intermediates: v.intermediates,
      condition: conditionFlags(v, model), guidance: guidanceFlag(v.guidance, model), rejection,
    },
    { onProgress: progress.onProgress },
  );
  progress.stop();
  const files = [out];
  plan.write(out, gridPng(r.images, r.shape, nrow));
  if (r.steps) {
    files.push(stepsPath(out));
    plan.write(files[1], gridPng(r.steps.flat(), r.shape, T + 1));
  }
  const record = { ...r.sidecar, ...(rejection ? { classifier: resolve(rejection.path) } : {}), ...segmentationRecord(v.segmentation), files };
  const sidecar = writeSidecar(plan, out, record);
  const kept = r.sidecar.rejection ? ` (kept ${r.sidecar.rejection.kept} of ${r.sidecar.rejection.drawn} draws: acceptance rate ${r.sidecar.rejection.acceptRate.toFixed(3)})` : '';
  finished(v.json, `${count} samples${kept} in ${r.sidecar.seconds.toFixed(1)} s → ${files.join(', ')} (settings: ${sidecar})\n`, record);
  return 0;
}

async function runEdit(v: Values<typeof EDIT_OPTIONS>): Promise<number> {
  const chainPath = manifestPath(need(v.chain, 'chain'));
  const imagePath = need(v.image, 'image');
  const maskArg = need(v.mask, 'mask');
  const count = integer(v.count, 'count', 1, LIMITS.count) ?? 4;
  const decoding = decodingFlag(v.decoding);
  const seed = seedFlag(v.seed);
  const out = v.out ?? 'edit.png';
  if (!isNamedMask(maskArg) && !existsSync(maskArg)) {
    throw new UsageError(`--mask '${maskArg}' is neither a mask name (${NAMED_MASKS.join(', ')}) nor an existing mask image`);
  }
  if (!existsSync(imagePath)) throw new UsageError(`--image ${imagePath} does not exist`);
  const plan = planOutputs(v, chainPath, out, [], [['input picture (--image)', imagePath], ['mask (--mask)', isNamedMask(maskArg) ? undefined : maskArg], segmentationInput(v.segmentation)]);
  const image = decodeImage(readFileSync(imagePath), imagePath);
  const mask = isNamedMask(maskArg) ? maskArg : decodeImage(readFileSync(maskArg), maskArg);
  const progress = reporter('edits', count, v.json);
  const model = Pipeline.load(chainPath, { ema: !v['no-ema'], device: device(v.device) });
  const T = model.info.T;
  const repeats = perScale(v.repeats, T, 'repeats', (s) => integer(s, 'repeats', 1)!);
  const r = model.edit({
    image, mask, invert: v.invert, count, seed, scales: settingsFlags(v, T), decoding, composite: v.composite,
    condition: conditionFlags(v, model), guidance: guidanceFlag(v.guidance, model),
    repeats: Object.keys(repeats).length ? repeats : undefined,
  }, { onProgress: progress.onProgress });
  progress.stop();
  const row = [r.input, r.masked, r.reconstruction, ...r.images];
  plan.write(out, gridPng(row, r.shape, row.length));
  const s = r.sidecar;
  const record = {
    ...s, image: resolve(imagePath), mask: typeof mask === 'string' ? mask : resolve(maskArg), ...segmentationRecord(v.segmentation),
    layout: 'input, masked input, reconstruction, edits', files: [out],
  };
  const sidecar = writeSidecar(plan, out, record);
  finished(v.json, `${count} edits (${s.tokens - s.keptTokens} of ${s.tokens} tokens repainted) in ${s.seconds.toFixed(1)} s → ${out} (settings: ${sidecar})\n`, record);
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
    return e instanceof UsageError || e instanceof OutputError || e instanceof SchemaError || e instanceof RequestError ? 2 : 1;
  }
}

/** `imagebart sample …` (the arguments after `sample`); resolves to the exit code. */
export const sampleCommand = (argv: string[]): Promise<number> =>
  command('sample', SAMPLE_HELP, () => parseArgs(argv, SAMPLE_OPTIONS).values, runSample);

/** `imagebart edit …` (the arguments after `edit`); resolves to the exit code. */
export const editCommand = (argv: string[]): Promise<number> =>
  command('edit', EDIT_HELP, () => parseArgs(argv, EDIT_OPTIONS).values, runEdit);
