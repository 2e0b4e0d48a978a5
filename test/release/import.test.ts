/**
 * `importRelease` on the tiny official release (test/fixtures/official-release/tiny): the imported
 * model directory reproduces the official code's outputs (expected.safetensors) with the EMA
 * weights, and samples and edits class-conditionally end to end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, loadSafetensors, noGrad, setThreads, tensor, tidy } from '../../src/torch/index.js';
import { loadChain, readScaleCheckpoint } from '../../src/chain/index.js';
import { loadVQModel } from '../../src/vqgan/index.js';
import { loadSamplingChain, maskedEdit, sample, decodeTokens, namedMask, editImage } from '../../src/sample/index.js';
import { importRelease } from '../../src/release/index.js';
import { TINY, releasePath, tempDir } from './fixtures.js';

const expected = loadSafetensors(releasePath('tiny/expected.safetensors')).tensors;
const want = (k: string): Tensor => {
  const t = expected.get(k);
  assert.ok(t, `expected.safetensors has no ${k}`);
  return t;
};
const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => {
  assert.deepEqual(a.shape, b.shape);
  return a.float().sub(b.float()).abs().max().item();
});

setThreads({ intraOp: 1, blas: 1 }); // token-by-token decoding is latency-bound (as the CLI runs it)
const out = join(tempDir(), 'tiny-model');
const imported = importRelease(TINY(), out);

test('import writes a model directory: manifest, one scale file per scale, the VQGAN and a model card', () => {
  for (const f of imported.files) assert.ok(existsSync(f), `${f} is missing`);
  const manifest = JSON.parse(readFileSync(imported.manifest, 'utf-8'));
  assert.equal(manifest.K, 40);
  assert.equal(manifest.T, 3);
  assert.deepEqual(manifest.conditioning, { kind: 'class', classes: 48, nullable: false });
  assert.deepEqual(manifest.tokenShape, [8, 8]);
  assert.deepEqual(manifest.sampling, { topK: 40 }); // the official 100, clamped to K
  const card = readFileSync(join(out, 'README.md'), 'utf-8');
  assert.match(card, /K_eff 40/);
  assert.match(card, /tanh_out \(taming's Decoder ignores it/);
  const scale3 = readScaleCheckpoint(join(out, 'scale3.safetensors'));
  assert.equal(scale3.emaUpdates, 50000);
  assert.equal(scale3.model.size, 2, 'the GPT masks, the only buffers, travel as model.*');
  assert.ok([...scale3.ema.keys()].every((k) => k.startsWith('transformer.')));
});

test('the schedule of the imported chain is the official one (from the YAML alone)', () => {
  const { schedule } = loadChain(imported.manifest);
  for (const k of ['beta', 'alpha', 'alphacum'] as const) {
    const w = want(`schedule.${k}`).toNumbers();
    schedule[k].forEach((v, i) => assert.ok(Math.abs(v - w[i]!) < 1e-7, `${k}[${i}] ${v} vs ${w[i]}`));
  }
});

test('per-scale logits with the EMA weights equal the official code\'s within 1e-4', () => {
  const { denoisers } = loadChain(imported.manifest);
  const cond = want('input.class_label').view(2, 1);
  noGrad(() => {
    for (const d of denoisers) {
      const xt = want(`scale${d.t}.x_t`).reshape(2, 64);
      const xtm1 = want(`scale${d.t}.x_tm1`).reshape(2, 64);
      const err = maxAbs(d.logits(xt, xtm1, cond), want(`scale${d.t}.logits`));
      assert.ok(err < 1e-4, `scale ${d.t}: max |Δ| = ${err}`);
      const train = maxAbs(d.logits(xt, xtm1, cond), want(`scale${d.t}.logits_train`));
      assert.ok(train > 1e-2, `scale ${d.t}: the logits should be the EMA weights', not the training weights' (Δ ${train})`);
    }
  });
});

test('the imported VQGAN decodes, looks up codes and encodes as the official first stage', () => {
  const vq = loadVQModel(join(out, 'vqgan.safetensors'));
  assert.equal(vq.numTokens, 40);
  noGrad(() => {
    const idx = want('vqgan.indices');
    assert.ok(maxAbs(vq.quantize.unmapToAll(idx), want('vqgan.indices_unmapped')) === 0);
    assert.ok(maxAbs(vq.quantize.getCodebookEntry(idx), want('vqgan.z_q')) < 1e-4);
    const dec = maxAbs(vq.decodeIndices(idx), want('vqgan.dec'));
    assert.ok(dec < 1e-4, `decode: max |Δ| = ${dec}`);
    const enc = maxAbs(vq.encodeToPrequant(want('vqgan.enc_input')), want('vqgan.enc_prequant'));
    assert.ok(enc < 1e-4, `encode: max |Δ| = ${enc}`);
  });
});

test('class-conditional sampling and editing run end to end on the imported model', () => {
  const { chain, firstStage } = loadSamplingChain(imported.manifest);
  const cond = want('input.class_label').view(2, 1);
  const r = sample(chain, { batch: 2, cond, seed: 3 });
  assert.deepEqual(r.tokens.shape, [2, 8, 8]);
  assert.equal(r.settings[1]!.topK, 40, 'the model card\'s default top-k applies');
  const ids = r.tokens.toNumbers();
  assert.ok(ids.every((v) => v >= 0 && v < 40));
  const again = sample(chain, { batch: 2, cond, seed: 3 });
  assert.deepEqual(again.tokens.toNumbers(), ids, 'a seed reproduces the sample');
  const img = decodeTokens(firstStage, r.tokens);
  assert.equal(img.height, 16);
  assert.ok(img.data.every(Number.isFinite));
  // edit: keep the lower half of the official x_0, repaint the upper half
  const x0 = want('chain.x').select(0, 0);
  const keep = tensor(Uint8Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)), [1, 8, 8]).bool();
  const e = maskedEdit(chain, x0, keep, { cond, seed: 5, repeats: 1 });
  const [got, orig] = [e.tokens.toNumbers(), x0.toNumbers()];
  for (let b = 0; b < 2; b++) for (let i = 32; i < 64; i++) assert.equal(got[b * 64 + i], orig[b * 64 + i], 'kept tokens stay');
  const picture = { width: 16, height: 16, rgba: new Uint8Array(16 * 16 * 4).fill(128) };
  const pic = editImage(chain, firstStage, picture, namedMask('upper-half', 16), { cond: cond.narrow(0, 0, 1), seed: 1, count: 1, repeats: 1 });
  assert.equal(pic.images.length, 3 * 16 * 16);
});
