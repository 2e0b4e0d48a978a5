/**
 * bench:distributed — data-parallel training of one scale on this machine, and c10d's all-reduce.
 *
 * The scale is bench:chain's (encoder 4 / decoder 2 layers, width 256, 8×8 tokens, K = 256, t = 2 of
 * T = 3), trained with ScaleTrainer.trainStep at a global batch of 32 grids:
 *  - 1 process × 2 threads: batch 32 in one process (ATen and BLAS threads 2);
 *  - 2 processes × 1 thread: two ranks (launchRanks, Gloo on loopback), batch 16 each, training two
 *    copies of the scale side by side, their steps alternating so that the machine's load falls on
 *    both alike: one with the gradients averaged after the backward pass in 25 MiB buckets
 *    (DataParallel overlap: false), one with c10d::Reducer averaging them during the backward pass
 *    (the default), whose timer gives how long the all-reduce ran alongside the backward computation
 *    (compute end − first launch) and how long backward then waited for it.
 * Each: 3 warm-up steps, then the median of STEPS timed steps; samples/s = 32 / step. Then, in the
 * two-rank run, the all-reduce of one float32 buffer the size of the model's gradients (median of
 * 20): algorithm bandwidth bytes/time and bus bandwidth 2(W-1)/W · bytes/time.
 * Table on stdout, JSON in bench/results/distributed.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/torch/index.js';
import { ScaleTrainer, writeTokenFile, type ScaleTrainConfig } from '../src/chain/index.js';
import { DataParallel, Reducer, dataParallelFromEnv, launchRanks, type ProcessGroup } from '../src/distributed/index.js';
import { median, round, writeResult } from './common.js';

const K = 256, SIDE = 8, GRIDS = 1024, GLOBAL_BATCH = 32, STEPS = Number(process.env.BENCH_STEPS ?? 10), WARMUP = 3;
const SELF = fileURLToPath(import.meta.url);

/** How gradients are averaged: alone (one process), after the backward pass, or by the Reducer during it. */
type Sync = 'alone' | 'after-backward' | 'reducer';
interface Measured {
  msPerStep: number; samplesPerSecond: number; parameters: number; bytesPerStep: number;
  /** Reducer: medians over the timed steps of compute end − first all-reduce launch, and of comm end − compute end. */
  overlapMs?: number; waitAfterBackwardMs?: number;
  allReduce?: { bytes: number; ms: number; algGBps: number; busGBps: number };
}

/** One timed trainer: its step times and, with a Reducer, each step's overlap and wait. */
class Timed {
  readonly times: number[] = [];
  readonly overlap: number[] = [];
  readonly wait: number[] = [];
  constructor(readonly trainer: ScaleTrainer) {}

  step(timed: boolean, group?: ProcessGroup): void {
    group?.barrier();
    const t0 = performance.now();
    this.trainer.trainStep();
    if (!timed) return;
    this.times.push(performance.now() - t0);
    const tl = this.trainer.gradSync instanceof Reducer ? this.trainer.gradSync.lastBackward() : undefined;
    if (tl) {
      this.overlap.push(tl.overlapMs);
      this.wait.push(tl.commEndMs - tl.computeEndMs);
    }
  }

  measured(): Measured {
    const ms = median(this.times);
    const { trainer } = this;
    const r: Measured = { msPerStep: round(ms), samplesPerSecond: round((GLOBAL_BATCH * 1000) / ms), parameters: trainer.denoiser.numParameters(), bytesPerStep: trainer.gradSync?.bytesPerStep ?? 0 };
    if (this.overlap.length) Object.assign(r, { overlapMs: round(median(this.overlap), 2), waitAfterBackwardMs: round(median(this.wait), 2) });
    trainer.dispose();
    return r;
  }
}

/** One process of a configuration: trains, times, and (rank 0 or alone) prints one JSON line of Measured by sync. */
function worker(dirPath: string): void {
  const group = dataParallelFromEnv({ timeoutMs: 120_000 })?.group;
  const W = group?.worldSize ?? 1;
  const config: ScaleTrainConfig = {
    t: 2, chain: { K, T: 3, schedule: 'geometric' },
    model: { type: 'xtransformer', dim: 256, heads: 4, encoderDepth: 4, decoderDepth: 2 },
    train: join(dirPath, 'tokens.safetensors'), valSize: GLOBAL_BATCH, out: dirPath, steps: 1_000_000, batchSize: GLOBAL_BATCH / W,
  };
  const syncs: Sync[] = group ? ['after-backward', 'reducer'] : ['alone'];
  const timed = syncs.map((sync) => new Timed(new ScaleTrainer(config, { log: () => {}, dist: group && new DataParallel(group, { overlap: sync === 'reducer' }) })));
  for (let i = 0; i < WARMUP + STEPS; i++) for (const t of timed) t.step(i >= WARMUP, group);
  const r = Object.fromEntries(syncs.map((s, i) => [s, timed[i]!.measured()])) as Partial<Record<Sync, Measured>>;
  if (group) {
    const parameters = r.reducer!.parameters;
    const buf = T.zeros([parameters]);
    const ar: number[] = [];
    for (let i = 0; i < 23; i++) {
      group.barrier();
      const t0 = performance.now();
      group.allReduce([buf], 'sum');
      if (i >= 3) ar.push(performance.now() - t0);
    }
    const bytes = parameters * 4, arMs = median(ar);
    r.reducer!.allReduce = { bytes, ms: round(arMs, 3), algGBps: round(bytes / arMs / 1e6, 3), busGBps: round(((2 * (W - 1)) / W) * bytes / arMs / 1e6, 3) };
    group.barrier();
    group.destroy();
  }
  if (!group || group.isMain) console.log(JSON.stringify(r));
}

/** Runs the configuration in child processes and returns rank 0's measurement. */
async function configuration(dirPath: string, procs: number, threads: number, port: number): Promise<Partial<Record<Sync, Measured>>> {
  const lines: string[] = [];
  const env = { ...process.env, IMAGEBART_THREADS: String(threads), IMAGEBART_BLAS_THREADS: String(threads) };
  const res = await launchRanks({ command: process.execPath, args: [SELF, 'worker', dirPath], nprocPerNode: procs, env, masterPort: port, write: (l) => lines.push(l) });
  const json = lines.map((l) => l.replace(/^\[rank 0\] /, '')).find((l) => l.startsWith('{'));
  if (res.code !== 0 || !json) throw new Error(`${procs} × ${threads}: failed\n${lines.join('\n')}`);
  return JSON.parse(json) as Partial<Record<Sync, Measured>>;
}

async function main(): Promise<void> {
  const dirPath = mkdtempSync(join(tmpdir(), 'bench-distributed-'));
  try {
    T.manualSeed(1234);
    writeTokenFile(join(dirPath, 'tokens.safetensors'), T.randint(0, K, [GRIDS, SIDE, SIDE]), { K });
    const one = (await configuration(dirPath, 1, 2, 29401)).alone!;
    const pair = await configuration(dirPath, 2, 1, 29402);
    const [two, overlapped] = [pair['after-backward']!, pair.reducer!];
    const rows = [['1 process × 2 threads', one], ['2 processes × 1 thread, after backward', two], ['2 processes × 1 thread, Reducer', overlapped]] as const;
    console.log(`\none scale (${(one.parameters / 1e6).toFixed(2)}M parameters), global batch ${GLOBAL_BATCH}, median of ${STEPS} steps, ${availableParallelism()} cores`);
    const ms = (v: number | undefined) => (v === undefined ? '' : v.toFixed(1)).padStart(14);
    console.log(`${'configuration'.padEnd(40)}${'ms/step'.padStart(10)}${'samples/s'.padStart(12)}${'MB reduced/step'.padStart(18)}${'overlap ms'.padStart(14)}${'wait ms'.padStart(14)}`);
    for (const [name, m] of rows) {
      console.log(`${name.padEnd(40)}${m.msPerStep.toFixed(1).padStart(10)}${m.samplesPerSecond.toFixed(1).padStart(12)}${(m.bytesPerStep / 1e6).toFixed(2).padStart(18)}${ms(m.overlapMs)}${ms(m.waitAfterBackwardMs)}`);
    }
    const ratio = round(two.msPerStep / overlapped.msPerStep, 3);
    console.log(`Reducer against after-backward all-reduce: ×${ratio.toFixed(3)} steps/s (overlap ms: all-reduce running during the backward computation; wait ms: backward's wait for it after)`);
    const ar = overlapped.allReduce!;
    console.log(`\nall-reduce of ${(ar.bytes / 1e6).toFixed(2)} MB (the model's float32 gradients), 2 ranks, Gloo on loopback: ${ar.ms.toFixed(2)} ms, ` +
      `algorithm bandwidth ${ar.algGBps.toFixed(2)} GB/s, bus bandwidth ${ar.busGBps.toFixed(2)} GB/s`);
    writeResult('bench/results/distributed.json', {
      model: 'xtransformer dim 256, enc 4 / dec 2, 8×8 tokens, K 256', parameters: one.parameters, globalBatch: GLOBAL_BATCH, steps: STEPS, cores: availableParallelism(),
      single: { processes: 1, threads: 2, ...one }, dataParallel: { processes: 2, threads: 1, sync: 'after-backward', ...two },
      reducer: { processes: 2, threads: 1, sync: 'reducer', ...overlapped },
      speedup: round(one.msPerStep / two.msPerStep, 3), reducerSpeedup: round(one.msPerStep / overlapped.msPerStep, 3), reducerOverAfterBackward: ratio,
    });
  } finally {
    rmSync(dirPath, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'worker') worker(process.argv[3]!);
else await main();
