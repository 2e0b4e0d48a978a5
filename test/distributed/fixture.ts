/**
 * Shared by the distributed tests and the rank processes they start: a tiny encoder-decoder scale and
 * one optimisation step of it on a fixed batch (or a slice of it), one step of a tiny VQGAN, and the
 * helpers that start ranks.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Tensor, manualSeed, randint, noGrad, tidy } from '../../src/torch/index.js';
import { makeSchedule, forwardChain, posterior, denoisingLoss } from '../../src/diffusion/index.js';
import { createDenoiser, type Denoiser } from '../../src/chain/index.js';
import { AdamW, EMA, clipGradNorm } from '../../src/optim/index.js';
import type { DataParallel, GradientSync } from '../../src/distributed/index.js';
import { loadMnist, subset } from '../../src/data/index.js';
import { makeConfig } from '../../src/vqgan/config.js';
import { DEFAULT_LOSS } from '../../src/vqgan/loss.js';
import { VQGANTrainer } from '../../src/vqgan/trainer.js';

export const BATCH = 8;

/**
 * The scale-2 model of a T = 3 chain (K = 8, 4×4 grids) seeded with `initSeed` (then rank 0's weights
 * broadcast with `dist`), its AdamW and EMA, and `loss(start, length)`: the batch-mean loss on rows
 * [start, start + length) of a fixed batch of (x_0, x_1, x_2).
 */
export function tinyScale(o: { initSeed?: number; dist?: DataParallel } = {}): { model: Denoiser; opt: AdamW; ema: EMA; loss: (start: number, length: number) => Tensor } {
  const K = 8, t = 2;
  const schedule = makeSchedule('geometric', 3);
  manualSeed(123);
  const x0all = randint(0, K, [BATCH, 16]).keep();
  const xs = noGrad(() => forwardChain(x0all, schedule, K, { steps: t })).map((x) => x.keep());
  manualSeed(o.initSeed ?? 0);
  const model = createDenoiser(t, { type: 'xtransformer', dim: 32, heads: 2, dimHead: 16, encoderDepth: 1, decoderDepth: 1 }, { K, T: 3, tokens: 16 }, schedule);
  o.dist?.broadcastModule(model);
  const opt = new AdamW(model.decayGroups(0.01), { lr: 1e-2, betas: [0.9, 0.95] });
  const ema = new EMA(model, 0.9);
  const loss = (start: number, length: number): Tensor => {
    const [x0, xtm1, xt] = [x0all, xs[t - 1]!, xs[t]!].map((x) => x.narrow(0, start, length)) as [Tensor, Tensor, Tensor];
    const post = noGrad(() => posterior(x0, xt, t, schedule, K));
    return denoisingLoss(model.logits(xt, xtm1), xtm1, post, 1).loss;
  };
  return { model, opt, ema, loss };
}

/**
 * One optimisation step of tinyScale on rows [start, start + length) in `micro` equal micro-batches
 * (gradients added up, each loss weighted 1/micro): backward passes (with `dist`, through its
 * GradientSync, synced on the last micro-batch; `inspect` sees it before it is disposed), clipping,
 * one AdamW step and one EMA update. Returns the gradients, the new weights and the EMA, by name.
 */
export function tinyStep(start: number, length: number, o: { initSeed?: number; dist?: DataParallel; micro?: number; inspect?: (s: GradientSync) => void } = {}): Record<string, Tensor> {
  const { model, opt, ema, loss } = tinyScale(o);
  const sync = o.dist?.gradientSync(model.namedParameters(), { findUnusedParameters: true });
  const A = o.micro ?? 1, mb = length / A;
  for (let m = 0; m < A; m++) {
    tidy(() => {
      const l = loss(start + m * mb, mb).mul(1 / A);
      if (sync) sync.backward(l, { sync: m === A - 1 });
      else l.backward();
    });
  }
  if (sync) o.inspect?.(sync);
  sync?.dispose();
  const out: Record<string, Tensor> = {};
  for (const [n, p] of model.namedParameters()) if (p.grad) out[`grad.${n}`] = p.grad.clone();
  clipGradNorm(opt.params, 0.05);
  opt.stepUpdate();
  ema.update();
  for (const [n, p] of model.namedParameters()) out[`weight.${n}`] = p.detach().clone();
  for (const [n, s] of ema.shadow) out[`ema.${n}`] = s.clone();
  return out;
}

/**
 * One step of a tiny VQGAN (test/vqgan's: 16×16 MNIST, 32 codes) on this trainer's batch of step 0
 * (`batchSize` images; with `dist`, this rank's shard), the discriminator on from `discStart`.
 * Returns the autoencoder's and discriminator's gradients and new weights, by name.
 */
export function tinyVQGANStep(outDir: string, o: { batchSize: number; discStart: number; dist?: DataParallel }): Record<string, Tensor> {
  const train = subset(loadMnist({ split: 'train', resolution: 16 }), Array.from({ length: 64 }, (_, i) => i));
  const trainer = new VQGANTrainer({
    model: makeConfig({
      ddconfig: { resolution: 16, inChannels: 1, outCh: 1, ch: 16, chMult: [1, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 8 },
      nEmbed: 32, embedDim: 8,
    }),
    loss: { ...DEFAULT_LOSS, discStart: o.discStart, discNumLayers: 2, discNdf: 16 },
    lr: 2e-3, batchSize: o.batchSize, steps: 1, seed: 0, logEvery: 1, sampleEvery: 100, valEvery: 100, checkpointEvery: 100, valImages: 8,
  }, { outDir, train, dist: o.dist, write: () => {} });
  tidy(() => { trainer.trainStep(trainer.batchAt(0)); });
  trainer.dispose();
  const out: Record<string, Tensor> = {};
  for (const [part, m] of [['model', trainer.model], ['disc', trainer.loss.discriminator]] as const) {
    for (const [n, p] of m.namedParameters()) {
      if (p.grad) out[`grad.${part}.${n}`] = p.grad.clone();
      out[`weight.${part}.${n}`] = p.detach().clone();
    }
  }
  return out;
}

/** A TCP port free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

export const RANK_SCRIPT = fileURLToPath(new URL('./rank.js', import.meta.url));
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** How a process ended; `end` on performance.now()'s clock. */
export interface Exit { code: number | null; signal: NodeJS.Signals | null; out: string; ms: number; end: number }

/** Runs a process to its end (killing it after `limitMs`), collecting stdout and stderr together. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, limitMs = 240_000, onLine?: (line: string) => void): Promise<Exit> & { kill: (s?: NodeJS.Signals) => void } {
  const t0 = performance.now();
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const take = (b: Buffer) => {
    const s = b.toString();
    out += s;
    if (onLine) for (const l of s.split('\n')) if (l) onLine(l);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const p = new Promise<Exit>((done) => child.on('close', (code, signal) => {
    clearTimeout(timer);
    done({ code, signal, out, ms: performance.now() - t0, end: performance.now() });
  })) as Promise<Exit> & { kill: (s?: NodeJS.Signals) => void };
  p.kill = (s = 'SIGKILL') => child.kill(s);
  return p;
}

/** torchrun's environment for rank `rank` of `world` on 127.0.0.1:port. */
export const rankEnv = (rank: number, world: number, port: number, addr = '127.0.0.1'): NodeJS.ProcessEnv =>
  ({ RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), MASTER_ADDR: addr, MASTER_PORT: String(port), IMAGEBART_THREADS: '1', IMAGEBART_BLAS_THREADS: '1' });
