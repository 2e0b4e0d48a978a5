/** VQGAN training: a tiny model learns MNIST; checkpoints resume exactly; broken checkpoints fail clearly. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tensor, tidy, noGrad, loadSafetensors } from '../../src/torch/index.js';
import { loadMnist, subset, collate } from '../../src/data/index.js';
import { makeConfig } from '../../src/vqgan/config.js';
import { DEFAULT_LOSS } from '../../src/vqgan/loss.js';
import { loadVQModel } from '../../src/vqgan/model.js';
import { VQGANTrainer, CHECKPOINT, FINAL_MODEL, type VQGANTrainConfig } from '../../src/vqgan/trainer.js';

const RES = 16;
const first = (n: number) => Array.from({ length: n }, (_, i) => i);
const train = subset(loadMnist({ split: 'train', resolution: RES }), first(512));
const val = subset(loadMnist({ split: 'test', resolution: RES }), first(64));

/** ch 16, ch_mult [1, 2], one res block, no attention, 32 codes: 16×16 MNIST → 8×8 tokens. */
function config(over: Partial<VQGANTrainConfig> = {}): VQGANTrainConfig {
  return {
    model: makeConfig({
      ddconfig: { resolution: RES, inChannels: 1, outCh: 1, ch: 16, chMult: [1, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 8 },
      nEmbed: 32, embedDim: 8,
    }),
    loss: { ...DEFAULT_LOSS, discStart: 1_000_000, discNumLayers: 2, discNdf: 16 },
    lr: 2e-3, batchSize: 16, steps: 200, seed: 0,
    logEvery: 50, sampleEvery: 100, valEvery: 100, checkpointEvery: 100, valImages: 64,
    ...over,
  };
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'vqgan-test-'));
const quiet = { write: () => {} };

test('a tiny VQGAN trains 200 steps on 512 MNIST images and its validation L1 falls at least 4×', async () => {
  const dir = tmp();
  try {
    const t = new VQGANTrainer(config(), { outDir: dir, train, val, ...quiet });
    const before = t.validate();
    const t0 = performance.now();
    const after = (await t.train())!;
    const seconds = (performance.now() - t0) / 1000;
    console.log(`tiny VQGAN: ${(200 / seconds).toFixed(1)} steps/s (incl. 2 validations, samples, checkpoints); ` +
      `val L1 ${before.l1.toFixed(4)} → ${after.l1.toFixed(4)}, PSNR ${before.psnr.toFixed(2)} → ${after.psnr.toFixed(2)} dB, codes ${after.usedCodes}/32, perplexity ${after.perplexity.toFixed(1)}`);
    assert.equal(t.step, 200);
    assert.ok(after.l1 * 4 <= before.l1, `val L1 ${before.l1} → ${after.l1}`);
    assert.ok(after.psnr > before.psnr + 8, `PSNR ${before.psnr} → ${after.psnr}`);
    assert.deepEqual(readdirSync(join(dir, 'samples')).sort(), ['step_000100.png', 'step_000200.png']);
    assert.ok(existsSync(join(dir, CHECKPOINT)) && existsSync(join(dir, FINAL_MODEL)));
    const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
    assert.equal(log.filter((l) => l.kind === 'val').length, 3);
    // The exported model reproduces the trainer's reconstructions.
    const m = loadVQModel(join(dir, FINAL_MODEL));
    noGrad(() => tidy(() => {
      const x = tensor(collate(val, first(8)).images, [8, 1, RES, RES]);
      const d = m.forward(x).rec.sub(t.model.forward(x).rec).abs().max().item();
      assert.ok(d < 1e-6, `exported model differs by ${d}`);
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** All tensors of a trainer's state under checkpoint names. */
function state(t: VQGANTrainer): Map<string, Tensor> {
  const out = new Map<string, Tensor>(t.model.stateDict());
  for (const [k, v] of t.loss.stateDict()) out.set(`loss.${k}`, v);
  [t.optAE, t.optDisc].forEach((o, i) => { for (const [k, v] of o.stateDict().tensors) out.set(`optimizer.${i}.${k}`, v); });
  return out;
}

function assertSameState(a: Map<string, Tensor>, b: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: keys`);
  for (const [k, v] of a) {
    const d = tidy(() => v.double().sub(b.get(k)!.double()).abs().max().item());
    assert.equal(d, 0, `${what}: ${k} differs by ${d}`);
  }
}

test('resume after an interruption continues at the saved step with identical optimiser state', async () => {
  const [dirA, dirC] = [tmp(), tmp()];
  try {
    // Discriminator on from step 2, so both optimisers have moments to restore.
    const cfg = config({ steps: 6, checkpointEvery: 3, logEvery: 1, sampleEvery: 100, valEvery: 100, valImages: 8, loss: { ...config().loss, discStart: 2 } });
    // Run A is "killed" after step 5: its last checkpoint is from step 3.
    const stop = new AbortController();
    const a = new VQGANTrainer(cfg, { outDir: dirA, train, val, write: (s) => { if (s.startsWith('step 5/')) stop.abort(); } });
    await a.train({ signal: stop.signal });
    assert.equal(a.step, 5);
    const saved = loadSafetensors(join(dirA, CHECKPOINT));
    assert.equal(saved.metadata.step, '3');

    const b = new VQGANTrainer(cfg, { outDir: dirA, train, val, ...quiet });
    b.resume();
    assert.equal(b.step, 3);
    assert.equal(b.optAE.step, 3);
    assert.equal(b.optDisc.step, 1);
    assertSameState(state(b), saved.tensors, 'resumed vs checkpoint');
    await b.train();

    // The same 6 steps without interruption end in the same state, bit for bit.
    const c = new VQGANTrainer(cfg, { outDir: dirC, train, val, ...quiet });
    await c.train();
    assert.equal(b.step, 6);
    assertSameState(state(b), state(c), 'resumed run vs uninterrupted run');
    // log.jsonl: steps 4 and 5 of the killed run are dropped on resume, so each step is logged once, as without the kill
    const steps = (dir: string) => readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; step: number })
      .filter((l) => l.kind === 'train').map((l) => l.step);
    assert.deepEqual(steps(dirA), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(steps(dirA), steps(dirC));
  } finally {
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirC, { recursive: true, force: true });
  }
});

test('a truncated checkpoint gives a clear error naming the file', async () => {
  const dir = tmp();
  try {
    const t = new VQGANTrainer(config({ steps: 1 }), { outDir: dir, train, val, ...quiet });
    t.saveCheckpoint();
    const full = join(dir, CHECKPOINT);
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, readFileSync(full).subarray(0, Math.floor(statSync(full).size * 0.6)));
    assert.throws(() => loadVQModel(cut), (e: Error) => e.message.includes(cut) && /truncated/.test(e.message));
    assert.throws(() => t.resume(cut), /truncated/);
    writeFileSync(cut, 'not a checkpoint');
    assert.throws(() => loadVQModel(cut), (e: Error) => e.message.includes('cannot read VQGAN checkpoint'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
