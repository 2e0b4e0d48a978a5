/**
 * The official-layout PyTorch Lightning checkpoints of test/fixtures/official (README, last
 * section): they load without Python, their weights equal the parity fixtures bit for bit, and the
 * models built from them reproduce the official outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, loadSafetensors, noGrad, tidy } from '../../src/torch/index.js';
import { VQModel, configFromMetadata, modelWeights } from '../../src/vqgan/model.js';
import { XTransformer, ResidualScaledXTransformer, type XTransformerConfig } from '../../src/chain/xtransformer.js';
import { readTorchCheckpoint, stateDictFromCheckpoint, CheckpointError } from '../../src/io/torchckpt.js';
import { PickledObject } from '../../src/io/pickle.js';
import { splitPrefix, emaStateDict } from '../../src/io/statedict.js';
import { fixturePath, tempDir } from './fixtures.js';

const PWNED = '/tmp/imagebart-pickle-code-ran';
const NOT_WEIGHTS = /^(input|output|given|given_extra|aux)\./;

function fixture(file: string): { tensors: Map<string, Tensor>; meta: Record<string, string>; get: (k: string) => Tensor } {
  const { tensors, metadata } = loadSafetensors(fixturePath(file));
  return { tensors, meta: metadata, get: (k) => { const t = tensors.get(k); assert.ok(t, `${file} has no '${k}'`); return t; } };
}
const vq = fixture('vqgan_tiny.safetensors');
const xt = fixture('xtransformer_tiny.safetensors');
const vqWeights = new Map([...vq.tensors].filter(([k]) => !NOT_WEIGHTS.test(k)));

/** Same dtype, shape and bytes. */
function assertIdentical(got: Tensor | undefined, want: Tensor, what: string): void {
  assert.ok(got, `${what}: missing`);
  assert.equal(got.dtype, want.dtype, `${what}: dtype`);
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  assert.deepEqual(Buffer.from(got.toArray().buffer), Buffer.from(want.toArray().buffer), `${what}: values differ`);
}
const maxAbs = (a: Tensor, b: Tensor): number => tidy(() => { assert.deepEqual(a.shape, b.shape); return a.sub(b).abs().max().item(); });

for (const file of ['vqgan_tiny.ckpt', 'vqgan_tiny_legacy.ckpt']) {
  test(`${file}: Lightning layout, weights identical to vqgan_tiny.safetensors, VQModel reproduces output.rec`, (ctx) => {
    const ck = readTorchCheckpoint(fixturePath(file)) as Record<string, unknown>;
    assert.equal(ck.epoch, 3);
    assert.equal(ck.global_step, 1234);
    assert.equal((ck.optimizer_states as unknown[]).length, 2);
    const sd = stateDictFromCheckpoint(ck);
    const loss = [...sd.keys()].filter((k) => k.startsWith('loss.'));
    assert.equal(loss.length, 4);
    const weights = modelWeights(sd);
    assert.deepEqual([...weights.keys()].sort(), [...vqWeights.keys()].sort());
    for (const [k, want] of vqWeights) assertIdentical(weights.get(k), want, k);

    const model = new VQModel({ ...configFromMetadata(vq.meta), unknownIndex: Number(vq.meta.unknown_index_primary) });
    model.loadStateDict(weights);
    model.eval();
    noGrad(() => tidy(() => {
      const { zq, indices } = model.encode(vq.get('input.x'));
      assert.equal(indices.ne(vq.get('output.indices_remap')).sum().item(), 0, 'indices');
      const err = maxAbs(model.decode(zq), vq.get('output.rec'));
      ctx.diagnostic(`rec max abs error ${err}`);
      assert.ok(err <= 1e-4, `rec: max |Δ| = ${err}`);
    }));
  });
}

test('imagebart_scale_tiny.ckpt: the DictConfig in hyper_parameters is refused by default and skipped with skipUnknown', () => {
  const path = fixturePath('imagebart_scale_tiny.ckpt');
  assert.throws(() => readTorchCheckpoint(path), (e: Error) => e instanceof CheckpointError && e.message.includes(path) && /refusing to unpickle omegaconf\.dictconfig\.DictConfig/.test(e.message));
  const unknown: string[] = [];
  const ck = readTorchCheckpoint(path, { skipUnknown: true, onUnknownGlobal: (g) => unknown.push(g) }) as Record<string, Record<string, unknown>>;
  assert.deepEqual(unknown, ['omegaconf.dictconfig.DictConfig']);
  const cfg = ck.hyper_parameters!.transformer_config;
  assert.ok(cfg instanceof PickledObject && cfg.global === 'omegaconf.dictconfig.DictConfig');
  const sd = stateDictFromCheckpoint(ck);
  const first = splitPrefix(sd, 'first_stage_model.');
  assert.deepEqual([...first.keys()].sort(), [...vqWeights.keys()].sort());
  for (const [k, want] of vqWeights) assertIdentical(first.get(k), want, `first_stage_model.${k}`);
  assert.equal(sd.get('transformer_ema.num_updates')?.dtype, 'int32');
  assert.deepEqual(sd.get('transformer_ema.decay')?.shape, []);
});

test('imagebart_scale_tiny.ckpt: EMA weights mapped back reproduce the official logits; the training weights do not', (ctx) => {
  const sd = stateDictFromCheckpoint(readTorchCheckpoint(fixturePath('imagebart_scale_tiny.ckpt'), { skipUnknown: true }));
  const kw = JSON.parse(xt.meta.xtransformer_kwargs!) as Record<string, number>;
  const extra = JSON.parse(xt.meta.residual_scaled_extra_kwargs!) as Record<string, number>;
  const cfg: XTransformerConfig = {
    dim: kw.dim!,
    encoder: { numTokens: kw.enc_num_tokens!, maxSeqLen: kw.enc_max_seq_len!, depth: kw.enc_depth!, heads: kw.enc_heads! },
    decoder: { numTokens: kw.dec_num_tokens!, maxSeqLen: kw.dec_max_seq_len!, depth: kw.dec_depth!, heads: kw.dec_heads! },
  };
  const src = xt.get('input.src'), tgt = xt.get('input.tgt');
  noGrad(() => tidy(() => {
    const m = new XTransformer(cfg).eval();
    const ema = emaStateDict(sd, 'transformer.', m.stateDict().keys());
    assert.deepEqual(ema.fromTraining, [], 'every XTransformer weight has an EMA shadow');
    assert.deepEqual(ema.unused, ['log_scalors'], 'only the ResidualScaled extra is left over');
    for (const [k, v] of ema.weights) assertIdentical(v, xt.get(k), `EMA ${k}`);
    m.loadStateDict(ema.weights);
    const err = maxAbs(m.forward(src, tgt), xt.get('output.logits'));
    ctx.diagnostic(`EMA logits max abs error ${err}`);
    assert.ok(err <= 1e-4, `EMA logits: max |Δ| = ${err}`);

    const training = new XTransformer(cfg).eval();
    training.loadStateDict(new Map([...splitPrefix(sd, 'transformer.')].filter(([k]) => k !== 'log_scalors')));
    const errTrain = maxAbs(training.forward(src, tgt), xt.get('output.logits'));
    ctx.diagnostic(`training-weights logits max abs error ${errTrain}`);
    assert.ok(errTrain > 1e-3, `the training weights (fixture + noise) should not reproduce the logits, max |Δ| = ${errTrain}`);

    // The ResidualScaled variant, with log_scalors from the EMA and α_t from the checkpoint's alphats.
    const r = new ResidualScaledXTransformer({ ...cfg, nScales: extra.n_scales!, scalePos: extra.scale_pos!, xtStart: extra.xt_start!, xtSize: extra.xt_size! }).eval();
    r.loadStateDict(emaStateDict(sd, 'transformer.', r.stateDict().keys()).weights);
    r.setAlphas(sd.get('alphats')!.toNumbers());
    const errR = maxAbs(r.forward(src, tgt), xt.get('output.logits_residual_scaled'));
    ctx.diagnostic(`residual-scaled logits max abs error ${errR}`);
    assert.ok(errR <= 1e-4, `residual-scaled logits: max |Δ| = ${errR}`);
  }));
});

test('malicious.ckpt is refused, with or without skipUnknown, and its command never runs', () => {
  rmSync(PWNED, { force: true });
  const path = fixturePath('malicious.ckpt');
  for (const skipUnknown of [false, true]) {
    assert.throws(() => readTorchCheckpoint(path, { skipUnknown }), (e: Error) => e instanceof CheckpointError && e.message.includes(path) && /refusing to unpickle posix\.system/.test(e.message));
  }
  assert.equal(existsSync(PWNED), false, `${PWNED} exists: pickle code ran`);
});

test('truncated and corrupted copies of the official checkpoints give clear errors naming the file', () => {
  const dir = tempDir();
  const zip = readFileSync(fixturePath('vqgan_tiny.ckpt'));
  const legacy = readFileSync(fixturePath('vqgan_tiny_legacy.ckpt'));
  const cases: [string, Uint8Array, RegExp][] = [
    ['zip-half.ckpt', zip.subarray(0, zip.length >> 1), /no end-of-central-directory record: the file is truncated/],
    ['zip-tail.ckpt', zip.subarray(0, zip.length - 30), /no end-of-central-directory record: the file is truncated/],
    ['legacy-half.ckpt', legacy.subarray(0, legacy.length >> 1), /storage '\d+' needs bytes .*truncated/],
    ['legacy-pickle.ckpt', legacy.subarray(0, 5000), /pickle data ends unexpectedly.*truncated/],
  ];
  for (const [name, data, re] of cases) {
    const p = join(dir, name);
    writeFileSync(p, data);
    assert.throws(() => readTorchCheckpoint(p), (e: Error) => e instanceof CheckpointError && e.message.startsWith(`torch checkpoint ${p}: `) && re.test(e.message), name);
  }
  // One flipped byte inside a storage is caught by the zip CRC.
  const bad = Buffer.from(zip);
  bad[bad.length >> 1]! ^= 0x55;
  const p = join(dir, 'flipped.ckpt');
  writeFileSync(p, bad);
  assert.throws(() => readTorchCheckpoint(p), /flipped\.ckpt: entry '.*' fails its CRC-32 check/);
});
