/** Segmentation conditioning at the chain level: the description, map token files, the fused models, training. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, noGrad, manualSeed, randint, saveSafetensors } from '../../src/torch/index.js';
import {
  ScaleTrainer, checkConditioning, conditioningShape, conditionsOf, createDenoiser, describeConditioning, encodeConditions, nullCondition,
  readTokenFile, withMaps, writeTokenFile, type Conditioning, type EncoderDecoderDenoiser,
} from '../../src/chain/index.js';
import { makeSchedule } from '../../src/diffusion/index.js';

const dir = mkdtempSync(join(tmpdir(), 'imagebart-seg-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const seg = (K: number, nullable = true): Conditioning => ({ kind: 'segmentation', vqgan: 'seg-vqgan.safetensors', K, labels: ['background', 'stroke', 'outline'], nullable });

test('segmentation conditions: map tokens per position, the null map K_s, the schema, clear refusals', () => {
  const c = seg(5);
  assert.deepEqual(conditioningShape(c), { condLength: 0, condVocab: 0, mapVocab: 6 });
  assert.deepEqual(conditioningShape(seg(5, false)).mapVocab, 5);
  assert.deepEqual(checkConditioning(c, 'm.json'), c);
  assert.throws(() => checkConditioning({ ...c, K: 1 }, 'm.json'), /field "K"/);
  assert.match(describeConditioning(c), /segmentation \(label maps of background \/ stroke \/ outline, 5-code VQ model, nullable\)/);
  const ids = encodeConditions(c, [{ mapTokens: [0, 1, 2, 4] }, null])!;
  assert.deepEqual(ids.shape, [2, 4]);
  assert.deepEqual(ids.toNumbers(), [0, 1, 2, 4, 5, 5, 5, 5]);
  assert.deepEqual(encodeConditions(c, [null, null], { tokens: 3 })!.toNumbers(), [5, 5, 5, 5, 5, 5]);
  assert.deepEqual(nullCondition(c).shape, [1, 1]);
  assert.deepEqual(nullCondition(c).toNumbers(), [5]);
  assert.throws(() => encodeConditions(c, [{ mapTokens: [0, 5] }]), /token 5 at position 1 outside .* 0\.\.4/);
  assert.throws(() => encodeConditions(c, [{ mapTokens: [0, 1] }, { mapTokens: [0] }]), /1 tokens, but the grid has 2/);
  assert.throws(() => encodeConditions(c, [3]), /takes label maps/);
  assert.throws(() => encodeConditions(seg(5, false), [null], { tokens: 4 }), /no null map/);
  assert.throws(() => nullCondition(seg(5, false)), /dropped conditions/);
  assert.throws(() => encodeConditions({ kind: 'class', classes: 3, nullable: false }, [{ mapTokens: [1] }]), /not on a label map/);
});

test('map token files attach grid for grid: same N, same grid, ids below K_s', () => {
  const images = join(dir, 'images.safetensors'), maps = join(dir, 'maps.safetensors'), bad = join(dir, 'bad.safetensors');
  writeTokenFile(images, randint(0, 8, [6, 2, 3]), { K: 8 });
  writeTokenFile(maps, tensor(BigInt64Array.from({ length: 36 }, (_, i) => BigInt(i % 4)), [6, 2, 3]), { K: 4 });
  const file = withMaps(readTokenFile(images), images, readTokenFile(maps), maps, seg(4));
  assert.deepEqual(conditionsOf(file, seg(4), images, { count: 2 })!.toNumbers(), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  assert.deepEqual(conditionsOf(file, seg(4), images, { idx: tensor(BigInt64Array.from([5n]), [1]) })!.toNumbers(), [2, 3, 0, 1, 2, 3]);
  assert.throws(() => conditionsOf(readTokenFile(images), seg(4), images), /needs the token file of its label maps \(--segmentation-tokens\)/);
  writeTokenFile(bad, randint(0, 4, [5, 2, 3]), { K: 4 });
  assert.throws(() => withMaps(readTokenFile(images), images, readTokenFile(bad), bad, seg(4)), /holds 5 label maps but .* 6 grids/);
  writeTokenFile(bad, randint(0, 4, [6, 3, 2]), { K: 4 });
  assert.throws(() => withMaps(readTokenFile(images), images, readTokenFile(bad), bad, seg(4)), /3×2 label-map grids, .* 2×3 grids/);
  writeTokenFile(bad, tensor(new BigInt64Array(36).fill(6n), [6, 2, 3]), { K: 7 });
  assert.throws(() => withMaps(readTokenFile(images), images, readTokenFile(bad), bad, seg(4)), /K = 7 segmentation codebook, the chain's is K = 4/);
  saveSafetensors(bad, { tokens: tensor(new BigInt64Array(36).fill(6n), [6, 2, 3]) }); // no declared K
  assert.throws(() => withMaps(readTokenFile(images), images, readTokenFile(bad), bad, seg(4)), /ids reach 6 but the segmentation VQ model has K = 4/);
  assert.throws(() => withMaps(readTokenFile(images), images, readTokenFile(maps), maps, { kind: 'none' }), /condition a segmentation chain/);
});

test('the fused models: map tables beside the code tables (PyTorch keys), sequence length unchanged, the map matters', () => {
  manualSeed(0);
  const shape = { K: 8, T: 2, tokens: 6, mapVocab: 5 };
  const schedule = makeSchedule('geometric', 2);
  const ed = createDenoiser(1, { type: 'xtransformer', dim: 16, heads: 2, dimHead: 8, encoderDepth: 1, decoderDepth: 1 }, shape, schedule).eval();
  const gpt = createDenoiser(2, { type: 'gpt', dim: 16, heads: 2, depth: 1 }, shape, schedule).eval();
  const keys = (d: typeof ed) => [...d.stateDict().keys()].filter((k) => k.includes('map_fusion'));
  assert.deepEqual(keys(ed).sort(), ['transformer.encoder.map_fusion.emb.weight', 'transformer.encoder.map_fusion.proj.bias', 'transformer.encoder.map_fusion.proj.weight']);
  assert.deepEqual(keys(gpt).sort(), ['transformer.map_fusion.emb.weight', 'transformer.map_fusion.proj.bias', 'transformer.map_fusion.proj.weight']);
  assert.deepEqual(ed.stateDict().get('transformer.encoder.map_fusion.proj.weight')!.shape, [16, 32], 'Linear(2·dim → dim)');
  assert.deepEqual(ed.stateDict().get('transformer.encoder.map_fusion.emb.weight')!.shape, [5, 16]);
  const xt = randint(0, 8, [3, 6]), xtm1 = randint(0, 8, [3, 6]);
  const mapA = randint(0, 5, [3, 6]), mapB = mapA.add(1).remainder(5);
  for (const d of [ed, gpt]) {
    noGrad(() => {
      const a = d.logits(xt, xtm1, mapA), b = d.logits(xt, xtm1, mapB);
      assert.deepEqual(a.shape, [3, 6, 8]);
      assert.ok(a.sub(b).abs().max().item() > 1e-4, `scale ${d.t}: another map changes the logits`);
    });
    assert.throws(() => noGrad(() => d.logits(xt, xtm1)), /label map of \[3, 6\] tokens, got none/);
    assert.throws(() => noGrad(() => d.logits(xt, xtm1, mapA.narrow(1, 0, 4))), /\[3, 6\] tokens, got \[3, 4\]/);
  }
  // the encoder keeps its length: [t, x_t] → [B, 1 + N, dim]
  assert.deepEqual(noGrad(() => (ed as EncoderDecoderDenoiser).encode(xt, mapA)).shape, [3, 7, 16]);
  // GPT input n carries map token n: changing the map only at the last position leaves earlier outputs alone
  noGrad(() => {
    const last = mapA.clone();
    last.select(1, 5).copy_(mapB.select(1, 5));
    const a = gpt.logits(xt, xtm1, mapA), b = gpt.logits(xt, xtm1, last);
    assert.ok(a.narrow(1, 0, 5).sub(b.narrow(1, 0, 5)).abs().max().item() === 0, 'causal: outputs before position 5 do not see map token 5');
    assert.ok(a.select(1, 5).sub(b.select(1, 5)).abs().max().item() > 1e-4, 'output 5 sees map token 5');
  });
});

test('a tiny segmentation-conditional chain trains: its validation NLL falls, the map tells the grid, the null map is learned', async () => {
  // x0 = the map's tokens (4 codes, 2×2 grids), so the map tells x0; x_1 keeps x0's token with
  // probability ᾱ_1 + (1 − ᾱ_1)/K = 0.625 (geometric, T = 2), without the map 0.25
  const M = 600, N = 4, Ks = 4;
  manualSeed(3);
  const maps = randint(0, Ks, [M, 2, 2]);
  const images = join(dir, 'seg-images.safetensors'), mapFile = join(dir, 'seg-maps.safetensors');
  writeTokenFile(images, maps, { K: 4 });
  writeTokenFile(mapFile, maps, { K: Ks });
  const conditioning = seg(Ks);
  const trainers = [
    { t: 2, model: { type: 'gpt' as const, dim: 32, heads: 2, depth: 1 } },
    { t: 1, model: { type: 'xtransformer' as const, dim: 32, heads: 2, dimHead: 16, encoderDepth: 1, decoderDepth: 1 } },
  ].map(({ t, model }) => new ScaleTrainer({
    t, chain: { K: 4, T: 2, schedule: 'geometric', conditioning }, conditionDropout: 0.2, model,
    train: images, segmentation: mapFile, valSize: 64, out: join(dir, `seg${t}`), steps: 80, batchSize: 32, lr: 4e-3, evalEvery: 80, logEvery: 1000,
  }, { log: () => {} }));
  for (const trainer of trainers) {
    assert.equal(trainer.denoiser.shape.mapVocab, Ks + 1);
    const first = trainer.validate().nll;
    const r = await trainer.run();
    const last = r.history.at(-1)!.nll;
    assert.ok(last < first * 0.5, `scale ${trainer.denoiser.t}: validation NLL ${first} → ${last} bits/token`);
  }
  const gpt = trainers[0].denoiser.eval();
  const x = tensor(BigInt64Array.from([3n, 1n, 0n, 2n]), [1, N]);
  const p = (cond: ReturnType<typeof encodeConditions>) => noGrad(() => gpt.logits(x, x, cond).softmax(-1).select(1, 0).toNumbers());
  const withMap = p(encodeConditions(conditioning, [{ mapTokens: [3, 1, 0, 2] }]))[3], without = p(encodeConditions(conditioning, [null], { tokens: N }))[3];
  assert.ok(withMap > 0.5, `the map makes the first token likely (p ${withMap}, exact 0.625)`);
  assert.ok(without < 0.4, `the null map leaves it uncertain (p ${without}, exact 0.25)`);
  assert.throws(() => new ScaleTrainer({
    t: 2, chain: { K: 4, T: 2, schedule: 'geometric', conditioning }, model: { type: 'gpt', dim: 16, heads: 2, depth: 1 },
    train: images, valSize: 64, out: join(dir, 'seg-none'), steps: 1,
  }, { log: () => {} }), /needs the token file of .* label maps \(segmentation\)/);
});
