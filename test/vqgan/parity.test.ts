/**
 * Parity with the official taming VQModel: test/fixtures/official/vqgan_tiny.safetensors holds weights,
 * an input and every intermediate computed by the official code (see that folder's README §1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Tensor, loadSafetensors, noGrad, tidy } from '../../src/torch/index.js';
import { VQModel, configFromMetadata, modelWeights } from '../../src/vqgan/model.js';
import type { UnknownIndex } from '../../src/vqgan/config.js';

// dist/test/vqgan/parity.test.js → repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'official', 'vqgan_tiny.safetensors');

function fixture(): { t: (name: string) => Tensor; meta: Record<string, string>; tensors: Map<string, Tensor> } {
  if (!existsSync(FIXTURE)) {
    assert.fail(`official parity fixture missing: ${FIXTURE} (it ships with the repository under test/fixtures/official)`);
  }
  const { tensors, metadata } = loadSafetensors(FIXTURE);
  const t = (name: string) => {
    const v = tensors.get(name);
    if (!v) assert.fail(`fixture has no tensor '${name}'`);
    return v;
  };
  return { t, meta: metadata, tensors };
}

function build(meta: Record<string, string>, tensors: Map<string, Tensor>, unknownIndex: UnknownIndex): VQModel {
  const model = new VQModel({ ...configFromMetadata(meta, FIXTURE), unknownIndex });
  const weights = new Map([...modelWeights(tensors)].filter(([k]) => !/^(input|output|given|given_extra)\./.test(k)));
  model.loadStateDict(weights); // strict: every official key and nothing else
  return model.eval();
}

const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().item());
const results: Record<string, number> = {};

function close(name: string, got: Tensor, want: Tensor, atol: number): void {
  assert.deepEqual(got.shape, want.shape, `${name}: shape`);
  const err = maxAbs(got, want);
  results[name] = err;
  assert.ok(err <= atol, `${name}: max |Δ| = ${err} > ${atol}`);
}

function exact(name: string, got: Tensor, want: Tensor): void {
  assert.deepEqual(got.shape, want.shape, `${name}: shape`);
  const diff = tidy(() => got.ne(want).sum().item());
  results[name] = diff;
  assert.equal(diff, 0, `${name}: ${diff} indices differ`);
}

test('VQGAN state-dict keys equal the official ones', () => {
  const { meta, tensors } = fixture();
  const model = new VQModel({ ...configFromMetadata(meta, FIXTURE), unknownIndex: 0 });
  model.loadStateDict(new Map([['quantize.used', tensors.get('quantize.used')!]]), { strict: false });
  const official = [...tensors.keys()].filter((k) => !/^(input|output|given|given_extra)\./.test(k)).sort();
  assert.deepEqual([...model.stateDict().keys()].sort(), official);
  assert.equal(model.numTokens, Number(meta.re_embed_primary));
  // Real taming checkpoints also hold the loss's LPIPS and discriminator weights: modelWeights drops them.
  const withLoss = new Map([...tensors, ['loss.logvar', tensors.get('quant_conv.bias')!], ['loss.discriminator.main.0.weight', tensors.get('quant_conv.weight')!]]);
  assert.ok([...modelWeights(withLoss).keys()].every((k) => !k.startsWith('loss.')));
});

test('VQGAN reproduces the official encoder, quantizer (with remap) and decoder outputs', () => {
  const { t, meta, tensors } = fixture();
  const model = build(meta, tensors, Number(meta.unknown_index_primary));
  assert.equal(model.numTokens, 36);
  noGrad(() => tidy(() => {
    const x = t('input.x');
    const h = model.encoder.forward(x);
    close('h_enc', h, t('output.h_enc'), 1e-4);
    const hq = model.quantConv.forward(h);
    close('h_quant_conv', hq, t('output.h_quant_conv'), 1e-4);
    const { zq, indices, loss, codes } = model.encode(x);
    exact('indices_raw', codes, t('output.indices_raw'));
    exact('indices_remap', indices, t('output.indices_remap'));
    close('z_q', zq, t('output.z_q'), 1e-5);
    const want = t('output.codebook_loss').item();
    results.codebook_loss_rel = Math.abs(loss.item() - want) / Math.abs(want);
    assert.ok(results.codebook_loss_rel <= 1e-5, `codebook_loss ${loss.item()} vs ${want}`);
    close('rec', model.decode(zq), t('output.rec'), 1e-4);
    assert.deepEqual(model.encodeToIndices(x).shape, [2, 16, 16]);

    const zqGiven = model.quantize.getCodebookEntry(t('given.indices'));
    close('given.z_q', zqGiven, t('given.z_q'), 1e-5);
    close('given.post_quant_conv', model.postQuantConv.forward(zqGiven), t('given.post_quant_conv'), 1e-4);
    close('given.dec', model.decodeIndices(t('given.indices')), t('given.dec'), 1e-4);
  }));
});

test('VQGAN with unknown_index "extra" matches the official extra-id quantizer', () => {
  const { t, meta, tensors } = fixture();
  const model = build(meta, tensors, 'extra');
  assert.equal(model.numTokens, Number(meta.re_embed_extra));
  noGrad(() => tidy(() => {
    const { indices, loss } = model.encode(t('input.x'));
    exact('indices_remap_extra', indices, t('output.indices_remap_extra'));
    const want = Number(meta.codebook_loss_extra_quantizer);
    assert.ok(Math.abs(loss.item() - want) / want <= 1e-5, `extra codebook loss ${loss.item()} vs ${want}`);
    close('given_extra.z_q', model.quantize.getCodebookEntry(t('given_extra.indices')), t('given_extra.z_q'), 1e-5);
    close('given_extra.dec', model.decodeIndices(t('given_extra.indices')), t('given_extra.dec'), 1e-4);
  }));
  console.log(`vqgan parity max errors: ${JSON.stringify(results)}`);
});
