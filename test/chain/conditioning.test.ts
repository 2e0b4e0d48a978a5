/** The conditioning description: shapes, class and caption encoding, older manifests, a text chain that learns from captions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, noGrad } from '../../src/torch/index.js';
import {
  NONE, ScaleTrainer, checkConditioning, conditioningShape, conditionsOf, encodeConditions, nullCondition, textConditioning,
  readTokenFile, writeTokenFile, readManifest, type Conditioning,
} from '../../src/chain/index.js';
import { ClipTokenizer } from '../../src/text/clip.js';

const dir = mkdtempSync(join(tmpdir(), 'imagebart-cond-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

test('class conditioning: one token, a null id when nullable, clear errors', () => {
  const c: Conditioning = { kind: 'class', classes: 10, nullable: true };
  assert.deepEqual(conditioningShape(c), { condLength: 1, condVocab: 11, mapVocab: 0 });
  assert.deepEqual(conditioningShape({ ...c, nullable: false }), { condLength: 1, condVocab: 10, mapVocab: 0 });
  assert.deepEqual(conditioningShape(NONE), { condLength: 0, condVocab: 0, mapVocab: 0 });
  assert.deepEqual(encodeConditions(c, [3, null, 0])!.toNumbers(), [3, 10, 0]);
  assert.deepEqual(nullCondition(c).toNumbers(), [10]);
  assert.throws(() => encodeConditions(c, [10]), /class ids 0\.\.9/);
  assert.throws(() => encodeConditions({ ...c, nullable: false }, [null]), /no null class/);
  assert.throws(() => nullCondition({ ...c, nullable: false }), /dropped conditions/);
  assert.throws(() => encodeConditions(NONE, [1]), /unconditional/);
  assert.throws(() => checkConditioning({ kind: 'pose' }, 'm.json'), /m\.json: conditioning: field "kind".*'none' \| 'class' \| 'text' \| 'segmentation'/);
  assert.throws(() => checkConditioning({ kind: 'class', classes: 0, nullable: false }, 'm.json'), /field "classes"/);
  assert.throws(() => checkConditioning({ kind: 'class', classes: 2, nullable: false, nul: 1 }, 'm.json'), /unknown field "nul"/);
});

test('text conditioning: CLIP BPE ids in a compact vocabulary, unseen tokens unknown, the empty caption as null', () => {
  const captions = ['red apple', 'green apple', 'red car'];
  const c = textConditioning(captions, 6, true);
  assert.equal(c.kind, 'text');
  const tok = new ClipTokenizer();
  const seen = new Set(captions.flatMap((s) => Array.from(tok.tokenize(s, 6))).filter((i) => i !== 0));
  assert.deepEqual(c.kind === 'text' && c.vocab, [...seen].sort((a, b) => a - b));
  assert.deepEqual(conditioningShape(c), { condLength: 6, condVocab: 2 + seen.size, mapVocab: 0 });
  const ids = encodeConditions(c, ['red apple', 'blue apple', null])!;
  assert.deepEqual(ids.shape, [3, 6]);
  const rows = [0, 1, 2].map((i) => ids.select(0, i).toNumbers());
  assert.ok(rows[0].slice(0, 4).every((x) => x >= 2) && rows[0][4] === 0, `known tokens then padding: ${rows[0]}`);
  assert.equal(rows[1][1], 1, '"blue" was never seen: unknown');
  assert.deepEqual(rows[1].slice(2), rows[0].slice(2));
  assert.deepEqual(rows[2], nullCondition(c).toNumbers(), 'null is the empty caption');
  assert.equal(rows[2][2], 0);
  assert.throws(() => encodeConditions(c, [3]), /captions/);
});

test('a manifest written before "conditioning" reads as a class or unconditional chain', () => {
  const path = join(dir, 'old.json');
  const base = { format: 'imagebart-chain/1', vqgan: null, remap: null, K: 8, T: 1, schedule: 'geometric', beta: [0, 1], tokenShape: [2, 2], scales: [{ t: 1, checkpoint: 's.safetensors' }] };
  writeFileSync(path, JSON.stringify({ ...base, classes: null }));
  assert.deepEqual(readManifest(path).conditioning, NONE);
  writeFileSync(path, JSON.stringify({ ...base, classes: 10 }));
  assert.deepEqual(readManifest(path).conditioning, { kind: 'class', classes: 10, nullable: false });
  writeFileSync(path, JSON.stringify({ ...base, conditioning: { kind: 'text' } }));
  assert.throws(() => readManifest(path), /field "conditioning.nullable" is missing \(expected boolean\)/);
});

test('a text-conditional scale learns from captions: the caption tells the grid, dropped captions fall back to the prior', async () => {
  // grids are all code a (a < 4); the caption names a in words
  const words = ['zero', 'one', 'two', 'three'];
  const M = 600, H = 2, W = 2;
  const tokens = new BigInt64Array(M * H * W), captions: string[] = [];
  for (let m = 0; m < M; m++) {
    const a = m % 4;
    tokens.fill(BigInt(a), m * H * W, (m + 1) * H * W);
    captions.push(`all ${words[a]}`);
  }
  const file = join(dir, 'captioned.safetensors');
  writeTokenFile(file, tensor(tokens, [M, H, W]), { K: 4, metadata: { captions: JSON.stringify(captions) } });
  const set = readTokenFile(file);
  assert.equal(set.captions?.length, M);
  const conditioning = textConditioning(set.captions!, 5, true);
  assert.deepEqual(conditionsOf(set, conditioning, file, { count: 2 })!.toNumbers(), encodeConditions(conditioning, captions.slice(0, 2))!.toNumbers());
  const trainer = new ScaleTrainer({
    t: 1, chain: { K: 4, T: 1, schedule: 'geometric', conditioning }, conditionDropout: 0.2,
    model: { type: 'gpt', dim: 32, heads: 2, depth: 1 }, train: file, valSize: 64, out: join(dir, 'text'),
    steps: 150, batchSize: 32, lr: 3e-3, evalEvery: 150, logEvery: 1000,
  }, { log: () => {} });
  assert.equal(trainer.denoiser.shape.condLength, 5);
  const r = await trainer.run();
  // with the caption the grid is certain (≈ 0 bits); without it, 2 bits for the first token
  assert.ok(r.history.at(-1)!.nll < 0.5, `validation NLL with captions ${r.history.at(-1)!.nll} bits/token`);
  const d = trainer.denoiser.eval();
  const x = tensor(BigInt64Array.from([2n, 2n, 2n, 2n]), [1, 4]);
  const p = (cond: ReturnType<typeof encodeConditions>) => noGrad(() => d.logits(x, x, cond).softmax(-1).select(1, 0).toNumbers());
  assert.ok(p(encodeConditions(conditioning, ['all two']))[2] > 0.9, 'the caption picks the code');
  assert.ok(p(nullCondition(conditioning))[2] < 0.6, 'without a caption the first token is uncertain');
});
