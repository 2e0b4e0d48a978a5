/**
 * Trains the reverse model of one scale t, independently of the other scales (they can run in
 * parallel processes):
 *
 * - data: a token file (`readTokenFile`); every step draws a batch of x_0 and runs the forward chain
 *   to get (x_{t-1}, x_t) on the fly, so each epoch sees fresh noise; a segmentation chain also reads
 *   the token file of its label maps, grid for grid (`segmentation`, `valSegmentation`);
 * - objective: α_mix·KL(posterior ‖ p_θ) + (1-α_mix)·CE (α_mix 0 at t = 1, else 1 by default);
 * - AdamW(0.9, 0.95) with the official weight-decay groups of the model kind, linear warm-up then
 *   cosine decay, gradient-norm clipping, an EMA of the weights (used for sampling), optional bf16
 *   autocast of the forward pass;
 * - every `evalEvery` steps: validation NLL (this scale's ELBO term, bits per token) of the training
 *   and EMA weights on a fixed held-out set of (x_0, x_{t-1}, x_t), then an atomic checkpoint;
 * - `run()` resumes from the run directory's checkpoint when there is one;
 * - data-parallel with `dist` (src/distributed): each rank trains on its own shard of every batch with
 *   its own noise, gradients averaged over the ranks by c10d's Reducer during the backward pass of the
 *   step's last micro-batch (the others add up locally, DDP's no_sync); rank 0 validates, saves and
 *   logs, every rank resumes from the same checkpoint. `accumulate` micro-batches add up to one step.
 *   dispose() frees the Reducer.
 * Batches are a seeded shuffle per epoch (ShardSampler). The held-out split and the initialisation come
 * from libtorch's global generator seeded with `seed`; the noise from it seeded per step and rank.
 */
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, autocast, manualSeed, noGrad, onDevice, rand, randperm, tensor, tidy, where } from '../torch/index.js';
import { AdamW, EMA, clipGradNorm, warmupCosine } from '../optim/index.js';
import { makeSchedule, forwardChain, posterior, denoisingLoss, type Schedule, type ScheduleSpec } from '../diffusion/index.js';
import { createDenoiser, type ChainShape, type Denoiser, type ScaleModelConfig } from './denoiser.js';
import { readTokenFile, type TokenSet } from './tokens.js';
import { NONE, conditionsOf, nullCondition, shapeOfConditioning, withMaps, type Conditioning } from './conditioning.js';
import { elboTerm } from './nll.js';
import { saveScaleCheckpoint, readScaleCheckpoint, disposeCheckpoint, type ScaleSpec } from './checkpoint.js';
import { ShardSampler, rankSeed, type DataParallel, type GradientSync } from '../distributed/index.js';

export interface ScaleTrainConfig {
  /** The scale to train, 1..T. */
  t: number;
  chain: {
    /** Codes in the (shrunk) codebook. */
    K: number;
    T: number;
    schedule: ScheduleSpec;
    /** What the chain is conditioned on (default none): class labels or captions of the token file, or label maps. */
    conditioning?: Conditioning;
  };
  /** Segmentation chains: the token file of `train`'s label maps (same grids, same order), and of `val`'s. */
  segmentation?: string;
  valSegmentation?: string;
  /**
   * Probability of replacing an example's condition by the null condition (null class, empty caption)
   * during training, so that one model learns p(x | c) and p(x) and can sample with classifier-free
   * guidance; needs a `nullable` conditioning. Default 0.
   */
  conditionDropout?: number;
  model: ScaleModelConfig;
  /** Token file to train on. */
  train: string;
  /** Validation token file; by default `valSize` grids are held out of `train`. */
  val?: string;
  /** Validation grids (default 256). */
  valSize?: number;
  /** Run directory: holds checkpoint.safetensors. */
  out: string;
  steps: number;
  /** Grids per micro-batch and rank: a step sees batchSize × accumulate × ranks grids. */
  batchSize?: number;
  /** Micro-batches whose gradients add up to one step (default 1). */
  accumulate?: number;
  /** Peak learning rate (default 3e-4), reached after `warmup` steps (default steps/20). */
  lr?: number;
  warmup?: number;
  minLr?: number;
  weightDecay?: number;
  /** Gradient-norm clip (default 1). */
  gradClip?: number;
  emaDecay?: number;
  alphaMix?: number;
  /** bf16 autocast of the forward pass. */
  autocast?: boolean;
  /** Where the model, its optimiser state and every batch live: 'cpu' (default), 'cuda', 'cuda:1', … */
  device?: string;
  evalEvery?: number;
  logEvery?: number;
  seed?: number;
}

export interface ValRecord {
  step: number;
  /** Bits per token of this scale's ELBO term, training and EMA weights. */
  nll: number;
  nllEma: number;
}

export interface TrainResult {
  step: number;
  history: ValRecord[];
  /** Over this run, validation and checkpoints included. */
  stepsPerSecond: number;
  checkpoint: string;
  /** The run was asked to stop (`signal`) before `steps`: its state is saved at `step`. */
  stopped: boolean;
}

interface Split {
  /** [M, N] int64 */
  x0: Tensor;
  /** [M, condLength] int64 (label maps: [M, N]) */
  cond?: Tensor;
}

export const checkpointPath = (out: string): string => join(out, 'checkpoint.safetensors');

export class ScaleTrainer {
  readonly denoiser: Denoiser;
  readonly schedule: Schedule;
  readonly spec: ScaleSpec;
  readonly optimizer: AdamW;
  readonly ema: EMA;
  step = 0;
  /** Wall-clock seconds of training so far, over every run that resumed this checkpoint. */
  seconds = 0;
  private runStart = 0;
  private runSecondsBefore = 0;
  history: ValRecord[] = [];
  private readonly cfg: Required<Omit<ScaleTrainConfig, 'val' | 'segmentation' | 'valSegmentation'>> & Pick<ScaleTrainConfig, 'val' | 'segmentation' | 'valSegmentation'>;
  private readonly trainSet: Split;
  /** Fixed validation pairs: x_0, x_{t-1}, x_t [M, N]. */
  private readonly valSet: Split & { xtm1: Tensor; xt: Tensor };
  private readonly lrAt: (step: number) => number;
  /** [1, condLength]: what dropped conditions become. */
  private readonly nullCond?: Tensor;
  private readonly log: (line: string) => void;
  private readonly sampler: ShardSampler;
  private readonly dist?: DataParallel;
  /** The data-parallel backward passes (owned, freed by dispose()). */
  readonly gradSync?: GradientSync;

  /** `dist`: train data-parallel over its process group (logs then come from rank 0 only). */
  constructor(config: ScaleTrainConfig, o: { log?: (line: string) => void; dist?: DataParallel } = {}) {
    this.cfg = {
      valSize: 256, batchSize: 32, accumulate: 1, lr: 3e-4, warmup: Math.ceil(config.steps / 20), minLr: 0, weightDecay: 0.01, gradClip: 1,
      emaDecay: 0.9999, alphaMix: config.t === 1 ? 0 : 1, autocast: false, evalEvery: 500, logEvery: 50, seed: 0, conditionDropout: 0, device: 'cpu',
      ...Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined)) as ScaleTrainConfig,
    };
    this.dist = o.dist;
    this.log = o.dist && !o.dist.isMain ? () => {} : (o.log ?? ((line) => process.stderr.write(`${line}\n`)));
    const { t, chain } = this.cfg;
    manualSeed(this.cfg.seed);
    const conditioning = chain.conditioning ?? NONE;
    const data = this.loadData(conditioning);
    const [, h, w] = data.gridShape;
    const dropout = this.cfg.conditionDropout;
    if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`conditionDropout must lie in [0, 1), got ${dropout}`);
    if (dropout > 0 && (conditioning.kind === 'none' || !conditioning.nullable)) throw new Error('conditionDropout needs a nullable class, text or segmentation conditioning');
    this.nullCond = conditioning.kind !== 'none' && conditioning.nullable ? nullCondition(conditioning).to(this.cfg.device).keep() : undefined;
    const shape: ChainShape = { K: chain.K, T: chain.T, tokens: h * w, ...shapeOfConditioning(conditioning) };
    this.spec = { t, shape, schedule: chain.schedule, model: this.cfg.model };
    this.schedule = makeSchedule(chain.schedule, chain.T);
    const device = this.cfg.device;
    this.denoiser = onDevice(device, () => createDenoiser(t, this.cfg.model, shape, this.schedule));
    this.dist?.broadcastModule(this.denoiser);
    const onto = (x: Split): Split => ({ x0: x.x0.to(device).keep(), cond: x.cond?.to(device).keep() });
    this.trainSet = device === 'cpu' ? data.train : onto(data.train);
    const val = device === 'cpu' ? data.val : onto(data.val);
    this.sampler = new ShardSampler({
      n: data.train.x0.size(0), batchSize: this.cfg.batchSize, accumulate: this.cfg.accumulate, seed: this.cfg.seed,
      rank: this.dist?.rank, worldSize: this.dist?.worldSize,
    });
    const xs = noGrad(() => forwardChain(val.x0, this.schedule, chain.K, { steps: t }));
    this.valSet = { ...val, xtm1: xs[t - 1].keep(), xt: xs[t].keep() };
    this.optimizer = new AdamW(this.denoiser.decayGroups(this.cfg.weightDecay), { lr: this.cfg.lr, betas: [0.9, 0.95] });
    this.ema = new EMA(this.denoiser, this.cfg.emaDecay);
    // The encoder-decoder models' encoder keeps an output head (to_logits, a key of the official
    // checkpoints) that the loss never reaches: DDP's find_unused_parameters for them; GPT uses every parameter.
    const trained = new Set(this.optimizer.params);
    this.gradSync = this.dist?.gradientSync(this.denoiser.namedParameters().filter(([, p]) => trained.has(p)), { findUnusedParameters: this.cfg.model.type !== 'gpt' });
    this.lrAt = warmupCosine({ base: this.cfg.lr, warmup: this.cfg.warmup, total: this.cfg.steps, min: this.cfg.minLr });
  }

  get checkpoint(): string { return checkpointPath(this.cfg.out); }

  /**
   * Trains to `steps` (resuming from the checkpoint if present), validating and saving every `evalEvery`
   * steps. Between steps it yields to the event loop, so a signal handler can abort `signal`: the run then
   * saves its state at the step it reached and returns `stopped`.
   */
  async run(o: { signal?: AbortSignal } = {}): Promise<TrainResult> {
    mkdirSync(this.cfg.out, { recursive: true });
    if (existsSync(this.checkpoint)) this.resume();
    this.dist?.checkSameStep(this.step);
    manualSeed(rankSeed(this.cfg.seed + 1 + this.step, this.dist?.rank ?? 0));
    const main = this.dist?.isMain ?? true;
    const { steps, evalEvery, logEvery, t } = this.cfg;
    const start = performance.now(), startStep = this.step;
    [this.runStart, this.runSecondsBefore] = [start, this.seconds];
    let last = start, lastStep = this.step, stopped = false;
    while (this.step < steps) {
      await new Promise<void>((go) => setImmediate(go));
      if (o.signal?.aborted) {
        stopped = true;
        if (main) this.save();
        break;
      }
      const { loss } = this.trainStep();
      if (this.step % logEvery === 0 || this.step === steps) {
        const now = performance.now();
        const rate = ((this.step - lastStep) * 1000) / (now - last);
        this.log(`scale ${t} step ${this.step}/${steps} loss ${loss.toFixed(4)} lr ${this.optimizer.lr.toExponential(2)} ${rate.toFixed(2)} steps/s`);
        [last, lastStep] = [now, this.step];
      }
      if (main && (this.step % evalEvery === 0 || this.step === steps)) {
        const v = this.validate();
        this.log(`scale ${t} step ${this.step} val nll ${v.nll.toFixed(4)} bits/token (ema ${v.nllEma.toFixed(4)})`);
        this.save();
      }
    }
    const seconds = (performance.now() - start) / 1000;
    return { step: this.step, history: this.history, stepsPerSecond: (this.step - startStep) / Math.max(seconds, 1e-9), checkpoint: this.checkpoint, stopped };
  }

  /** One optimisation step on the step's batch (this rank's shard of it), `accumulate` micro-batches. */
  trainStep(): { loss: number; lr: number; gradNorm: number } {
    const { accumulate } = this.cfg;
    const lr = (this.optimizer.lr = this.lrAt(this.step));
    let loss = 0;
    for (let m = 0; m < accumulate; m++) loss += this.microStep(this.sampler.indices(this.step, m), 1 / accumulate, m === accumulate - 1);
    const gradNorm = clipGradNorm(this.optimizer.params, this.cfg.gradClip);
    this.optimizer.stepUpdate();
    this.optimizer.zeroGrad();
    this.ema.update();
    this.step += 1;
    return { loss, lr, gradNorm };
  }

  /**
   * Adds ∇(weight · loss) of the grids `indices` to the gradients; returns weight · loss. Data-parallel,
   * the `last` micro-batch's backward averages the summed gradients over the ranks.
   */
  private microStep(indices: Int32Array, weight: number, last: boolean): number {
    const { alphaMix, chain } = this.cfg;
    return tidy(() => {
      const idx = tensor(indices).long().to(this.cfg.device);
      const x0 = this.trainSet.x0.index([idx]);
      const cond = this.dropConditions(this.trainSet.cond?.index([idx]));
      const xs = noGrad(() => forwardChain(x0, this.schedule, chain.K, { steps: this.denoiser.t }));
      const [xtm1, xt] = [xs[this.denoiser.t - 1], xs[this.denoiser.t]];
      const logits = autocast(() => this.denoiser.logits(xt, xtm1, cond), { enabled: this.cfg.autocast, device: this.cfg.device.startsWith('cuda') ? 'cuda' : 'cpu' }).float();
      const post = alphaMix > 0 ? noGrad(() => posterior(x0, xt, this.denoiser.t, this.schedule, chain.K)) : undefined;
      const l = denoisingLoss(logits, xtm1, post, alphaMix).loss.mul(weight);
      if (this.gradSync) this.gradSync.backward(l, { sync: last });
      else l.backward();
      return l.item();
    });
  }

  /** Frees the data-parallel Reducer (its hooks and buckets); the trainer cannot train afterwards. */
  dispose(): void {
    this.gradSync?.dispose();
  }

  /** Conditions [B, condLength] (maps [B, N]), each replaced by the null condition with probability `conditionDropout`. */
  private dropConditions(cond: Tensor | undefined): Tensor | undefined {
    const p = this.cfg.conditionDropout;
    if (!cond || p === 0) return cond;
    return where(rand([cond.size(0), 1], { device: cond.device }).lt(p), this.nullCond!, cond);
  }

  /** Validation NLL (bits per token of this scale's ELBO term) with the training and the EMA weights. */
  validate(): ValRecord {
    const nll = this.valNll();
    const nllEma = this.ema.with(() => this.valNll());
    const rec = { step: this.step, nll, nllEma };
    this.history.push(rec);
    return rec;
  }

  private valNll(): number {
    const { x0, xtm1, xt, cond } = this.valSet;
    const M = x0.size(0), bs = this.cfg.batchSize;
    let nats = 0;
    for (let s = 0; s < M; s += bs) {
      const n = Math.min(bs, M - s);
      nats += noGrad(() => tidy(() =>
        elboTerm(this.denoiser, x0.narrow(0, s, n), xtm1.narrow(0, s, n), xt.narrow(0, s, n), this.schedule, cond?.narrow(0, s, n)).item() * n));
    }
    return nats / M / Math.LN2;
  }

  /** Training seconds including this run so far. */
  private elapsed(): number {
    return Math.round(this.runSecondsBefore + (this.runStart ? (performance.now() - this.runStart) / 1000 : 0));
  }

  save(): void {
    saveScaleCheckpoint(this.checkpoint, this.denoiser, this.spec, {
      step: this.step, ema: this.ema, optimizer: this.optimizer,
      metadata: { history: JSON.stringify(this.history), train_config: JSON.stringify(this.cfg), train_seconds: String(this.elapsed()) },
    });
  }

  private resume(): void {
    const ck = readScaleCheckpoint(this.checkpoint);
    if (canonical(ck.spec) !== canonical(this.spec)) {
      disposeCheckpoint(ck);
      throw new Error(`${this.checkpoint} belongs to another scale or model (${JSON.stringify(ck.spec)}); use a new run directory`);
    }
    this.denoiser.loadStateDict(ck.model);
    this.ema.loadStateDict(ck.ema, ck.emaUpdates);
    this.optimizer.loadStateDict(ck.optim);
    this.step = ck.step;
    this.history = JSON.parse(ck.metadata.history ?? '[]') as ValRecord[];
    this.seconds = Number(ck.metadata.train_seconds ?? 0);
    disposeCheckpoint(ck);
    this.log(`scale ${this.cfg.t}: resumed from ${this.checkpoint} at step ${this.step}`);
  }

  /** Train grids and held-out validation grids ([M, N] int64, labels [M, 1] when class-conditional, maps [M, N] for segmentation). */
  private loadData(conditioning: Conditioning): { train: Split; val: Split; gridShape: number[] } {
    const { chain, valSize } = this.cfg;
    /** A token file, with its label maps attached for a segmentation chain. */
    const read = (path: string, maps: string | undefined, role: string): TokenSet => {
      const file = readTokenFile(path);
      if (conditioning.kind !== 'segmentation') {
        if (maps !== undefined) throw new Error(`${role} label maps given, but the chain is not segmentation-conditional`);
        return file;
      }
      if (maps === undefined) throw new Error(`a segmentation-conditional chain needs the token file of ${path}'s label maps (${role})`);
      return withMaps(file, path, readTokenFile(maps), maps, conditioning);
    };
    const trainFile = read(this.cfg.train, this.cfg.segmentation, 'segmentation');
    if (trainFile.K !== undefined && trainFile.K !== chain.K) throw new Error(`${this.cfg.train} holds tokens of a K = ${trainFile.K} codebook, the chain is configured with K = ${chain.K}`);
    /** Grids [M, N] and their conditions [M, condLength] of `file` (the first `count`, or those at `idx`). */
    const split = (file: TokenSet, path: string, select: { idx?: Tensor; count?: number }): Split => {
      const { idx, count } = select;
      const pick = (x: Tensor) => (idx ? x.index([idx]) : count !== undefined ? x.narrow(0, 0, count) : x);
      const x0 = pick(file.tokens).flatten(1).keep();
      if (x0.numel > 0 && x0.max().item() >= chain.K) throw new Error(`token ids reach ${x0.max().item()} but the chain has K = ${chain.K}`);
      const cond = conditionsOf(file, conditioning, path, select);
      return cond ? { x0, cond: cond.keep() } : { x0 };
    };
    if (this.cfg.val) {
      const valFile = read(this.cfg.val, this.cfg.valSegmentation, 'valSegmentation');
      const count = Math.min(valSize, valFile.tokens.size(0));
      return { train: split(trainFile, this.cfg.train, {}), val: split(valFile, this.cfg.val, { count }), gridShape: trainFile.tokens.shape };
    }
    const n = trainFile.tokens.size(0);
    if (n <= valSize) throw new Error(`${this.cfg.train} has ${n} grids: too few to hold out ${valSize} for validation`);
    const held = heldOutSplit(n, valSize, this.cfg.seed);
    return {
      val: split(trainFile, this.cfg.train, { idx: held.val }),
      train: split(trainFile, this.cfg.train, { idx: held.train }),
      gridShape: trainFile.tokens.shape,
    };
  }
}

/**
 * The grids `ScaleTrainer` holds out of an n-grid training file (without a `val` file): indices into
 * the file, the first `valSize` of a permutation drawn right after seeding libtorch with `seed`.
 */
export function heldOutSplit(n: number, valSize: number, seed: number): { val: Tensor; train: Tensor } {
  manualSeed(seed);
  const perm = randperm(n);
  return { val: perm.narrow(0, 0, valSize), train: perm.narrow(0, valSize, n - valSize) };
}

/** JSON with object keys sorted, to compare configurations whatever order their keys were written in. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x));
