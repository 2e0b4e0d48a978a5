import { readSafetensorsHeader } from '../../src/torch/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, randint, noGrad, saveSafetensors } from '../../src/torch/index.js';
import {
  NONE, modelCard,
  ScaleTrainer, readTokenFile, writeTokenFile, chainManifest, writeManifest, readManifest, loadChain, chainNll, loadScaleCheckpoint,
  type ScaleTrainConfig, type ScaleModelConfig,
} from '../../src/chain/index.js';

const K = 8, H = 4, W = 4;
const dir = mkdtempSync(join(tmpdir(), 'imagebart-chain-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** Grids x[i][j] = (a + b·i + c·j) mod K with a < K, b, c ∈ {0, 1}: 5 bits per grid, 0.31 bits per token. */
function synthetic(M: number, seed: number): { tokens: BigInt64Array; labels: Int32Array } {
  let s = seed >>> 0;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  const tokens = new BigInt64Array(M * H * W), labels = new Int32Array(M);
  for (let m = 0; m < M; m++) {
    const a = Math.floor(rnd() * K), b = rnd() < 0.5 ? 1 : 0, c = rnd() < 0.5 ? 1 : 0;
    labels[m] = 2 * b + c;
    for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) tokens[(m * H + i) * W + j] = BigInt((a + b * i + c * j) % K);
  }
  return { tokens, labels };
}
const data = synthetic(1200, 1);
const trainFile = join(dir, 'tokens.safetensors');
writeTokenFile(trainFile, tensor(data.tokens, [1200, H, W]), { K, labels: tensor(data.labels) });

const MODELS: Record<number, ScaleModelConfig> = {
  1: { type: 'xtransformer', dim: 32, heads: 2, dimHead: 16, encoderDepth: 1, decoderDepth: 1 },
  2: { type: 'gpt', dim: 32, heads: 2, depth: 1 },
};
const config = (t: number, steps: number, extra: Partial<ScaleTrainConfig> = {}): ScaleTrainConfig => ({
  t, chain: { K, T: 2, schedule: 'geometric' }, model: MODELS[t], train: trainFile, valSize: 128, out: join(dir, `scale${t}`),
  steps, batchSize: 32, lr: 3e-3, emaDecay: 0.99, evalEvery: steps, logEvery: 50, ...extra,
});

test('token files: int16 on disk, int64 in memory, labels and K read back; bad files are explained', () => {
  const ts = readTokenFile(trainFile);
  assert.equal(ts.tokens.dtype, 'int64');
  assert.deepEqual(ts.tokens.shape, [1200, H, W]);
  assert.equal(ts.K, K);
  assert.deepEqual(ts.labels!.narrow(0, 0, 5).toNumbers(), Array.from(data.labels.slice(0, 5)));
  assert.deepEqual(ts.tokens.flatten().narrow(0, 0, 32).toNumbers(), Array.from(data.tokens.slice(0, 32), Number));
  const raw = JSON.parse(readFileSync(trainFile).subarray(8, 8 + Number(readFileSync(trainFile).readBigUInt64LE(0))).toString());
  assert.equal(raw.tokens.dtype, 'I16');
  const bad = join(dir, 'bad.safetensors');
  saveSafetensors(bad, { tokens: randint(0, 4, [3, 16]) });
  assert.throws(() => readTokenFile(bad), /integer \[N, h, w\] grid, got int64 \[3, 16\]/);
  saveSafetensors(bad, { grids: randint(0, 4, [3, 4, 4]) });
  assert.throws(() => readTokenFile(bad), /no 'tokens' tensor/);
  writeTokenFile(bad, tensor(new BigInt64Array(48).fill(8n), [3, 4, 4]), { K: 8 });
  assert.throws(() => readTokenFile(bad), /but K = 8/);
});

test('a tiny chain (T=2, K=8) trains: each scale\'s validation NLL falls; checkpoints, manifest and chain NLL', async (t) => {
  const started = performance.now();
  const nll: Record<number, { before: number; after: number; afterEma: number; stepsPerSecond: number }> = {};
  for (const [scale, steps] of [[1, 150], [2, 100]] as const) {
    const trainer = new ScaleTrainer(config(scale, steps), { log: () => {} });
    const before = trainer.validate().nll;
    const r = await trainer.run();
    const last = r.history.at(-1)!;
    nll[scale] = { before, after: last.nll, afterEma: last.nllEma, stepsPerSecond: r.stepsPerSecond };
    t.diagnostic(`scale ${scale}: val NLL ${before.toFixed(3)} → ${last.nll.toFixed(3)} bits/token (EMA ${last.nllEma.toFixed(3)}), ${r.stepsPerSecond.toFixed(1)} steps/s`);
  }
  assert.ok(nll[1].after < 0.3 * nll[1].before, `scale 1 NLL ${nll[1].before} → ${nll[1].after}`);
  assert.ok(nll[2].after < nll[2].before - 0.1, `scale 2 NLL ${nll[2].before} → ${nll[2].after}`);

  const manifestPath = join(dir, 'chain.json');
  writeManifest(manifestPath, chainManifest({
    vqgan: null, remap: null, K, T: 2, schedule: 'geometric', tokenShape: [H, W], conditioning: NONE,
    scales: [{ t: 2, checkpoint: 'scale2/checkpoint.safetensors' }, { t: 1, checkpoint: 'scale1/checkpoint.safetensors' }],
  }));
  const chain = loadChain(manifestPath);
  assert.deepEqual(chain.denoisers.map((d) => d.t), [1, 2]);
  const card = modelCard(chain.manifest, chain.resolve, { title: 'tiny', metrics: [{ kind: 'samples', n: 10, seed: 0, frechet: 1.5, confident: 0.5 }] });
  assert.match(card, /\| 1 \| encoder 1 \/ decoder 1 layers × 32 \| [0-9.]+M \| 150 \|/);
  assert.match(card, /\| 2 \| GPT, 1 layers × 32 \|/);
  assert.match(card, /\| samples \| 10 \| 0 \| 1\.50 \|/);
  const tuned = modelCard(chain.manifest, chain.resolve, { title: 'tiny', metrics: [{ kind: 'samples', n: 10, seed: 0, frechet: 1.5, settings: { temperature: 0.9, topK: 20 } }] });
  assert.match(tuned, /\| samples temperature 0\.9, top-k 20 \| 10 \|/, 'rows sampled with other settings say so');
  assert.doesNotMatch(card, /map IoU/, 'no IoU column without a segmentation record');
  const seg = modelCard(chain.manifest, chain.resolve, { title: 'tiny', metrics: [{ kind: 'samples', n: 10, seed: 0, frechet: 1.5, segmentationIoU: 0.625 }] });
  assert.match(seg, /map IoU \|\n.*\n\| samples \| 10 \| 0 \| 1\.50 \|.* 0\.625 \|/);
  // a chain shipped with a guide (here itself): its rows, the default, and which records were guided
  const guided = modelCard({ ...chain.manifest, guide: { scale: 2, scales: chain.manifest.scales } }, chain.resolve, { title: 'tiny', metrics: [
    { kind: 'samples', n: 10, seed: 0, frechet: 1.5, guidance: 2, guidedBy: 'weaker chain' }, { kind: 'samples', n: 10, seed: 0, frechet: 2.5, guidance: 1, guidedBy: 'weaker chain' }] });
  assert.match(guided, /\| guide 1 \| encoder 1 \/ decoder 1 layers × 32 \|/);
  assert.match(guided, /guides it by default at s = 2/);
  assert.match(guided, /\| samples autoguidance 2 \| 10 \| 0 \| 1\.50 \|/);
  assert.match(guided, /\| samples no guidance \| 10 \| 0 \| 2\.50 \|/);
  assert.deepEqual(chain.manifest.beta, [0, 0.5, 1]);
  const test = readTokenFile(trainFile).tokens.narrow(0, 0, 256);
  const r = chainNll(chain.denoisers, test, chain.schedule, { batchSize: 64 });
  t.diagnostic(`chain negative ELBO ${r.total.toFixed(3)} bits/token (scales ${r.perScale.map((x) => x.toFixed(3)).join(' + ')}, prior ${r.prior}); uniform ${Math.log2(K)}`);
  assert.equal(r.prior, 0);
  assert.ok(Math.abs(r.total - r.perScale[0] - r.perScale[1]) < 1e-12);
  assert.ok(r.total < 0.5 * Math.log2(K), 'the chain beats the uniform code by far');
  assert.ok(Math.abs(r.perScale[1] - nll[2].afterEma) < 0.1, 'scale 2 term ≈ its EMA validation NLL');
  t.diagnostic(`training + evaluation took ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

test('training resumes from its checkpoint; a checkpoint of another model is refused; EMA vs training weights load', async () => {
  const lines: string[] = [];
  const trainer = new ScaleTrainer(config(2, 110, { evalEvery: 5 }), { log: (l) => lines.push(l) });
  const r = await trainer.run();
  assert.ok(lines.some((l) => /resumed from .* at step 100/.test(l)), lines.join('\n'));
  assert.equal(r.step, 110);
  assert.deepEqual(r.history.map((h) => h.step), [0, 100, 105, 110], "history carried over from the first run");
  assert.equal(trainer.optimizer.step, 110);
  const other = new ScaleTrainer(config(2, 110, { model: { type: 'gpt', dim: 16, heads: 2, depth: 1 } }), { log: () => {} });
  await assert.rejects(() => other.run(), /belongs to another scale or model/);
  const path = join(dir, 'scale2', 'checkpoint.safetensors');
  const ema = loadScaleCheckpoint(path).denoiser, raw = loadScaleCheckpoint(path, { ema: false }).denoiser;
  const w = (d: typeof ema) => d.stateDict().get('transformer.head.weight')!;
  assert.ok(noGrad(() => w(ema).sub(w(raw)).abs().max().item()) > 0);
});

test('a stop request (the signal a SIGTERM handler aborts) saves the step reached, and the run resumes from it', async () => {
  const out = join(dir, 'stopped');
  const stop = new AbortController();
  const trainer = new ScaleTrainer(config(1, 200, { out, logEvery: 10, evalEvery: 1000 }), { log: (l) => { if (/step 30\//.test(l)) stop.abort(); } });
  const r = await trainer.run({ signal: stop.signal });
  assert.deepEqual([r.stopped, r.step], [true, 30]);
  assert.equal(readSafetensorsHeader(r.checkpoint).metadata.step, '30', 'saved at the step it stopped at, not at the last evalEvery');
  const again = new ScaleTrainer(config(1, 40, { out, logEvery: 10, evalEvery: 1000 }), { log: () => {} });
  const r2 = await again.run();
  assert.deepEqual([r2.stopped, r2.step, again.optimizer.step], [false, 40, 40]);
});

test('class-conditional scales read labels as [t, class, …] prefixes', async () => {
  const trainer = new ScaleTrainer(config(1, 4, { chain: { K, T: 2, schedule: 'geometric', conditioning: { kind: 'class', classes: 4, nullable: false } }, out: join(dir, 'cond1'), evalEvery: 4 }), { log: () => {} });
  assert.equal(trainer.denoiser.shape.condLength, 1);
  const r = await trainer.run();
  assert.ok(Number.isFinite(r.history[0].nll));
  assert.throws(() => new ScaleTrainer(config(1, 4, { chain: { K, T: 2, schedule: 'geometric', conditioning: { kind: 'class', classes: 2, nullable: false } } })), /labels must lie in 0\.\.1/);
});

test('manifests are checked: format, β against the schedule, one checkpoint per scale', () => {
  const good = chainManifest({ vqgan: 'vqgan.safetensors', remap: null, K, T: 2, schedule: 'geometric', tokenShape: [H, W], conditioning: NONE,
    scales: [{ t: 1, checkpoint: 'a' }, { t: 2, checkpoint: 'b' }] });
  const path = join(dir, 'm.json');
  writeManifest(path, good);
  assert.deepEqual(readManifest(path), good);
  writeFileSync(path, JSON.stringify({ ...good, beta: [0, 0.4, 1] }));
  assert.throws(() => readManifest(path), /does not match schedule 'geometric'/);
  writeFileSync(path, JSON.stringify({ ...good, scales: [{ t: 1, checkpoint: 'a' }] }));
  assert.throws(() => readManifest(path), /one checkpoint per scale 1\.\.2/);
  writeFileSync(path, JSON.stringify({ ...good, format: 'x' }));
  assert.throws(() => readManifest(path), /field "format": expected "imagebart-chain\/1"/);
  writeFileSync(path, JSON.stringify({ ...good, scales: [{ t: 1, checkpoint: 'scale2/checkpoint.safetensors' }, { t: 2, checkpoint: 'scale2/checkpoint.safetensors' }] }));
  assert.throws(() => loadChain(path), /holds scale 2, not 1/);
});
