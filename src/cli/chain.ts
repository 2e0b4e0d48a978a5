/**
 * `imagebart chain train|nll`: the reverse chain from the command line.
 *
 * train  trains one scale's model on a token file (`--scale t`), resuming from its checkpoint, or every
 *        scale at once (`--all`), each in its own process with the cores split between them, and then
 *        writes the chain manifest; one scale data-parallel over several processes and hosts on c10d
 *        (`--nproc-per-node N`, or under torchrun's environment);
 * nll    the chain's negative ELBO on token grids: bits per token per scale and in total.
 *
 * A chain directory (--out) holds scale<t>/checkpoint.safetensors per scale and chain.json, the manifest.
 */
import { Progresses } from './progress.js';
import type { ParseArgsConfig } from 'node:util';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, LIMITS, device, integer, number, positive, probability, seed, need, parseArgs } from './args.js';
import { OutputPlan, OutputError } from '../io/output.js';
import { SchemaError } from '../io/schema.js';
import { type Tensor, manualSeed, readSafetensorsHeader } from '../torch/index.js';
import { makeSchedule, type ScheduleSpec } from '../diffusion/index.js';
import { dataParallelFromEnv, launchRanks, DEFAULT_TIMEOUT_MS } from '../distributed/index.js';
import { SEGMENT_LABELS } from '../data/index.js';
import {
  ScaleTrainer, checkpointPath, exportChain, guideFrom, heldOutSplit, readTokenFile, chainManifest, writeManifest, loadChain, chainNll, readManifest, chainFiles,
  NONE, SEGMENTATION_VQGAN, conditionsOf, describeConditioning, textConditioning, withMaps, modelCard, type EvalRow,
  type ScaleTrainConfig, type ScaleModelConfig, type ValRecord, type ChainManifest, type ChainGuide, type Conditioning, type TokenSet,
} from '../chain/index.js';

const HELP = `imagebart chain <command> [options]

Commands:
  train   Train the reverse model of one scale (--scale t), or of every scale as parallel processes
          (--all), which then writes the chain manifest <out>/chain.json.
  nll     The chain's negative ELBO on a token file: bits per token per scale and in total.
  export  A slim release copy: each scale's EMA weights (optionally float16) and the VQGAN.
  card    A model card (README.md): architecture, training and evaluation results.

Run 'imagebart chain <command> --help' for its options.
`;

const DEFAULTS = { T: 3, schedule: 'geometric', width: 192, encDepth: 4, decDepth: 2, gptDepth: 6, steps: 4000, batchSize: 32, evalEvery: 250 };

const TRAIN_HELP = `imagebart chain train --tokens FILE --out DIR (--scale t | --all) [options]

Trains p(x_{t-1} | x_t) of scale t on a token file (from 'imagebart vqgan encode'): scales 1..T-1 are
encoder-decoder transformers, scale T a decoder-only GPT. A scale resumes from
DIR/scale<t>/checkpoint.safetensors when it is there, to --steps (a checkpoint of another model or
chain is refused). A checkpoint is written every --eval-every steps: an interrupted run loses at most
that many.

  --tokens FILE      training token file
  --out DIR          chain directory
  --scale t          train scale t, 1..T
  --all              train every scale, one process each, then write DIR/chain.json
  --jobs N           (--all) scales trained at the same time (default T); each process gets 1 ATen
                     thread and its share of the cores as BLAS threads (IMAGEBART_THREADS,
                     IMAGEBART_BLAS_THREADS)
  --vqgan FILE       the VQGAN that made the tokens, recorded in the manifest
  --remap FILE       its used-code list, when the VQGAN file does not hold it

Chain:
  --T N              number of scales (default ${DEFAULTS.T})
  --schedule S       ${DEFAULTS.schedule} (default) | alphacum:a0,…,aT | a constant β | a measured curve
                     (bernoulli_PSIM, ffhq_bernoulli_PSIM, …)
  --K N              codebook size (default: what the token file declares)
  --condition KIND   none | class | text | segmentation; each kind's flag below gives its parameters
                     (class: the number of classes, default the token file's class names; text: the
                     caption length, default 77; segmentation: the maps, required). The flags alone
                     also choose the kind
  --classes N        condition on the token file's labels 0..N-1
  --caption-length L condition on the token file's captions, CLIP-BPE tokenized to L tokens
  --segmentation-tokens FILE
                     condition on label maps: the token file of --tokens' label maps, grid for grid
                     (same count and order, same h×w; 'imagebart vqgan encode --data
                     mnist-segmentation' with the label-map VQ model), fused channel-wise into every
                     scale's input
  --segmentation-vqgan FILE
                     the label-map VQ model that made them (required with --segmentation-tokens;
                     recorded in the manifest: sampling tokenizes a user's map with it)
  --val-segmentation-tokens FILE   the label maps of --val
  --cond-dropout P   replace a condition by the null one (null class, empty caption, null map) with
                     probability P, so the chain also samples unconditionally and with classifier-free
                     guidance (e.g. 0.1)

Model (the defaults give 2-4M parameters per scale on 8×8 grids of ≤ 512 codes):
  --width N          model width (default ${DEFAULTS.width})
  --heads N          attention heads, 64 wide each (default width/64)
  --enc-depth N      encoder layers of scales 1..T-1 (default ${DEFAULTS.encDepth})
  --dec-depth N      decoder layers of scales 1..T-1 (default ${DEFAULTS.decDepth})
  --gpt-depth N      layers of the GPT of scale T (default ${DEFAULTS.gptDepth})
  --residual         ResidualScaled encoder-decoders: they learn a correction to log q(x_t | x_{t-1}),
                     so an untrained one already copies x_t where the noise is light (as the official
                     FFHQ and ImageNet T = 4 configs; small chains train markedly faster with it)

Training:
  --steps N          total steps per scale (default ${DEFAULTS.steps})
  --batch-size N     (default ${DEFAULTS.batchSize})
  --lr X             peak learning rate (default 3e-4), reached after --warmup N steps (default
                     steps/20), then cosine decay
  --eval-every N     validation NLL and checkpoint every N steps (default ${DEFAULTS.evalEvery})
  --log-every N      progress line every N steps (default 50)
  --val FILE         validation token file (default: --val-size grids held out of --tokens)
  --val-size N       validation grids (default 256)
  --alpha-mix X      weight of KL(posterior ‖ model) against cross-entropy (default 1; 0 at scale 1,
                     where the two coincide)
  --autocast         bf16 autocast of the forward pass
  --classifier FILE  (--all, needs --vqgan) every --quality-every steps (default 1000) score
                     --quality-count samples (default 256) of the chain as it stands with this feature
                     classifier ('imagebart eval classifier'); results in DIR/quality.jsonl
  --device D         cpu (default), cuda or cuda:N: where the model, optimiser state and batches live
  --seed N           held-out split, initialisation, noise (default 0)
  --accumulate N     micro-batches of --batch-size whose gradients add up to one step (default 1)

Data-parallel (one scale over several processes and hosts, on PyTorch's c10d with Gloo):
  --nproc-per-node N   start N ranks on this host (torchrun's environment: RANK, WORLD_SIZE,
                       LOCAL_RANK, MASTER_ADDR, MASTER_PORT); each trains on its own shard, with
                       --batch-size grids per rank, and the gradients are averaged. Rank 0 validates,
                       writes the checkpoint and logs; output lines are prefixed with the rank
  --nnodes M           hosts taking part (default 1), each running this command
  --node-rank R        this host's index, 0..M-1 (default 0); node 0 hosts the rendezvous
  --master-addr HOST   address of node 0, reachable from every node (default 127.0.0.1)
  --master-port P      its rendezvous port (default 29500)
  --dist-timeout S     seconds any rank waits for the others (rendezvous, each all-reduce, rank 0's
                       validation) before failing (default ${DEFAULT_TIMEOUT_MS / 1000})
  Started by torchrun instead, a process reads the same environment itself. When a rank fails, the
  others stop with its reason; running the same command again resumes from the checkpoint.

Examples:
  imagebart chain train --tokens tokens.safetensors --out chain --scale 2
  imagebart chain train --tokens tokens.safetensors --segmentation-tokens map-tokens.safetensors \
    --segmentation-vqgan seg-vqgan.safetensors --vqgan vqgan.safetensors --cond-dropout 0.1 --out seg-chain --all
  imagebart chain train --tokens tokens.safetensors --out chain --scale 2 --nproc-per-node 2
  # two hosts, two ranks each (run on both, with --node-rank 0 and 1):
  imagebart chain train --tokens tokens.safetensors --out /shared/chain --scale 2 \
    --nproc-per-node 2 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1 --master-port 29500
`;

const NLL_HELP = `imagebart chain nll --manifest FILE --tokens FILE [options]

The chain's negative ELBO in bits per token: a term per scale — the KL of the posterior
q(x_{t-1} | x_t, x_0) against the model, exact per token given one sample of the forward chain per
grid (-log p(x_0 | x_1) at scale 1) — plus the prior term KL(q(x_T | x_0) ‖ uniform), 0 when β_T = 1.
Token space only: the VQGAN's reconstruction term is not included.

  --manifest FILE    chain manifest (written by 'imagebart chain train --all')
  --tokens FILE      token grids to score
  --split test|val   test: every grid of --tokens (default); val: the grids training held out for
                     validation (--tokens defaults to the training file the checkpoints recorded)
  --segmentation-tokens FILE   the label maps of --tokens (segmentation chains; --split val: default the
                     training file's, as the checkpoints recorded)
  --limit N          score the first N grids only
  --weights ema|train  the EMA weights (default) or the training weights
  --batch-size N     (default 64)
  --seed N           forward-chain noise (default 0)
  --json             print the result as JSON
`;

const TRAIN_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  tokens: { type: 'string' },
  out: { type: 'string' },
  scale: { type: 'string' },
  all: { type: 'boolean' },
  jobs: { type: 'string' },
  vqgan: { type: 'string' },
  remap: { type: 'string' },
  T: { type: 'string' },
  schedule: { type: 'string' },
  K: { type: 'string' },
  classes: { type: 'string' },
  'caption-length': { type: 'string' },
  'cond-dropout': { type: 'string' },
  'segmentation-tokens': { type: 'string' },
  'segmentation-vqgan': { type: 'string' },
  'val-segmentation-tokens': { type: 'string' },
  width: { type: 'string' },
  heads: { type: 'string' },
  'enc-depth': { type: 'string' },
  'dec-depth': { type: 'string' },
  'gpt-depth': { type: 'string' },
  residual: { type: 'boolean' },
  steps: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  warmup: { type: 'string' },
  'eval-every': { type: 'string' },
  'log-every': { type: 'string' },
  val: { type: 'string' },
  'val-size': { type: 'string' },
  'alpha-mix': { type: 'string' },
  classifier: { type: 'string' },
  condition: { type: 'string' },
  'quality-every': { type: 'string' },
  'quality-count': { type: 'string' },
  autocast: { type: 'boolean' },
  device: { type: 'string' },
  seed: { type: 'string' },
  accumulate: { type: 'string' },
  'nproc-per-node': { type: 'string' },
  nnodes: { type: 'string' },
  'node-rank': { type: 'string' },
  'master-addr': { type: 'string' },
  'master-port': { type: 'string' },
  'dist-timeout': { type: 'string' },
} satisfies ParseArgsConfig['options'];

/** Options of the launcher itself, not passed on to the ranks it starts. */
const LAUNCH_OPTIONS = ['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port'];

const NLL_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  manifest: { type: 'string' },
  tokens: { type: 'string' },
  split: { type: 'string' },
  'segmentation-tokens': { type: 'string' },
  limit: { type: 'string' },
  weights: { type: 'string' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

type TrainValues = ReturnType<typeof parseArgs<typeof TRAIN_OPTIONS>>['values'];
type NllValues = ReturnType<typeof parseArgs<typeof NLL_OPTIONS>>['values'];

/** Counts and sizes: integers ≥ 1 unless said otherwise. */
const int = (v: string | undefined, name: string, min = 1): number | undefined => integer(v, name, min);

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
const scaleDir = (out: string, t: number): string => join(out, `scale${t}`);
const MANIFEST = 'chain.json';
/** The manifest of a chain still training (checkpoints of the latest validation), for quality checks. */
const TRAINING_MANIFEST = 'chain-training.json';

// ---------------------------------------------------------------------------------------------- train

/** A number for a constant β, else the spec as written; checked against T. */
function scheduleSpec(s: string, T: number): ScheduleSpec {
  const spec = s.trim() !== '' && Number.isFinite(Number(s)) ? Number(s) : s;
  try {
    makeSchedule(spec, T);
  } catch (e) {
    throw new UsageError(`--schedule: ${(e as Error).message}`);
  }
  return spec;
}

/** Scale t's architecture: an encoder-decoder below T, the GPT at T. */
function modelConfig(v: TrainValues, t: number, T: number): ScaleModelConfig {
  const dim = int(v.width, 'width') ?? DEFAULTS.width;
  const heads = int(v.heads, 'heads') ?? Math.max(1, Math.round(dim / 64));
  if (t === T) return { type: 'gpt', dim, heads, depth: int(v['gpt-depth'], 'gpt-depth') ?? DEFAULTS.gptDepth };
  return {
    type: v.residual ? 'residual-xtransformer' : 'xtransformer', dim, heads,
    encoderDepth: int(v['enc-depth'], 'enc-depth') ?? DEFAULTS.encDepth,
    decoderDepth: int(v['dec-depth'], 'dec-depth') ?? DEFAULTS.decDepth,
  };
}

/** The kinds `--condition` names, and the flag that gives each its parameters. */
const CONDITION_FLAGS = { class: 'classes', text: 'caption-length', segmentation: 'segmentation-tokens' } as const;

/**
 * The conditioning of --condition, --classes / --caption-length / --segmentation-tokens (nullable with --cond-dropout).
 * A text chain's vocabulary is read off the training file's captions, so every scale's process builds
 * the same one; a segmentation chain's K off its map token file, checked against its VQ model.
 */
async function conditioningFlags(v: TrainValues, file: TokenSet, out: string): Promise<Conditioning> {
  let classes = int(v.classes, 'classes', 1), length = int(v['caption-length'], 'caption-length', 2);
  const nullable = (probability(v['cond-dropout'], 'cond-dropout') ?? 0) > 0;
  const maps = v['segmentation-tokens'];
  if ([classes, length, maps].filter((x) => x !== undefined).length > 1) throw new UsageError('give one of --classes, --caption-length and --segmentation-tokens');
  const kind = v.condition;
  if (kind !== undefined) {
    if (kind !== 'none' && !(kind in CONDITION_FLAGS)) throw new UsageError(`--condition ${kind}: expected none, class, text or segmentation`);
    const given = (Object.entries(CONDITION_FLAGS) as [string, keyof TrainValues][]).find(([, flag]) => v[flag] !== undefined);
    if (given && given[0] !== kind) throw new UsageError(`--condition ${kind} does not go with --${given[1]} (that is --condition ${given[0]})`);
    // the parameters a kind's flag would give, from the token file where it can tell
    if (kind === 'class' && classes === undefined) {
      classes = file.classes?.length;
      if (classes === undefined) throw new UsageError(`--condition class: ${v.tokens} names no classes; give their number with --classes N`);
    }
    if (kind === 'text' && length === undefined) length = 77; // CLIP's context length
    if (kind === 'segmentation' && maps === undefined) throw new UsageError('--condition segmentation needs the label maps: --segmentation-tokens FILE (and --segmentation-vqgan FILE)');
  }
  for (const f of ['segmentation-vqgan', 'val-segmentation-tokens'] as const) if (v[f] !== undefined && maps === undefined) throw new UsageError(`--${f} goes with --segmentation-tokens`);
  if (maps !== undefined) return segmentationConditioning(v, file, maps, out, nullable);
  if (classes !== undefined) return { kind: 'class', classes, nullable };
  if (length !== undefined) {
    if (!file.captions) throw new UsageError(`${v.tokens} has no captions: a text-conditional chain needs a token file of a captioned dataset`);
    return textConditioning(file.captions, length, nullable);
  }
  if (nullable) throw new UsageError('--cond-dropout needs --classes, --caption-length or --segmentation-tokens');
  return NONE;
}

/** A segmentation conditioning: maps checked against --tokens (withMaps) and the label-map VQ model. */
async function segmentationConditioning(v: TrainValues, file: TokenSet, maps: string, out: string, nullable: boolean): Promise<Conditioning> {
  const vq = need(v['segmentation-vqgan'], 'segmentation-vqgan');
  for (const p of [maps, vq, v['val-segmentation-tokens']]) if (p !== undefined && !existsSync(p)) throw new UsageError(`${p} does not exist`);
  if (v['val-segmentation-tokens'] === undefined && v.val !== undefined) throw new UsageError('--val of a segmentation chain needs --val-segmentation-tokens (its label maps)');
  const mapFile = readTokenFile(maps);
  if (mapFile.K === undefined) throw new UsageError(`${maps} does not declare its codebook size K ('imagebart vqgan encode' writes it)`);
  const { loadVQModel } = await import('../vqgan/index.js');
  const model = loadVQModel(vq);
  if (model.numTokens !== mapFile.K) throw new UsageError(`--segmentation-vqgan ${vq} has ${model.numTokens} token ids, but ${maps} declares K = ${mapFile.K}`);
  const labels = [...SEGMENT_LABELS];
  if (model.config.ddconfig.inChannels !== labels.length) throw new UsageError(`--segmentation-vqgan ${vq} reads ${model.config.ddconfig.inChannels} channels, label maps have ${labels.length} (${labels.join(', ')})`);
  const c: Conditioning = { kind: 'segmentation', vqgan: relative(out, vq), K: mapFile.K, labels, nullable };
  try {
    withMaps(file, need(v.tokens, 'tokens'), mapFile, maps, c);
  } catch (e) {
    throw new UsageError(`--segmentation-tokens: ${(e as Error).message}`);
  }
  mapFile.tokens.dispose();
  return c;
}

/** Scale t's training config from the options; unset ones take the trainer's defaults. */
function scaleConfig(v: TrainValues, out: string, t: number, declaredK: number | undefined, conditioning: Conditioning): ScaleTrainConfig {
  const conditionDropout = probability(v['cond-dropout'], 'cond-dropout') ?? 0;
  const T = int(v.T, 'T') ?? DEFAULTS.T;
  const K = int(v.K, 'K', 2) ?? declaredK;
  if (K === undefined) throw new UsageError(`${v.tokens} does not declare its codebook size: pass --K`);
  return {
    t,
    chain: { K, T, schedule: scheduleSpec(v.schedule ?? DEFAULTS.schedule, T), conditioning },
    conditionDropout,
    segmentation: v['segmentation-tokens'] === undefined ? undefined : resolve(v['segmentation-tokens']),
    valSegmentation: v['val-segmentation-tokens'] === undefined ? undefined : resolve(v['val-segmentation-tokens']),
    model: modelConfig(v, t, T),
    train: resolve(need(v.tokens, 'tokens')),
    val: v.val === undefined ? undefined : resolve(v.val),
    valSize: int(v['val-size'], 'val-size'),
    out: scaleDir(out, t),
    steps: int(v.steps, 'steps') ?? DEFAULTS.steps,
    batchSize: integer(v['batch-size'], 'batch-size', 1, LIMITS.batchSize) ?? DEFAULTS.batchSize,
    lr: positive(v.lr, 'lr'),
    warmup: int(v.warmup, 'warmup', 0),
    evalEvery: int(v['eval-every'], 'eval-every') ?? DEFAULTS.evalEvery,
    logEvery: int(v['log-every'], 'log-every'),
    alphaMix: probability(v['alpha-mix'], 'alpha-mix'),
    autocast: v.autocast,
    seed: seed(v.seed),
    accumulate: int(v.accumulate, 'accumulate'),
    device: device(v.device),
  };
}

async function train(v: TrainValues): Promise<number> {
  const out = need(v.out, 'out');
  if (Boolean(v.all) === (v.scale !== undefined)) throw new UsageError('give either --scale t or --all');
  const T = int(v.T, 'T') ?? DEFAULTS.T;
  const scales = v.all ? range(T) : [need(int(v.scale, 'scale'), 'scale')];
  if (scales[0] > T) throw new UsageError(`--scale ${scales[0]} outside 1..${T}`);
  const tokens = need(v.tokens, 'tokens');
  if (!existsSync(tokens)) throw new UsageError(`token file ${tokens} does not exist`);
  const file = readTokenFile(tokens); // fails early and clearly on a corrupt or inconsistent file
  const [, h, w] = file.tokens.shape;
  const conditioning = await conditioningFlags(v, file, out);
  file.tokens.dispose();
  file.labels?.dispose();
  const configs = scales.map((t) => scaleConfig(v, out, t, file.K, conditioning));
  for (const p of ['val', 'vqgan', 'remap'] as const) if (v[p] !== undefined && !existsSync(v[p])) throw new UsageError(`--${p} ${v[p]} does not exist`);
  const timeoutMs = (number(v['dist-timeout'], 'dist-timeout') ?? DEFAULT_TIMEOUT_MS / 1000) * 1000;
  if (v['nproc-per-node'] !== undefined) {
    if (v.all) throw new UsageError('--nproc-per-node trains one scale: give --scale t, not --all');
    return launchScale(v);
  }
  if (!v.all) return trainScale(configs[0], timeoutMs);

  const manifest = chainManifest({
    vqgan: v.vqgan ? relative(out, v.vqgan) : null,
    remap: v.remap ? relative(out, v.remap) : null,
    K: configs[0].chain.K, T, schedule: configs[0].chain.schedule,
    tokenShape: [h, w],
    conditioning,
    scales: configs.map((c) => ({ t: c.t, checkpoint: relative(out, checkpointPath(c.out)) })),
  });
  const quality = v.classifier === undefined ? undefined : {
    classifier: v.classifier, every: int(v['quality-every'], 'quality-every', 1) ?? 1000, count: int(v['quality-count'], 'quality-count', 2) ?? 256,
    manifest: join(out, TRAINING_MANIFEST), log: join(out, 'quality.jsonl'),
    // a text chain's samples are conditioned on the held-out captions of the dataset its tokens came from
    data: conditioning.kind === 'text' ? file.dataset?.replace(/:(train|test|all)$/, '') : undefined,
  };
  if (quality) {
    if (!existsSync(quality.classifier)) throw new UsageError(`--classifier ${quality.classifier} does not exist`);
    if (!manifest.vqgan) throw new UsageError('--classifier needs --vqgan: samples are scored as images');
    mkdirSync(out, { recursive: true });
    writeManifest(quality.manifest, manifest);
  }
  const failed = await trainInParallel(v, scales, int(v.jobs, 'jobs') ?? T, quality);
  if (failed.length) {
    process.stderr.write(`scale${failed.length > 1 ? 's' : ''} ${failed.join(', ')} did not finish: no manifest written\n`);
    return 1;
  }
  const path = join(out, MANIFEST);
  writeManifest(path, manifest);
  const nll = configs.map((c) => lastValidation(checkpointPath(c.out)));
  process.stderr.write(`validation NLL (EMA weights), bits/token: ${nll.map((r, i) => `scale ${i + 1} ${r?.nllEma.toFixed(4) ?? '-'}`).join(', ')}` +
    `; sum ${nll.reduce((a, r) => a + (r?.nllEma ?? NaN), 0).toFixed(4)}\nwrote ${path}\n`);
  return 0;
}

/** Starts this node's ranks of a data-parallel run of one scale (`--nproc-per-node`). */
async function launchScale(v: TrainValues): Promise<number> {
  const port = int(v['master-port'], 'master-port');
  if (port !== undefined && port > 65535) throw new UsageError(`--master-port ${port} is not a port`);
  const nodeRank = int(v['node-rank'], 'node-rank', 0);
  const r = await launchRanks({
    command: process.execPath, args: [SELF, 'train', ...optionArgs(v, LAUNCH_OPTIONS)],
    nprocPerNode: need(int(v['nproc-per-node'], 'nproc-per-node'), 'nproc-per-node'), nnodes: int(v.nnodes, 'nnodes'),
    nodeRank, masterAddr: v['master-addr'], masterPort: port,
  });
  return r.code;
}

/**
 * Trains one scale in this process: alone, or as one rank of a data-parallel run when torchrun's
 * environment is set (by `--nproc-per-node` or by torchrun itself).
 */
async function trainScale(config: ScaleTrainConfig, timeoutMs: number): Promise<number> {
  const dist = dataParallelFromEnv({ timeoutMs });
  const trainer = new ScaleTrainer(config, { dist });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  let r;
  try {
    r = await trainer.run({ signal: stop.signal });
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
  if (r.stopped) {
    trainer.dispose();
    dist?.group.destroy();
    if (!dist || dist.isMain) process.stderr.write(`scale ${config.t}: stopped at step ${r.step}; checkpoint saved to ${r.checkpoint} (the same command resumes)\n`);
    return 130;
  }
  dist?.group.barrier(); // every rank returns once rank 0 has written the last checkpoint
  trainer.dispose();
  dist?.group.destroy();
  if (dist && !dist.isMain) return 0;
  const params = trainer.denoiser.numParameters();
  process.stderr.write(`scale ${config.t}/${config.chain.T}: ${config.model.type}, ${(params / 1e6).toFixed(2)}M parameters, K ${config.chain.K}, ` +
    `${trainer.denoiser.shape.tokens} tokens per grid, schedule ${config.chain.schedule}, ${config.steps} steps` +
    (dist ? `, data-parallel over ${dist.worldSize} ranks (${dist.group.backend}, master ${dist.group.master})` : '') + '\n');
  const last = r.history.at(-1);
  const tokensPerSecond = r.stepsPerSecond * config.batchSize! * (config.accumulate ?? 1) * (dist?.worldSize ?? 1) * trainer.denoiser.shape.tokens;
  process.stderr.write(`scale ${config.t}: done at step ${r.step}` +
    (last ? `, val NLL ${last.nll.toFixed(4)} bits/token (EMA ${last.nllEma.toFixed(4)})` : '') +
    `, ${r.stepsPerSecond.toFixed(2)} steps/s (${Math.round(tokensPerSecond)} tokens/s) → ${r.checkpoint}\n`);
  return 0;
}

/** This module run as a script (`node chain.js train …`): how --all starts one process per scale. */
const SELF = fileURLToPath(import.meta.url);
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** Cores per concurrent job, as evenly as they divide (at least 1 each). */
const splitCores = (cores: number, jobs: number): number[] =>
  Array.from({ length: jobs }, (_, i) => Math.max(1, Math.floor(cores / jobs) + (i < cores % jobs ? 1 : 0)));

/** The options as command-line arguments, but for those named in `skip`. */
function optionArgs(v: TrainValues, skip: readonly string[]): string[] {
  const args: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    if (skip.includes(k) || x === undefined || x === false) continue;
    args.push(`--${k}`, ...(x === true ? [] : [x]));
  }
  return args;
}

/** The command line of one scale's process under `train --all`: the same options, with --scale t in place of --all and --jobs. */
const scaleArgs = (v: TrainValues, t: number): string[] => ['train', '--scale', String(t), ...optionArgs(v, ['all', 'jobs', 'classifier', 'quality-every', 'quality-count'])];

/** A periodic sample-quality check while the scales train (`--classifier`). */
interface QualityCheck { classifier: string; every: number; count: number; manifest: string; log: string; data?: string }

/**
 * Every `every` steps, once every scale has saved a checkpoint at least that far, scores `count`
 * samples of the chain as it stands (`imagebart eval samples` in a child process) and appends the
 * result, with the steps, to `log`: so a run is judged by a sample-quality curve beside its NLL curves.
 */
function qualityWatcher(q: QualityCheck, scales: number[]): (t: number, line: string) => void {
  const at = new Map<number, number>(scales.map((t) => [t, 0]));
  let next = q.every, running = false;
  return (t, line) => {
    const m = /step (\d+) val nll/.exec(line);
    if (!m) return;
    at.set(t, Number(m[1]));
    const step = Math.min(...at.values());
    if (running || step < next) return;
    next = (Math.floor(step / q.every) + 1) * q.every;
    running = true;
    const data = q.data ? ['--data', q.data] : [];
    const child = spawn(process.execPath, [MAIN, 'eval', 'samples', '--chain', q.manifest, '--classifier', q.classifier, ...data, '--count', String(q.count), '--seed', '0', '--json'], {
      env: { ...process.env, IMAGEBART_THREADS: '1', IMAGEBART_BLAS_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('close', (code) => {
      running = false;
      if (code !== 0) {
        const why = err.trim().split('\n').filter((l) => l.startsWith('imagebart')).pop() ?? `exit ${code}`;
        return process.stderr.write(`[quality] step ${step}: the sample check failed: ${why}\n`);
      }
      const r = JSON.parse(out) as { frechet: number; confident: number; accuracy?: number };
      appendFileSync(q.log, `${JSON.stringify({ step, steps: Object.fromEntries(at), ...r })}\n`);
      process.stderr.write(`[quality] step ${step}: Fréchet ${r.frechet.toFixed(2)}, confident ${(100 * r.confident).toFixed(1)}%` +
        `${r.accuracy !== undefined ? `, class accuracy ${(100 * r.accuracy).toFixed(1)}%` : ''} (N ${q.count}) → ${q.log}\n`);
    });
  };
}

/** A scale trainer's step line (chain/trainer.ts): step, steps, loss. */
const STEP_LINE = /^scale \d+ step (\d+)\/(\d+) loss ([\d.]+)/;

/** Trains `scales` in child processes, `jobs` at a time; returns the scales that did not finish. */
async function trainInParallel(v: TrainValues, scales: number[], jobs: number, quality?: QualityCheck): Promise<number[]> {
  const watch = quality && qualityWatcher(quality, scales);
  const queue = [...scales];
  const threads = splitCores(availableParallelism(), Math.min(jobs, scales.length));
  process.stderr.write(`training scales ${scales.join(', ')} in ${threads.length} processes at a time, BLAS threads ${threads.join(' + ')}\n`);
  const children = new Set<ReturnType<typeof spawn>>();
  let stopped = false;
  const stop = (signal: NodeJS.Signals) => {
    stopped = true;
    for (const c of children) c.kill(signal);
  };
  process.on('SIGINT', stop).on('SIGTERM', stop);
  const failed: number[] = [];
  // on a terminal, one bar per scale (fed by the children's step lines) with their other lines above
  const bars = process.stderr.isTTY ? new Progresses() : undefined;
  const show = (t: number, line: string) => {
    const step = STEP_LINE.exec(line);
    if (bars && step) bars.get(`scale ${t}`).update(Number(step[1]), Number(step[2]), `loss ${step[3]}`);
    else if (bars) bars.log(`[scale ${t}] ${line}`);
    else process.stderr.write(`[scale ${t}] ${line}\n`);
  };
  try {
    await Promise.all(threads.map(async (n) => {
      for (let t = queue.shift(); t !== undefined && !stopped; t = queue.shift()) {
        const child = spawn(process.execPath, [SELF, ...scaleArgs(v, t)], {
          env: { ...process.env, IMAGEBART_THREADS: '1', IMAGEBART_BLAS_THREADS: String(n) },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.add(child);
        for (const stream of [child.stdout, child.stderr]) {
          createInterface({ input: stream }).on('line', (line) => {
            show(t, line);
            watch?.(t, line);
          });
        }
        const ok = await new Promise<boolean>((done) => child.on('error', () => done(false)).on('close', (code) => done(code === 0)));
        children.delete(child);
        if (!ok) failed.push(t);
      }
    }));
  } finally {
    bars?.stop();
    process.off('SIGINT', stop).off('SIGTERM', stop);
  }
  return [...failed, ...queue].sort((a, b) => a - b);
}

/** The last validation a scale checkpoint recorded. */
function lastValidation(checkpoint: string): ValRecord | undefined {
  return (JSON.parse(readSafetensorsHeader(checkpoint).metadata.history ?? '[]') as ValRecord[]).at(-1);
}

// ------------------------------------------------------------------------------------------------ nll

/**
 * The training config shared by every scale of a chain, as its checkpoints recorded it: what
 * `--split val` needs to find the grids the trainers validated on.
 */
function validationConfig(m: ChainManifest, manifestPath: string, at: (p: string) => string): ScaleTrainConfig {
  const recs = m.scales.map((s) => JSON.parse(readSafetensorsHeader(at(s.checkpoint)).metadata.train_config ?? 'null') as ScaleTrainConfig | null);
  const keys = new Set(recs.map((c) => JSON.stringify(c && [c.train, c.val, c.valSize, c.seed])));
  if (keys.size !== 1 || !recs[0]) {
    throw new Error(`chain manifest ${manifestPath}: its scales were not validated on the same grids (${[...keys].join(' vs ')}); use --split test`);
  }
  return recs[0];
}

/** Token grids [M, h, w] (labels [M] for a class-conditional chain) to score, checked against the chain. */
function gridsToScore(
  v: NllValues, split: 'test' | 'val', manifestPath: string, m: ChainManifest, at: (p: string) => string,
): { source: string; tokens: Tensor; cond?: Tensor } {
  const c = split === 'val' ? validationConfig(m, manifestPath, at) : undefined;
  const source = need(v.tokens ?? c?.val ?? c?.train, 'tokens');
  if (!existsSync(source)) throw new UsageError(`token file ${source} does not exist`);
  let file = readTokenFile(source);
  if (file.K !== undefined && file.K !== m.K) throw new Error(`${source} holds tokens of a K = ${file.K} codebook, the chain has K = ${m.K}`);
  if (m.conditioning.kind === 'segmentation') {
    const maps = v['segmentation-tokens'] ?? (c ? (c.val ? c.valSegmentation : c.segmentation) : undefined);
    if (maps === undefined) throw new UsageError(`a segmentation chain scores grids with their label maps: pass --segmentation-tokens`);
    if (!existsSync(maps)) throw new UsageError(`token file ${maps} does not exist`);
    file = withMaps(file, source, readTokenFile(maps), maps, m.conditioning);
  } else if (v['segmentation-tokens'] !== undefined) {
    throw new UsageError(`--segmentation-tokens: this chain is conditioned on ${describeConditioning(m.conditioning)}`);
  }
  // the trainers validated on the first valSize grids of their val file, else of a seeded permutation of their training file
  const rows = c && !c.val ? heldOutSplit(file.tokens.size(0), c.valSize!, c.seed!).val : undefined;
  const n = Math.min(c?.valSize ?? Infinity, int(v.limit, 'limit') ?? Infinity, file.tokens.size(0));
  const pick = (x: Tensor) => (rows ? x.index([rows]) : x).narrow(0, 0, n);
  const tokens = pick(file.tokens);
  const [h, w] = m.tokenShape;
  if (tokens.size(1) !== h || tokens.size(2) !== w) throw new Error(`${source} holds ${tokens.size(1)}×${tokens.size(2)} grids, the chain models ${h}×${w}`);
  if (tokens.numel > 0 && tokens.max().item() >= m.K) throw new Error(`${source}: token ids reach ${tokens.max().item()} but the chain has K = ${m.K}`);
  const cond = conditionsOf(file, m.conditioning, source, rows ? { idx: rows.narrow(0, 0, n) } : { count: n });
  return { source, tokens, ...(cond ? { cond } : {}) };
}

function nll(v: NllValues): number {
  const manifestPath = need(v.manifest, 'manifest');
  const split = v.split ?? 'test';
  if (split !== 'test' && split !== 'val') throw new UsageError(`--split must be test or val, got '${split}'`);
  const weights = v.weights ?? 'ema';
  if (weights !== 'ema' && weights !== 'train') throw new UsageError(`--weights must be ema or train, got '${weights}'`);
  const batchSize = integer(v['batch-size'], 'batch-size', 1, LIMITS.batchSize) ?? 64;
  const noiseSeed = seed(v.seed) ?? 0;
  if (!existsSync(manifestPath)) throw new UsageError(`chain manifest ${manifestPath} does not exist`);
  const { manifest: m, schedule, denoisers, resolve: at } = loadChain(manifestPath, { ema: weights === 'ema' });
  const { source, tokens, cond } = gridsToScore(v, split, manifestPath, m, at);
  const started = performance.now();
  manualSeed(noiseSeed);
  const r = chainNll(denoisers, tokens, schedule, { cond, batchSize });
  const seconds = (performance.now() - started) / 1000;
  const [h, w] = m.tokenShape;
  if (v.json) {
    const out = { manifest: manifestPath, tokens: source, split, grids: tokens.size(0), weights, ...r, bitsPerGrid: r.total * h * w };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  }
  const row = (name: string, bits: number) => `${name.padEnd(8)}${bits.toFixed(4).padStart(10)}\n`;
  process.stdout.write(`${tokens.size(0)} grids of ${h}×${w} from ${source} (${split}), ${weights} weights, K ${m.K}, T ${m.T}, schedule ${m.schedule}\n` +
    `${'scale'.padEnd(8)}${'bits/token'.padStart(10)}\n` +
    r.perScale.map((b, i) => row(String(i + 1), b)).join('') +
    row('prior', r.prior) +
    row('total', r.total) +
    `= ${(r.total * h * w).toFixed(1)} bits per grid (uniform: ${Math.log2(m.K).toFixed(4)} bits/token); ${seconds.toFixed(1)} s\n`);
  return 0;
}

// ------------------------------------------------------------------------------------------ export

const EXPORT_HELP = `imagebart chain export --manifest FILE --out DIR [--half] [--guide FILE --guidance S] [--force]

Writes DIR/chain.json, DIR/scale<t>.safetensors (each scale's EMA weights and buffers, no training
weights or optimiser state: about a quarter of a training checkpoint) and DIR/vqgan.safetensors (the
VQGAN's weights and used-code list; a segmentation chain's label-map model as seg-vqgan.safetensors). The copy samples and edits like the original; it cannot resume
training.

  --manifest FILE   the trained chain's manifest
  --out DIR         where to write the release copy
  --half            store the weights (transformers and VQ models) as float16 (half the size again)
  --guide FILE      a weaker chain of the same process (same tokens, T, schedule and conditioning; fewer
                    parameters, shorter training): exported as guide-scale<t>.safetensors, it guides the
                    chain by default (autoguidance: logits l_w + S·(l − l_w)); a chain's own guide is kept
  --guidance S      the default guidance scale of --guide (e.g. 2)
  --force           replace the files of an earlier export in DIR

Example:
  imagebart chain export --manifest runs/mnist/chain.json --guide runs/mnist-guide/chain.json --guidance 2 --out models/mnist --half

DIR's files are checked before anything is written: none may be a file of the source chain, and
existing ones are replaced only with --force.
`;

const EXPORT_OPTIONS = {
  manifest: { type: 'string' },
  guide: { type: 'string' },
  guidance: { type: 'string' },
  out: { type: 'string' },
  half: { type: 'boolean' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function exportCommand(v: { manifest?: string; out?: string; half?: boolean; force?: boolean; guide?: string; guidance?: string }): Promise<number> {
  const manifest = need(v.manifest, "manifest");
  const out = need(v.out, "out");
  if (!existsSync(manifest)) throw new UsageError(`chain manifest ${manifest} does not exist`);
  if ((v.guide === undefined) !== (v.guidance === undefined)) throw new UsageError('--guide and --guidance go together: the weaker chain and its default guidance scale');
  if (v.guide !== undefined && !existsSync(v.guide)) throw new UsageError(`guide manifest ${v.guide} does not exist`);
  const m = readManifest(manifest);
  let guide: ChainGuide | undefined;
  if (v.guide !== undefined) {
    const scale = number(v.guidance, 'guidance')!;
    try {
      guide = guideFrom(m, v.guide, scale); // checked before anything is written
    } catch (e) {
      throw new UsageError(`--guide: ${(e as Error).message}`);
    }
  }
  const plan = new OutputPlan({ force: v.force }).protect('source chain file', ...chainFiles(manifest, m), ...(v.guide ? chainFiles(v.guide, readManifest(v.guide)) : []));
  plan.add(join(out, MANIFEST), 'json');
  for (const s of m.scales) plan.add(join(out, `scale${s.t}.safetensors`), 'safetensors');
  if (guide || m.guide) for (const s of m.scales) plan.add(join(out, `guide-scale${s.t}.safetensors`), 'safetensors');
  if (m.vqgan) plan.add(join(out, 'vqgan.safetensors'), 'safetensors');
  if (m.conditioning.kind === 'segmentation') plan.add(join(out, SEGMENTATION_VQGAN), 'safetensors');
  const { loadVQModel, saveVQModel } = await import('../vqgan/index.js');
  const path = exportChain(manifest, out, {
    half: v.half, guide,
    copyVQGAN: (src, dst) => saveVQModel(dst, loadVQModel(src), { half: v.half }),
  });
  process.stdout.write(`wrote ${path}\n`);
  return 0;
}

// ------------------------------------------------------------------------------------------ dispatch

const CARD_HELP = `imagebart chain card --manifest FILE --title TEXT [options]

Writes a model card (README.md beside the manifest, or --out): the chain, each scale's architecture,
parameters, steps, wall time and validation NLL as its checkpoint recorded them, and the evaluation
results of --metrics (JSON lines from 'imagebart eval … --log').

  --manifest FILE     the chain's manifest
  --title TEXT        the card's heading
  --description TEXT  a paragraph under it (data, purpose)
  --metrics FILE      evaluation records to tabulate (JSON lines)
  --picture FILE      a picture to show, relative to the card (repeatable)
  --out FILE          default: README.md beside the manifest
`;

const CARD_OPTIONS = {
  manifest: { type: 'string' },
  title: { type: 'string' },
  description: { type: 'string' },
  metrics: { type: 'string' },
  picture: { type: 'string', multiple: true },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function cardCommand(v: { manifest?: string; title?: string; description?: string; metrics?: string; picture?: string[]; out?: string }): number {
  const manifestPath = need(v.manifest, 'manifest');
  const m = readManifest(manifestPath);
  const metrics = v.metrics === undefined ? undefined
    : readFileSync(v.metrics, 'utf-8').split('\n').filter((l) => l.trim()).map((l, i) => {
      try {
        return JSON.parse(l) as EvalRow;
      } catch {
        throw new UsageError(`${v.metrics}: line ${i + 1} is not JSON`);
      }
    });
  const out = v.out ?? join(dirname(manifestPath), 'README.md');
  const at = (p: string) => resolve(dirname(manifestPath), p);
  const vqganParameters = m.vqgan ? [...readSafetensorsHeader(at(m.vqgan)).tensors.values()].reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0) : undefined;
  const tmp = `${out}.tmp-${process.pid}`;
  writeFileSync(tmp, modelCard(m, at, { title: need(v.title, 'title'), description: v.description, metrics, pictures: v.picture, vqganParameters }));
  renameSync(tmp, out);
  process.stderr.write(`wrote ${out}\n`);
  return 0;
}

const printHelp = (text: string): number => (process.stdout.write(text), 0);

/** Runs `imagebart chain …` with the arguments after `chain`; resolves to the exit code. */
export async function chainCommand(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(HELP);
    return name === undefined ? 2 : 0;
  }
  try {
    switch (name) {
      case 'train': {
        const { values } = parseArgs(args, TRAIN_OPTIONS);
        return values.help ? printHelp(TRAIN_HELP) : await train(values);
      }
      case 'nll': {
        const { values } = parseArgs(args, NLL_OPTIONS);
        return values.help ? printHelp(NLL_HELP) : nll(values);
      }
      case 'export': {
        const { values } = parseArgs(args, EXPORT_OPTIONS);
        return values.help ? printHelp(EXPORT_HELP) : await exportCommand(values);
      }
      case 'card': {
        const { values } = parseArgs(args, CARD_OPTIONS);
        return values.help ? printHelp(CARD_HELP) : cardCommand(values);
      }
      default:
        process.stderr.write(`imagebart chain: unknown command '${name}'\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    const usage = e instanceof UsageError || e instanceof OutputError || e instanceof SchemaError || String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`imagebart chain ${name}: ${(e as Error).message}\n${usage ? `Run 'imagebart chain ${name} --help' for its options.\n` : ''}`);
    return usage ? 2 : 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === SELF) chainCommand(process.argv.slice(2)).then((code) => process.exit(code));
