/** Classifier-free guidance: l_u + s·(l_c − l_u) reduces to unconditional (s = 0) and conditional (s = 1) sampling. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { full, tensor } from '../../src/torch/index.js';
import { sample, maskedEdit } from '../../src/sample/index.js';
import { tinyChain } from './tiny.js';

const NULL = 10;
const chain = tinyChain({ classes: NULL, nullable: true, K: 16, T: 3, seed: 3 });
const labels = tensor(BigInt64Array.from([1n, 7n, 3n, 3n]), [4, 1]);
const nullCond = full([1, 1], NULL, { dtype: 'int64' });
const same = (a: { toNumbers(): number[] }, b: { toNumbers(): number[] }) => assert.deepEqual(a.toNumbers(), b.toNumbers());

test('guidance 1 is conditional sampling and guidance 0 samples the null class', () => {
  const cond = sample(chain, { batch: 4, seed: 5, cond: labels });
  same(sample(chain, { batch: 4, seed: 5, cond: labels, guidance: { scale: 1, nullCond } }).tokens, cond.tokens);
  const uncond = sample(chain, { batch: 4, seed: 5, cond: full([4, 1], NULL, { dtype: 'int64' }) });
  same(sample(chain, { batch: 4, seed: 5, cond: labels, guidance: { scale: 0, nullCond } }).tokens, uncond.tokens);
  const guided = sample(chain, { batch: 4, seed: 5, cond: labels, guidance: { scale: 3, nullCond } });
  assert.notDeepEqual(guided.tokens.toNumbers(), cond.tokens.toNumbers(), 'a scale above 1 changes the samples');
});

test('guided edits keep the kept tokens', () => {
  const x0 = tensor(BigInt64Array.from({ length: 4 * 16 }, (_, i) => BigInt(i % 16)), [4, 4, 4]);
  const keep = tensor(Uint8Array.from({ length: 16 }, (_, i) => (i >= 8 ? 1 : 0)), [1, 4, 4]).bool();
  const r = maskedEdit(chain, x0, keep, { seed: 2, cond: labels, guidance: { scale: 2, nullCond } });
  const out = r.tokens.toNumbers(), inp = x0.toNumbers();
  for (let b = 0; b < 4; b++) for (let i = 8; i < 16; i++) assert.equal(out[b * 16 + i], inp[b * 16 + i]);
  assert.throws(() => sample(chain, { batch: 4, seed: 1, guidance: { scale: 2, nullCond } }), /conditional/);
});

test('guided logits agree cached and uncached; per-scale guidance leaves s = 1 scales unguided', () => {
  const cached = sample(chain, { batch: 4, seed: 9, cond: labels, guidance: { scale: 2.5, nullCond } });
  const uncached = sample(chain, { batch: 4, seed: 9, cond: labels, guidance: { scale: 2.5, nullCond }, decoding: 'uncached' });
  same(cached.tokens, uncached.tokens);
  // guidance only at scale 3 (the GPT): scales 2 and 1 run exactly as plain conditional sampling
  const perScale = sample(chain, { batch: 4, seed: 9, cond: labels, guidance: { scale: { 3: 2.5 }, nullCond }, intermediates: true });
  const full = sample(chain, { batch: 4, seed: 9, cond: labels, guidance: { scale: 2.5, nullCond }, intermediates: true });
  same(perScale.intermediates![1], full.intermediates![1]); // x_2, drawn at scale 3 with the same guidance
  assert.throws(() => sample(chain, { batch: 4, seed: 1, cond: labels, guidance: { scale: { 2: NaN }, nullCond } }), /finite/);
});
