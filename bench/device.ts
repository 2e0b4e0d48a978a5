/**
 * bench:device — the same work on the CPU and on a CUDA device, side by side in one run: a chain
 * scale's training step (ScaleTrainer.trainStep: encoder 4 / decoder 2 layers × 256, 8×8 tokens,
 * K = 256, batch 32 and 128, float32 and bf16 autocast) and sampling the shipped class-conditional
 * MNIST chain (64 images, guidance 2, KV-cached). Medians of timed repetitions after warm-up; ratio =
 * CPU / CUDA. Without a CUDA device it says so, measures the CPU alone and records that in the JSON.
 *
 *   npm run bench:device [-- --steps N]       (scripts/gpu-check.sh runs it on an accelerator machine)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as T from '../src/torch/index.js';
import { ScaleTrainer, writeTokenFile, type ScaleTrainConfig } from '../src/chain/index.js';
import { Pipeline, useLatencyBoundThreads } from '../src/pipeline/index.js';
import { median, writeResult } from './common.js';

const { values: args } = parseArgs({ options: { steps: { type: 'string', default: '20' }, out: { type: 'string', default: 'bench/results/device.json' } } });
const STEPS = Number(args.steps);
const devices = ['cpu', ...(T.cudaAvailable() ? ['cuda'] : [])];
if (devices.length === 1) console.log('no CUDA device here: measuring the CPU alone');

const dir = mkdtempSync(join(tmpdir(), 'bench-device-'));
T.manualSeed(0);
const tokens = join(dir, 'tokens.safetensors');
writeTokenFile(tokens, T.randint(0, 256, [2048, 8, 8]), { K: 256 });

/** Median milliseconds of one training step on `device`. */
function trainStepMs(device: string, batchSize: number, autocast: boolean): number {
  const config: ScaleTrainConfig = {
    t: 2, chain: { K: 256, T: 3, schedule: 'geometric' }, model: { type: 'xtransformer', dim: 256, heads: 4, encoderDepth: 4, decoderDepth: 2 },
    train: tokens, valSize: 32, out: join(dir, `${device}-${batchSize}-${autocast}`), steps: 1_000_000, batchSize, device, autocast,
  };
  const trainer = new ScaleTrainer(config, { log: () => {} });
  for (let i = 0; i < 3; i++) trainer.trainStep(); // warm-up (allocator, kernels)
  const times: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    trainer.trainStep(); // returns the loss as a number: the device has finished the step
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Median seconds to sample 64 images of the shipped class-conditional chain on `device`. */
function sampleSeconds(device: string): number {
  const model = Pipeline.load('models/mnist-class', { device });
  const run = () => model.sample({ count: 64, batchSize: 64, seed: 1n, condition: Array.from({ length: 64 }, (_, i) => i % 10), guidance: 2 }).sidecar.seconds;
  run();
  return median([run(), run(), run()]);
}

interface Row { workload: string; unit: string; values: Record<string, number> }
const rows: Row[] = [];
for (const [batch, autocast] of [[32, false], [128, false], [128, true]] as const) {
  const values: Record<string, number> = {};
  for (const d of devices) values[d] = trainStepMs(d, batch, autocast);
  rows.push({ workload: `train step, batch ${batch}${autocast ? ', bf16 autocast' : ''}`, unit: 'ms', values });
}
const trainThreads = T.getThreads();
useLatencyBoundThreads(); // token-by-token sampling: one thread per pool, as the CLI and server sample
rows.push({ workload: 'sample 64 images (mnist-class, guidance 2)', unit: 's', values: Object.fromEntries(devices.map((d) => [d, sampleSeconds(d)])) });
rmSync(dir, { recursive: true, force: true });

console.log(`\n| workload | ${devices.map((d) => `${d}`).join(' | ')} |${devices.length > 1 ? ' CPU / CUDA |' : ''}`);
console.log(`|---|${devices.map(() => '---|').join('')}${devices.length > 1 ? '---|' : ''}`);
for (const r of rows) {
  const cells = devices.map((d) => `${r.values[d].toFixed(r.unit === 'ms' ? 1 : 2)} ${r.unit}`);
  console.log(`| ${r.workload} | ${cells.join(' | ')} |${devices.length > 1 ? ` ${(r.values.cpu / r.values.cuda).toFixed(1)}× |` : ''}`);
}
writeResult(args.out!, { devices, cuda: devices.includes('cuda') ? { count: T.cudaDeviceCount() } : null, steps: STEPS, threads: { train: trainThreads, sample: T.getThreads() }, rows });
