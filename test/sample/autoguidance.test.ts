/**
 * Autoguidance: logits l_w + s·(l − l_w) of a chain guided by a weaker chain of the same process —
 * s = 0 samples the weaker chain, a chain guiding itself samples as unguided, the weaker chain must
 * match the chain, a manifest's guide loads, exports and is the default a run can switch off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor } from '../../src/torch/index.js';
import { chainFiles, exportChain, readManifest } from '../../src/chain/index.js';
import { sample, maskedEdit, checkWeakChain, loadSamplingChain, type SamplingChain } from '../../src/sample/index.js';
import { Pipeline } from '../../src/pipeline/index.js';
import { saveTinyChain, tinyChain } from './tiny.js';

const chain = tinyChain({ K: 16, T: 3, seed: 3 });
const weak = tinyChain({ K: 16, T: 3, seed: 4, dim: 8 });
const same = (a: { toNumbers(): number[] }, b: { toNumbers(): number[] }, what?: string) => assert.deepEqual(a.toNumbers(), b.toNumbers(), what);

test('s = 0 samples the weaker chain, s = 1 the chain, and a chain guiding itself samples as unguided', () => {
  same(sample(chain, { batch: 4, seed: 5, guidance: { scale: 0, weak } }).tokens, sample(weak, { batch: 4, seed: 5 }).tokens, 's = 0');
  const plain = sample(chain, { batch: 4, seed: 5 });
  same(sample(chain, { batch: 4, seed: 5, guidance: { scale: 1, weak } }).tokens, plain.tokens, 's = 1');
  same(sample(chain, { batch: 4, seed: 5, guidance: { scale: 3, weak: chain } }).tokens, plain.tokens, 'guided by itself');
  const guided = sample(chain, { batch: 4, seed: 5, guidance: { scale: 3, weak } });
  assert.notDeepEqual(guided.tokens.toNumbers(), plain.tokens.toNumbers(), 'a weaker chain and s > 1 change the samples');
  same(sample(chain, { batch: 4, seed: 5, guidance: { scale: 3, weak }, decoding: 'uncached' }).tokens, guided.tokens, 'cached = uncached');
});

test('autoguided edits keep the kept tokens; a larger grid is guided window by window', () => {
  const x0 = tensor(BigInt64Array.from({ length: 2 * 16 }, (_, i) => BigInt(i % 16)), [2, 4, 4]);
  const keep = tensor(Uint8Array.from({ length: 16 }, (_, i) => (i >= 8 ? 1 : 0)), [1, 4, 4]).bool();
  const out = maskedEdit(chain, x0, keep, { seed: 2, guidance: { scale: 2, weak } }).tokens.toNumbers(), inp = x0.toNumbers();
  for (let b = 0; b < 2; b++) for (let i = 8; i < 16; i++) assert.equal(out[b * 16 + i], inp[b * 16 + i]);
  const wide = sample(chain, { batch: 2, seed: 3, grid: [4, 6], guidance: { scale: 0, weak } });
  same(wide.tokens, sample(weak, { batch: 2, seed: 3, grid: [4, 6] }).tokens, 's = 0 on a sliding window');
});

test('the weaker chain must be a chain of the same process', () => {
  const refuse = (other: SamplingChain, what: RegExp) => {
    assert.throws(() => checkWeakChain(chain, other), what);
    assert.throws(() => sample(chain, { batch: 1, seed: 1, guidance: { scale: 2, weak: other } }), what);
  };
  refuse(tinyChain({ K: 16, T: 2 }), /number of scales T/);
  refuse(tinyChain({ K: 12, T: 3 }), /codebook size K/);
  refuse(tinyChain({ K: 16, T: 3, schedule: 0.3 }), /schedule β/);
  refuse(tinyChain({ K: 16, T: 3, shape: [4, 2] }), /token grid/);
  refuse(tinyChain({ K: 16, T: 3, classes: 4 }), /conditioning/);
  assert.throws(() => sample(chain, { batch: 1, seed: 1, guidance: { scale: 2 } }), /exactly one reference/);
});

test('a manifest guide: loaded as the default guidance, switched off by s = 1, exported with the chain, refused when incomplete', () => {
  const dir = mkdtempSync(join(tmpdir(), 'imagebart-autoguide-'));
  try {
    for (const d of ['plain', 'guide']) mkdirSync(join(dir, d));
    const plainPath = saveTinyChain(join(dir, 'plain'), { K: 16, T: 2 });
    const guidePath = saveTinyChain(join(dir, 'guide'), { K: 16, T: 2, seed: 7 });
    const m = readManifest(plainPath);
    const path = join(dir, 'plain', 'guided.json');
    writeFileSync(path, JSON.stringify({ ...m, guide: { scale: 2, scales: m.scales.map((s) => ({ t: s.t, checkpoint: `../guide/scale${s.t}.safetensors` })) } }));
    const guided = loadSamplingChain(path).chain, plain = loadSamplingChain(plainPath).chain;
    const weakChain = loadSamplingChain(guidePath).chain;
    assert.equal(guided.guidance?.scale, 2);
    same(sample(guided, { batch: 3, seed: 4 }).tokens, sample(plain, { batch: 3, seed: 4, guidance: { scale: 2, weak: weakChain } }).tokens, 'the default is the guide at its scale');
    same(sample(guided, { batch: 3, seed: 4, guidance: { scale: 1, weak: guided.guidance!.weak! } }).tokens, sample(plain, { batch: 3, seed: 4 }).tokens, 's = 1 is off');
    assert.ok(chainFiles(path, readManifest(path)).some((f) => f.endsWith(join('guide', 'scale2.safetensors'))), 'chainFiles names the guide');

    // the pipeline: what a client sees, the default recorded, --guidance 1 off
    const model = Pipeline.load(path);
    assert.deepEqual(model.info.guidance, { reference: 'weaker chain', default: 2 });
    assert.equal(Pipeline.load(plainPath).info.guidance, null);
    const byDefault = model.sample({ count: 2, seed: 11 });
    assert.equal(byDefault.sidecar.guidance, 2);
    const off = model.sample({ count: 2, seed: 11, guidance: 1 });
    same({ toNumbers: () => Array.from(off.images[0]!) }, { toNumbers: () => Array.from(Pipeline.load(plainPath).sample({ count: 2, seed: 11 }).images[0]!) }, 'guidance 1 = the chain alone');

    // export copies the guide's checkpoints beside the chain's
    const out = exportChain(path, join(dir, 'export'), { half: true, copyVQGAN: (src, dst) => writeFileSync(dst, readFileSync(src)) });
    const exported = readManifest(out);
    assert.deepEqual(exported.guide?.scales.map((s) => s.checkpoint), ['guide-scale1.safetensors', 'guide-scale2.safetensors']);
    const reloaded = loadSamplingChain(out).chain;
    assert.equal(reloaded.guidance?.weak?.denoisers.length, 2);
    assert.equal(sample(reloaded, { batch: 2, seed: 6 }).tokens.size(0), 2, 'the exported chain samples with its guide');

    writeFileSync(path, JSON.stringify({ ...m, guide: { scale: 2, scales: [{ t: 1, checkpoint: '../guide/scale1.safetensors' }] } }));
    assert.throws(() => loadSamplingChain(path), /its guide \(autoguidance\) needs one checkpoint per scale 1\.\.2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
