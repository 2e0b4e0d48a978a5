/**
 * `imagebart vqgan train|eval|encode|decode|shrink`: the first stage from the command line.
 *
 * train   fits a VQGAN to a dataset (resuming from <out>/last.safetensors when present);
 * eval    reconstruction PSNR/L1 and codebook usage of a model on a dataset split;
 * shrink  keeps the codes a held-out split uses and writes the shrunk model;
 * encode  tokenizes a dataset split into a token file for the chain;
 * decode  turns the first grids of a token file back into a PNG grid.
 */
import { Progress } from './progress.js';
import type { ParseArgsConfig } from 'node:util';
import { existsSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { tidy, noGrad, readSafetensorsHeader } from '../torch/index.js';
import { openDataset, subset, makeGrid, encodePng, BUILTIN_DATASETS, SEGMENT_LABELS, type ImageDataset } from '../data/index.js';
import { makeConfig, type VQModelConfig, type UnknownIndex } from '../vqgan/config.js';
import { DEFAULT_LOSS } from '../vqgan/loss.js';
import { loadVQModel, saveVQModel } from '../vqgan/model.js';
import { evaluate } from '../vqgan/metrics.js';
import { shrinkOn } from '../vqgan/shrink.js';
import { tokenizeDataset } from '../vqgan/tokens.js';
import { readTokenFile } from '../chain/index.js';
import { VQGANTrainer, CHECKPOINT, FINAL_MODEL, type VQGANTrainConfig } from '../vqgan/trainer.js';
import { VQGANTrainConfigSchema } from '../vqgan/schema.js';
import { UsageError, LIMITS, integer, number, positive, seed, need, parseArgs, type Parsed } from './args.js';
import { OutputPlan, OutputError, writeAtomic } from '../io/output.js';
import { SchemaError, parseWith, readJsonFile } from '../io/schema.js';
import { z } from 'zod';
import { dataParallelFromEnv } from '../distributed/index.js';

const HELP = `imagebart vqgan <command> [options]

Commands:
  train    Train a VQGAN (resumes from <out>/${CHECKPOINT} if present). Under torchrun's environment
           (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) each process is one rank of a data-parallel
           run on c10d: --batch-size per rank, rank 0 logs and saves.
  eval     Reconstruction PSNR/L1 and codebook usage on a dataset split (label maps: label accuracy, mean IoU).
  shrink   Keep only the codes used on a held-out split; write the shrunk model.
  encode   Tokenize a dataset split into a token file (int16/int32 grids + labels/captions).
  decode   Decode the first grids of a token file into a PNG grid.

Datasets (--data): ${BUILTIN_DATASETS.join(', ')}, or a folder of PNG/JPEG images
(optional captions.json / captions.txt; subfolders become classes).

train options:
  --data NAME            dataset (default mnist)
  --out DIR              run folder: checkpoints, samples/, log.jsonl (default runs/vqgan-<data>)
  --config FILE          JSON with any part of the training config (model.ddconfig, loss, lr, …)
  --steps N  --batch-size N  --lr X  --seed N  --disc-start N
  --autocast             bf16 autocast of the autoencoder (quantizer and losses in float32): ≈2× faster here
  --limit N              train on the first N images only
  --perceptual-weights FILE  LPIPS/VGG16 safetensors; enables the perceptual term (--perceptual-weight, default 1)
  --fresh                ignore an existing checkpoint in --out
  --print-config         print the effective config and exit
  The config is checked field by field: unknown keys, wrong types, a batch size < 1 or a learning
  rate ≤ 0 are errors.

eval / shrink / encode options:
  --model FILE           a VQGAN checkpoint (${FINAL_MODEL}, ${CHECKPOINT} or a shrunk model)
  --data NAME  --split train|test|all  --batch-size N  --max-images N (eval, shrink)
  --out FILE             output (shrink: model, encode: token file)
  --unknown-index random|extra|N   (shrink) id for codes outside the kept list (default random, as ImageBART)
  --json                 (eval) print the result as JSON
  --max-images N         (encode) the first N images of the split only

decode options:
  --model FILE  --tokens FILE  --count N (default 64)  --out FILE.png

Outputs (shrink, encode: .safetensors; decode: .png) are checked before the work starts and written
whole; an existing file is replaced only with --force, and an output that is the run's model or
token file is refused.
Examples:
  imagebart vqgan train --data mnist --out runs/vqgan-mnist --steps 6000
  imagebart vqgan encode --model vq.safetensors --split test --max-images 1000 --out test-tokens.safetensors

Defaults per dataset: 32×32 images → 8×8 tokens (ch 32, ch_mult [1,2,2], one res block, attention at 8×8),
256 codes for MNIST-style data, 512 for emoji and folders.
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  data: { type: 'string' },
  out: { type: 'string' },
  config: { type: 'string' },
  model: { type: 'string' },
  tokens: { type: 'string' },
  split: { type: 'string' },
  steps: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  'disc-start': { type: 'string' },
  autocast: { type: 'boolean' },
  limit: { type: 'string' },
  'max-images': { type: 'string' },
  count: { type: 'string' },
  'perceptual-weights': { type: 'string' },
  'perceptual-weight': { type: 'string' },
  'unknown-index': { type: 'string' },
  fresh: { type: 'boolean' },
  json: { type: 'boolean' },
  'print-config': { type: 'boolean' },
  force: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

type Values = Parsed<typeof OPTIONS, true>['values'];

const isMnistLike = (data: string) => data === 'mnist' || data === 'fashion-mnist';

/** The default training setup for a dataset (32×32 → 8×8 tokens). */
export function defaultTrainConfig(data: string): VQGANTrainConfig {
  const channels = isMnistLike(data) ? 1 : 3;
  const model: VQModelConfig = makeConfig({
    ddconfig: { resolution: 32, inChannels: channels, outCh: channels, ch: 32, chMult: [1, 2, 2], numResBlocks: 1, attnResolutions: [8], zChannels: 32, doubleZ: false, dropout: 0 },
    nEmbed: isMnistLike(data) ? 256 : 512,
    embedDim: 32,
  });
  return {
    model,
    loss: { ...DEFAULT_LOSS, discStart: 3000, discNumLayers: 3, discNdf: 32 },
    lr: 3e-4, batchSize: 32, steps: 6000, seed: 0,
    logEvery: 10, sampleEvery: 500, valEvery: 500, checkpointEvery: 250, valImages: 512,
    data: { name: data, resolution: 32, channels },
  };
}

/** Deep merge of plain objects (arrays and values replace). */
function merge<T>(base: T, over: unknown): T {
  if (over === null || typeof over !== 'object' || Array.isArray(over)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) out[k] = k in out && v !== null && typeof v === 'object' && !Array.isArray(v) ? merge(out[k], v) : v;
  return out as T;
}

/** Defaults (or the config a run was started with), then --config, then flags. */
function trainConfig(v: Values, data: string, base: VQGANTrainConfig): VQGANTrainConfig {
  let c = base;
  if (v.config) c = merge(c, readJsonFile(z.record(z.string(), z.unknown()), v.config, 'VQGAN config'));
  const set = <K extends keyof VQGANTrainConfig>(k: K, x: VQGANTrainConfig[K] | undefined) => { if (x !== undefined) c[k] = x; };
  set('steps', integer(v.steps, 'steps'));
  set('batchSize', integer(v['batch-size'], 'batch-size', 1, LIMITS.batchSize));
  set('lr', positive(v.lr, 'lr'));
  set('seed', seed(v.seed));
  const discStart = integer(v['disc-start'], 'disc-start');
  if (discStart !== undefined) c.loss = { ...c.loss, discStart };
  if (v.autocast) c.autocast = true;
  if (v['perceptual-weights']) c.loss = { ...c.loss, perceptualWeights: v['perceptual-weights'], perceptualWeight: number(v['perceptual-weight'], 'perceptual-weight') ?? 1 };
  c = parseWith(VQGANTrainConfigSchema, c, `VQGAN training config${v.config ? ` (defaults, ${v.config} and flags)` : ''}`);
  c.model = makeConfig(c.model);
  c.data = { name: data, resolution: c.model.ddconfig.resolution, channels: c.model.ddconfig.inChannels };
  return c;
}

function open(data: string, split: string | undefined, resolution: number, channels: number): ImageDataset {
  if (channels !== 1 && channels !== 3) throw new UsageError(`models with ${channels} input channels cannot read image datasets`);
  if (split !== undefined && !['train', 'test', 'all'].includes(split)) throw new UsageError(`--split must be train, test or all, got '${split}'`);
  return openDataset(data, {
    split: (split ?? 'train') as 'train' | 'test' | 'all', resolution, channels,
    onWarn: (m) => process.stderr.write(`warning: ${m}\n`),
  });
}

async function train(v: Values): Promise<number> {
  const data = v.data ?? 'mnist';
  const outDir = v.out ?? join('runs', `vqgan-${basename(data)}`);
  const checkpoint = join(outDir, CHECKPOINT);
  const resuming = !v.fresh && existsSync(checkpoint);
  const saved = resuming ? readSafetensorsHeader(checkpoint).metadata.train : undefined;
  const c = trainConfig(v, data, saved ? (JSON.parse(saved) as VQGANTrainConfig) : defaultTrainConfig(data));
  if (v['print-config']) {
    process.stdout.write(JSON.stringify(c, null, 2) + '\n');
    return 0;
  }
  const { resolution, inChannels } = c.model.ddconfig;
  let trainSet = open(data, 'train', resolution, inChannels);
  const limit = integer(v.limit, 'limit', 1);
  if (limit !== undefined) trainSet = subset(trainSet, Array.from({ length: Math.min(limit, trainSet.size) }, (_, i) => i));
  const val = open(data, 'test', resolution, inChannels);
  const dist = dataParallelFromEnv(); // one rank of a data-parallel run, under torchrun's environment
  const main = dist?.isMain ?? true;
  const trainer = new VQGANTrainer(c, { outDir, train: trainSet, val, dist });
  if (main) writeAtomic(join(outDir, 'config.json'), JSON.stringify(c, null, 2) + '\n');
  if (resuming) trainer.resume();
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await trainer.train({ signal: stop.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (!stop.signal.aborted) dist?.group.barrier(); // every rank returns once rank 0 has saved
  trainer.dispose();
  dist?.group.destroy();
  if (!main) return 0;
  if (stop.signal.aborted) {
    trainer.saveCheckpoint();
    process.stderr.write(`\ninterrupted at step ${trainer.step}; checkpoint saved to ${trainer.checkpointPath}\n`);
    return 130;
  }
  process.stderr.write(`done: ${join(outDir, FINAL_MODEL)}\n`);
  return 0;
}

function evalCommand(v: Values): number {
  const model = loadVQModel(need(v.model, 'model'));
  const dd = model.config.ddconfig;
  const ds = open(v.data ?? 'mnist', v.split ?? 'test', dd.resolution, dd.inChannels);
  const labelMaps = ds.name.endsWith(':segmentation') ? SEGMENT_LABELS.length : undefined;
  const r = evaluate(model, ds, { batchSize: batchSizeFlag(v), maxImages: integer(v['max-images'], 'max-images', 1), labelMaps });
  const { counts: _counts, ...summary } = r;
  const out = { ...summary, dataset: ds.name, nEmbed: model.config.nEmbed, tokens: model.numTokens };
  const labels = r.meanIoU === undefined ? '' : `, label accuracy ${(100 * r.labelAccuracy!).toFixed(2)}%, mean IoU ${r.meanIoU.toFixed(4)}`;
  process.stdout.write(v.json ? JSON.stringify(out) + '\n' :
    `${ds.name}: ${r.images} images, PSNR ${r.psnr.toFixed(2)} dB, L1 ${r.l1.toFixed(4)}, codes used ${r.usedCodes}/${model.config.nEmbed} (${(100 * r.usage).toFixed(1)}%), perplexity ${r.perplexity.toFixed(1)}${labels}\n`);
  return 0;
}

function parseUnknown(s: string | undefined): UnknownIndex | undefined {
  if (s === undefined || s === 'random' || s === 'extra') return s;
  const n = integer(s, 'unknown-index');
  if (n === undefined || n < 0) throw new UsageError(`--unknown-index must be random, extra or a non-negative integer`);
  return n;
}

const batchSizeFlag = (v: Values) => integer(v['batch-size'], 'batch-size', 1, LIMITS.batchSize);

/** The one output of a command, checked before the work: never one of `inputs`, replaced only with --force. */
function planOutput(v: Values, out: string, format: 'png' | 'safetensors', inputs: Record<string, string>): OutputPlan {
  const plan = new OutputPlan({ force: v.force });
  for (const [role, path] of Object.entries(inputs)) plan.protect(role, path);
  plan.add(out, format);
  return plan;
}

function shrink(v: Values): number {
  const path = need(v.model, 'model');
  const out = v.out ?? join(dirname(path), `${basename(path, '.safetensors')}-shrunk.safetensors`);
  planOutput(v, out, 'safetensors', { 'model (--model)': path });
  const model = loadVQModel(path);
  const dd = model.config.ddconfig;
  const ds = open(v.data ?? 'mnist', v.split ?? 'test', dd.resolution, dd.inChannels);
  const { model: shrunk, used, evaluation } = shrinkOn(model, ds, {
    batchSize: batchSizeFlag(v), maxImages: integer(v['max-images'], 'max-images', 1), unknownIndex: parseUnknown(v['unknown-index']) ?? 'random',
  });
  saveVQModel(out, shrunk, {
    metadata: { shrink: JSON.stringify({ dataset: ds.name, images: evaluation.images, kept: used.length, of: model.config.nEmbed }) },
  });
  process.stderr.write(`${ds.name}: ${evaluation.images} held-out images use ${used.length} of ${model.config.nEmbed} codes ` +
    `(perplexity ${evaluation.perplexity.toFixed(1)}); the shrunk model has ${shrunk.numTokens} token ids → ${out}\n`);
  return 0;
}

function encode(v: Values): number {
  const path = need(v.model, 'model');
  const model = loadVQModel(path);
  const dd = model.config.ddconfig;
  const data = v.data ?? 'mnist';
  const split = v.split ?? 'train';
  const out = v.out ?? join(dirname(path), `tokens-${basename(data)}-${split}.safetensors`);
  planOutput(v, out, 'safetensors', { 'model (--model)': path });
  let ds = open(data, split, dd.resolution, dd.inChannels);
  const maxImages = integer(v['max-images'], 'max-images', 1);
  if (maxImages !== undefined && maxImages < ds.size) ds = subset(ds, Array.from({ length: maxImages }, (_, i) => i));
  const t0 = performance.now();
  const bar = new Progress('encoding');
  const r = tokenizeDataset(model, ds, out, { batchSize: batchSizeFlag(v), onProgress: (done, total) => bar.update(done, total) });
  bar.stop();
  process.stderr.write(`${r.count} images → ${model.latentSize}×${model.latentSize} grids of ${r.numTokens} token ids in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${out}\n`);
  return 0;
}

function decode(v: Values): number {
  const out = v.out ?? 'decoded.png';
  const plan = planOutput(v, out, 'png', { 'model (--model)': need(v.model, 'model'), 'token file (--tokens)': need(v.tokens, 'tokens') });
  const model = loadVQModel(v.model!);
  const file = readTokenFile(v.tokens!);
  if (file.K !== model.numTokens) throw new UsageError(`token file has ${file.K ?? 'an unknown number of'} ids but the model has ${model.numTokens}: use the model that wrote it`);
  const n = Math.min(integer(v.count, 'count', 1, LIMITS.count) ?? 64, file.tokens.size(0));
  const dd = model.config.ddconfig;
  const images = noGrad(() => tidy(() => model.decodeIndices(file.tokens.slice(0, 0, n)).toFloat32Array()));
  const grid = makeGrid(images, { channels: dd.outCh as 1 | 3, height: dd.resolution, width: dd.resolution });
  plan.write(out, encodePng(grid.rgba, grid.width, grid.height));
  process.stderr.write(`${n} token grids → ${out}\n`);
  return 0;
}

/** Runs `imagebart vqgan …` with the arguments after `vqgan`; resolves to the exit code. */
export async function vqganCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv, OPTIONS, true);
  } catch (e) {
    process.stderr.write(`imagebart vqgan: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  const [cmd, ...rest] = positionals;
  if (v.help || cmd === undefined || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd === undefined && !v.help ? 2 : 0;
  }
  if (rest.length) {
    process.stderr.write(`imagebart vqgan ${cmd}: unexpected argument '${rest[0]}'\n`);
    return 2;
  }
  try {
    switch (cmd) {
      case 'train': return await train(v);
      case 'eval': return evalCommand(v);
      case 'shrink': return shrink(v);
      case 'encode': return encode(v);
      case 'decode': return decode(v);
      default:
        process.stderr.write(`imagebart vqgan: unknown command '${cmd}'\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof OutputError || e instanceof SchemaError) {
      process.stderr.write(`imagebart vqgan ${cmd}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`imagebart vqgan ${cmd}: ${(e as Error).message}\n`);
    return 1;
  }
}
