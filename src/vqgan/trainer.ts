/**
 * VQGAN training loop (taming VQModel.training_step with two optimisers):
 *
 * - each step: autoencoder update on nll + codebook loss (+ adaptive adversarial term after discStart),
 *   then, once the discriminator is on, a discriminator update on the hinge loss;
 * - Adam(lr, betas 0.5/0.9) for each (taming's choice), seeded init and a seeded data order that is a
 *   function of the step alone, so a resumed run sees exactly the batches it would have seen;
 * - every logEvery steps a progress line on stderr (loss terms, steps/s, ETA) and a JSON line in log.jsonl;
 *   every sampleEvery a PNG grid (inputs above reconstructions) in samples/; every valEvery the validation
 *   PSNR and codebook usage/perplexity; every checkpointEvery an atomic checkpoint `last.safetensors`
 *   (model, discriminator, both optimisers' moments, step, configs), so a kill loses at most one interval.
 *
 * Data-parallel with `dist` (src/distributed): rank 0's weights broadcast at the start, each rank trains
 * on its own shard of every batch (batchSize images per rank), both updates' gradients averaged over the
 * ranks during their backward passes (one c10d Reducer for the autoencoder, one for the discriminator;
 * dispose() frees them); rank 0 alone logs, writes samples, validates and saves.
 *
 * One deviation from taming, for speed: the discriminator sees the reconstruction made before the
 * autoencoder update of the same step (taming re-runs the autoencoder forward for the second optimiser).
 */
import { mkdirSync, appendFileSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, autocast, tensor, tidy, noGrad, manualSeed } from '../torch/index.js';
import { AdamW } from '../optim/index.js';
import { collate, makeGrid, encodePng, type ImageDataset } from '../data/index.js';
import { ShardSampler, type DataParallel, type GradientSync } from '../distributed/index.js';
import { VQModel, saveVQModel, readCheckpoint, modelWeights } from './model.js';
import { VQGANLoss, type VQGANLossConfig, type GeneratorLoss } from './loss.js';
import { VQGANTrainConfigSchema } from './schema.js';
import { parseWith } from '../io/schema.js';
import { writeAtomic } from '../io/output.js';
import { loadLPIPS } from './perceptual.js';
import { evaluate, type EvalResult } from './metrics.js';
import type { VQModelConfig } from './config.js';

export interface VQGANTrainConfig {
  model: VQModelConfig;
  loss: VQGANLossConfig;
  /** Adam learning rate, for both optimisers (taming: 4.5e-6 × batch size). */
  lr: number;
  batchSize: number;
  /** Total number of steps. */
  steps: number;
  seed: number;
  logEvery: number;
  sampleEvery: number;
  valEvery: number;
  checkpointEvery: number;
  /** Validation images used by each validation (the first ones of the validation set). */
  valImages: number;
  /**
   * bf16 autocast of the autoencoder's forward pass (the quantizer and every loss stay in float32);
   * about twice as fast on CPUs with bf16 units. Default off.
   */
  autocast?: boolean;
  /** The data trained on, for the record (the trainer itself is handed the datasets). */
  data?: { name: string; resolution: number; channels: number };
}

export interface TrainerOptions {
  outDir: string;
  train: ImageDataset;
  /** Defaults to the training set. */
  val?: ImageDataset;
  /** Where progress goes (default: stderr). */
  write?: (text: string) => void;
  /** Train data-parallel over its process group. */
  dist?: DataParallel;
}

export interface StepLog {
  loss: number;
  rec: number;
  p: number;
  nll: number;
  q: number;
  g: number;
  dWeight: number;
  d?: number;
  logitsReal?: number;
  logitsFake?: number;
}

export const CHECKPOINT = 'last.safetensors';
export const FINAL_MODEL = 'model.safetensors';
const TRAIN_FORMAT = 'imagebart-vqgan-train/1';

export class VQGANTrainer {
  readonly model: VQModel;
  readonly loss: VQGANLoss;
  readonly optAE: AdamW;
  readonly optDisc: AdamW;
  /** Steps completed. */
  step = 0;
  private readonly val: ImageDataset;
  private readonly write: (text: string) => void;
  private readonly sampler: ShardSampler;
  /** This process logs, validates and saves (rank 0, or the only process). */
  private readonly main: boolean;
  /** A TTY progress line is showing (rewritten in place with \r). */
  private lineOpen = false;
  /** Data-parallel backward passes of the autoencoder and of the discriminator (owned, freed by dispose()). */
  private readonly syncAE?: GradientSync;
  private readonly syncDisc?: GradientSync;

  constructor(readonly config: VQGANTrainConfig, readonly opts: TrainerOptions) {
    parseWith(VQGANTrainConfigSchema, config, 'VQGAN training config');
    const { train } = opts;
    const dd = config.model.ddconfig;
    if (train.channels !== dd.inChannels || train.resolution !== dd.resolution) {
      throw new Error(`VQGAN trainer: data is ${train.channels}×${train.resolution}², the model expects ${dd.inChannels}×${dd.resolution}²`);
    }
    if (train.size < config.batchSize) throw new Error(`VQGAN trainer: ${train.size} training images, fewer than one batch of ${config.batchSize}`);
    this.val = opts.val ?? train;
    this.main = opts.dist?.isMain ?? true;
    this.write = this.main ? (opts.write ?? ((s) => process.stderr.write(s))) : () => {};
    this.sampler = new ShardSampler({ n: train.size, batchSize: config.batchSize, seed: config.seed, rank: opts.dist?.rank, worldSize: opts.dist?.worldSize });
    manualSeed(config.seed);
    this.model = new VQModel(config.model).train();
    const lp = config.loss.perceptualWeights;
    this.loss = new VQGANLoss(config.loss, dd.outCh, lp ? loadLPIPS(lp) : undefined).train();
    const adam = { lr: config.lr, betas: [0.5, 0.9] as [number, number], decoupled: false, weightDecay: 0 };
    this.optAE = new AdamW(this.model.parameters(), adam);
    opts.dist?.broadcastModule(this.model, this.loss);
    this.optDisc = new AdamW(this.loss.discriminator.parameters(), adam);
    this.syncAE = opts.dist?.gradientSync(this.model.namedParameters());
    this.syncDisc = opts.dist?.gradientSync(this.loss.discriminator.namedParameters());
    mkdirSync(join(opts.outDir, 'samples'), { recursive: true });
  }

  get checkpointPath(): string { return join(this.opts.outDir, CHECKPOINT); }

  /** This rank's training batch of a given step: epoch e is a permutation seeded by seed + e, short tail dropped. */
  batchAt(step: number): Tensor {
    const { train } = this.opts;
    const { images } = collate(train, this.sampler.indices(step));
    return tensor(images, [this.config.batchSize, train.channels, train.resolution, train.resolution]);
  }

  /** One optimisation step of the autoencoder and (once active) the discriminator. */
  trainStep(x: Tensor): StepLog {
    return tidy(() => {
      // The discriminator is frozen during the autoencoder update (Lightning's toggle_optimizer).
      const disc = this.loss.discriminator.parameters();
      for (const p of disc) p.requiresGrad_(false);
      let rec: Tensor, g: GeneratorLoss;
      try {
        const out = autocast(() => this.model.forward(x), { enabled: !!this.config.autocast });
        rec = out.rec.float();
        g = this.loss.generatorLoss(x, rec, out.qloss, this.step, this.model.decoder.convOut.weight);
        this.optAE.zeroGrad();
        if (this.syncAE) this.syncAE.backward(g.loss);
        else g.loss.backward();
        this.optAE.stepUpdate();
      } finally {
        for (const p of disc) p.requiresGrad_(true);
      }
      const log: StepLog = { loss: g.loss.item(), ...g.log };
      if (this.loss.discActive(this.step)) {
        const d = this.loss.discriminatorLoss(x, rec);
        this.optDisc.zeroGrad();
        if (this.syncDisc) this.syncDisc.backward(d.loss);
        else d.loss.backward();
        this.optDisc.stepUpdate();
        Object.assign(log, d.log);
      }
      this.step += 1;
      return log;
    });
  }

  /** Frees the data-parallel Reducers (their hooks and buckets); the trainer cannot train afterwards. */
  dispose(): void {
    this.syncAE?.dispose();
    this.syncDisc?.dispose();
  }

  /**
   * Trains until `config.steps` (or until `signal` aborts, which stops before the next step without
   * saving, like a kill). Returns the last validation.
   */
  async train(o: { signal?: AbortSignal } = {}): Promise<EvalResult | undefined> {
    const c = this.config;
    const { perceptualWeight, perceptualWeights } = c.loss;
    this.say(`vqgan: ${this.model.numParameters().toLocaleString('en')} parameters, ${this.opts.train.size} training images, ` +
      `perceptual loss ${perceptualWeight > 0 && perceptualWeights ? `on (${perceptualWeights}, weight ${perceptualWeight})` : 'off (no LPIPS weights given; none are available offline)'}, ` +
      `discriminator from step ${c.loss.discStart}, starting at step ${this.step}/${c.steps}`);
    this.opts.dist?.checkSameStep(this.step);
    const started = performance.now();
    const firstStep = this.step;
    let last: EvalResult | undefined;
    while (this.step < c.steps) {
      if (o.signal?.aborted) return last;
      const log = tidy(() => this.trainStep(this.batchAt(this.step)));
      const done = this.step;
      if (this.main) last = this.afterStep(log, (done - firstStep) / ((performance.now() - started) / 1000)) ?? last;
      await new Promise((r) => setImmediate(r)); // lets signals and timers run between steps
    }
    if (this.main) saveVQModel(join(this.opts.outDir, FINAL_MODEL), this.model, { metadata: { step: String(this.step) } });
    return last;
  }

  /** Rank 0's work after step `this.step`: progress, samples, validation, checkpoint, as each is due. */
  private afterStep(log: StepLog, rate: number): EvalResult | undefined {
    const c = this.config, done = this.step;
    let val: EvalResult | undefined;
    if (done % c.logEvery === 0 || done === c.steps) {
      this.progress(log, rate);
      this.record({ kind: 'train', step: done, ...log, stepsPerSecond: rate });
    }
    if (done % c.sampleEvery === 0 || done === c.steps) this.writeSamples();
    if (done % c.valEvery === 0 || done === c.steps) val = this.validate();
    if (done % c.checkpointEvery === 0 || done === c.steps) this.saveCheckpoint();
    return val;
  }

  /** Validation PSNR and codebook usage on the first valImages validation images (logged). */
  validate(): EvalResult {
    const r = evaluate(this.model, this.val, { maxImages: this.config.valImages });
    this.say(`val @ ${this.step}: PSNR ${r.psnr.toFixed(2)} dB, L1 ${r.l1.toFixed(4)}, codes used ${r.usedCodes}/${this.config.model.nEmbed}, perplexity ${r.perplexity.toFixed(1)}`);
    const { counts: _counts, ...summary } = r;
    this.record({ kind: 'val', step: this.step, ...summary });
    return r;
  }

  /** samples/step_NNNNNN.png: up to 8 validation inputs (top row) and their reconstructions (bottom row). */
  writeSamples(): string {
    const ds = this.val;
    const n = Math.min(8, ds.size);
    const { images } = collate(ds, Int32Array.from({ length: n }, (_, i) => i));
    const rec = noGrad(() => tidy(() => {
      this.model.eval();
      const out = this.model.forward(tensor(images, [n, ds.channels, ds.resolution, ds.resolution])).rec.toFloat32Array();
      this.model.train();
      return out;
    }));
    const all = new Float32Array(images.length * 2);
    all.set(images);
    all.set(rec, images.length);
    const grid = makeGrid(all, { channels: ds.channels, height: ds.resolution, width: ds.resolution }, { nrow: n });
    const path = join(this.opts.outDir, 'samples', `step_${String(this.step).padStart(6, '0')}.png`);
    writeFileSync(path, encodePng(grid.rgba, grid.width, grid.height));
    return path;
  }

  /** Writes the checkpoint atomically (temp file + rename). */
  saveCheckpoint(path = this.checkpointPath): void {
    const tensors = new Map<string, Tensor>();
    for (const [k, t] of this.loss.stateDict()) tensors.set(`loss.${k}`, t);
    const metadata: Record<string, string> = { train_format: TRAIN_FORMAT, step: String(this.step), train: JSON.stringify(this.config) };
    [this.optAE, this.optDisc].forEach((opt, i) => {
      const sd = opt.stateDict();
      for (const [k, t] of sd.tensors) tensors.set(`optimizer.${i}.${k}`, t);
      metadata[`optimizer.${i}.step`] = String(sd.step);
    });
    saveVQModel(path, this.model, { tensors, metadata });
  }

  /** Restores model, discriminator, optimisers and step from a checkpoint written by saveCheckpoint. */
  resume(path = this.checkpointPath): void {
    const { tensors, metadata } = readCheckpoint(path);
    if (metadata.train_format !== TRAIN_FORMAT) throw new Error(`${path}: not a VQGAN training checkpoint (train_format ${JSON.stringify(metadata.train_format)})`);
    const saved = JSON.parse(metadata.train!) as VQGANTrainConfig;
    if (JSON.stringify(saved.model) !== JSON.stringify(this.config.model)) {
      throw new Error(`${path}: checkpoint model config ${JSON.stringify(saved.model)} differs from ${JSON.stringify(this.config.model)}`);
    }
    this.model.loadStateDict(modelWeights(tensors));
    const prefixed = (p: string) => new Map([...tensors].filter(([k]) => k.startsWith(p)).map(([k, t]) => [k.slice(p.length), t] as [string, Tensor]));
    this.loss.loadStateDict(prefixed('loss.'));
    [this.optAE, this.optDisc].forEach((opt, i) => opt.loadStateDict({ tensors: prefixed(`optimizer.${i}.`), step: Number(metadata[`optimizer.${i}.step`]) }));
    this.step = Number(metadata.step);
    for (const t of tensors.values()) t.dispose();
    this.forgetLogAfter(this.step);
    this.say(`vqgan: resumed from ${path} at step ${this.step}`);
  }

  private progress(l: StepLog, rate: number): void {
    const c = this.config;
    const eta = (c.steps - this.step) / Math.max(rate, 1e-9);
    const terms = `loss ${l.loss.toFixed(4)} rec ${l.rec.toFixed(4)}${l.p ? ` p ${l.p.toFixed(4)}` : ''} q ${l.q.toFixed(4)}` +
      (l.d === undefined ? '' : ` g ${l.g.toFixed(3)} λ ${l.dWeight.toFixed(3)} d ${l.d.toFixed(3)}`);
    const line = `step ${this.step}/${c.steps} | ${terms} | ${rate.toFixed(2)} steps/s | ETA ${formatDuration(eta)}`;
    if (process.stderr.isTTY && !this.opts.write) {
      this.write(`\r${line}\x1b[K`);
      this.lineOpen = true;
    } else {
      this.say(line);
    }
  }

  /** Writes one line (ending an open progress line first). */
  private say(line: string): void {
    this.write(`${this.lineOpen ? '\n' : ''}${line}\n`);
    this.lineOpen = false;
  }

  /** Drops log.jsonl lines of steps after `step` (run again after a resume from it), so no step is logged twice. */
  private forgetLogAfter(step: number): void {
    const path = join(this.opts.outDir, 'log.jsonl');
    if (!existsSync(path)) return;
    const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
    const kept = lines.filter((l) => {
      try {
        return (JSON.parse(l) as { step?: number }).step! <= step;
      } catch {
        return false; // a line cut short by the kill
      }
    });
    if (kept.length !== lines.length) writeAtomic(path, kept.map((l) => l + '\n').join(''));
  }

  private record(entry: Record<string, unknown>): void {
    appendFileSync(join(this.opts.outDir, 'log.jsonl'), JSON.stringify(entry) + '\n');
  }
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
