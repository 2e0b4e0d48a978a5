/** The sampler: reproducibility, settings honoured at every scale, batches, conditioning, intermediates, sliding windows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, native } from '../../src/torch/index.js';
import { sample, scaleSettings } from '../../src/sample/index.js';
import { tinyChain, ids } from './tiny.js';

const equal = (a: Tensor, b: Tensor) => a.shape.join() === b.shape.join() && a.eq(b).all().item() === 1;

test('a seeded sample is reproducible bit for bit; another seed gives another sample', () => {
  const chain = tinyChain({ T: 3 });
  const a = sample(chain, { batch: 3, seed: 7 });
  const b = sample(chain, { batch: 3, seed: 7 });
  const c = sample(chain, { batch: 3, seed: 8 });
  assert.deepEqual(a.tokens.shape, [3, 4, 4]);
  assert.equal(a.tokens.dtype, 'int64');
  assert.ok(equal(a.tokens, b.tokens), 'same seed, same tokens');
  assert.ok(!equal(a.tokens, c.tokens), 'another seed, other tokens');
  assert.ok(a.tokens.min().item() >= 0 && a.tokens.max().item() < 16);
  const drawn = sample(chain, { batch: 1 });
  assert.ok(Number.isInteger(drawn.seed), 'a drawn seed is reported');
  assert.ok(equal(sample(chain, { batch: 1, seed: drawn.seed }).tokens, drawn.tokens), 'and reproduces the sample');
  const live = native.liveTensors();
  sample(chain, { batch: 2, seed: 7, intermediates: true }).intermediates!.forEach((x) => x.dispose());
  assert.equal(native.liveTensors(), live, 'sampling frees everything but its result');
});

test('temperature and top-k are honoured at every scale: greedy decoding no longer depends on the seed', () => {
  const chain = tinyChain({ T: 3 });
  // the GPT at scale T ignores x_T, so with greedy choices at every scale x_0 is a function of the weights only
  for (const settings of [{ topK: 1 }, { temperature: 1e-4 }]) {
    const x = sample(chain, { batch: 2, seed: 1, settings }).tokens;
    const y = sample(chain, { batch: 2, seed: 99, settings }).tokens;
    assert.ok(equal(x, y), `${JSON.stringify(settings)}: seeds 1 and 99 agree`);
    assert.ok(equal(x.select(0, 0), x.select(0, 1)), 'and so do the images of a batch');
  }
  // greedy only at scale 1 is not enough: scales 3 and 2 still draw
  const x = sample(chain, { batch: 2, seed: 1, scales: { 1: { topK: 1 } } }).tokens;
  const y = sample(chain, { batch: 2, seed: 99, scales: { 1: { topK: 1 } } }).tokens;
  assert.ok(!equal(x, y));
  assert.deepEqual(scaleSettings(chain, { settings: { topP: 0.9 }, scales: { 2: { topK: 4, temperature: 0.5 } } }), {
    1: { temperature: 1, topK: 16, topP: 0.9 }, 2: { temperature: 0.5, topK: 4, topP: 0.9 }, 3: { temperature: 1, topK: 16, topP: 0.9 },
  });
  assert.throws(() => scaleSettings(chain, { scales: { 4: { topK: 2 } } }), /the chain has scales 1..3/);
  assert.throws(() => sample(chain, { batch: 1, scales: { 2: { temperature: -1 } } }), /scale 2: temperature must be a positive number/);
});

test('every decoding gives a valid sample; intermediates run from uniform x_T to x_0', () => {
  const chain = tinyChain({ T: 2, residual: true });
  for (const decoding of ['cached', 'uncached', 'official'] as const) {
    const r = sample(chain, { batch: 2, seed: 3, decoding, intermediates: true });
    assert.equal(r.intermediates!.length, 3);
    assert.ok(equal(r.intermediates![2], r.tokens));
    for (const x of r.intermediates!) assert.deepEqual(x.shape, [2, 4, 4]);
  }
});

test('conditional chains take one conditioning token per image and refuse to run without', () => {
  const chain = tinyChain({ T: 2, classes: 4 });
  const r = sample(chain, { batch: 2, seed: 5, cond: ids([0, 3], [2, 1]) });
  assert.deepEqual(r.tokens.shape, [2, 4, 4]);
  assert.throws(() => sample(chain, { batch: 2 }), /this chain is conditional: pass 1 conditioning token/);
  assert.throws(() => sample(chain, { batch: 3, cond: ids([0, 3], [2, 1]) }), /conditioning must be \[3, 1\] tokens, got \[2, 1\]/);
  assert.throws(() => sample(tinyChain({ T: 1 }), { batch: 0 }), /batch must be a positive integer/);
});

test('sliding window: a grid twice the trained size in each direction has the requested size', (t) => {
  const chain = tinyChain({ T: 2, shape: [3, 3] });
  const started = performance.now();
  const r = sample(chain, { batch: 2, seed: 11, grid: [6, 7], intermediates: true });
  t.diagnostic(`6×7 from a 3×3 chain in ${(performance.now() - started).toFixed(0)} ms`);
  assert.deepEqual(r.tokens.shape, [2, 6, 7]);
  assert.ok(r.intermediates!.every((x) => x.shape.join() === '2,6,7'));
  assert.ok(equal(sample(chain, { batch: 2, seed: 11, grid: [6, 7] }).tokens, r.tokens), 'reproducible too');
  assert.throws(() => sample(chain, { batch: 1, grid: [2, 6] }), /smaller than the 3×3 grid/);
});
