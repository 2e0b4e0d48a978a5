import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeSchedule, fromBetas, betasFromCurve, MEASURED_CURVES } from '../../src/diffusion/index.js';
import { loadFixture } from './fixtures.js';

const fx = loadFixture('diffusion.safetensors');
const CASES: [string, string, number][] = [
  ['geometric.T2', 'geometric', 2], ['geometric.T3', 'geometric', 3], ['geometric.T4', 'geometric', 4], ['geometric.T5', 'geometric', 5],
  ['bernoulli_PSIM.T3', 'bernoulli_PSIM', 3], ['bernoulli_PSIM.T5', 'bernoulli_PSIM', 5], ['ffhq_bernoulli_PSIM.T2', 'ffhq_bernoulli_PSIM', 2],
];

test('schedules equal the official ones (β, α, ᾱ; atol 1e-6, in fact bit-exact)', () => {
  for (const [name, spec, T] of CASES) {
    const s = makeSchedule(spec, T);
    assert.equal(s.T, T);
    for (const key of ['beta', 'alpha', 'alphacum'] as const) {
      const want = fx.get(`schedule.${name}.${key}`).toNumbers();
      assert.equal(s[key].length, T + 1);
      s[key].forEach((v, t) => assert.ok(Math.abs(v - want[t]) <= 1e-6, `${name} ${key}[${t}] = ${v}, official ${want[t]}`));
      assert.deepEqual([...s[key]], want, `${name} ${key} bit-exact`);
    }
  }
});

test('the custom schedules reproduce the values quoted for ImageNet T=5, LSUN T=3 and FFHQ T=2', () => {
  const round5 = (xs: readonly number[]) => xs.map((x) => Math.round(x * 1e5) / 1e5);
  assert.deepEqual(round5(makeSchedule('bernoulli_PSIM', 5).beta), [0, 0.09011, 0.10418, 0.1392, 0.26602, 1]);
  assert.deepEqual(round5(makeSchedule('bernoulli_PSIM', 3).beta), [0, 0.15173, 0.23064, 1]);
  assert.deepEqual(round5(makeSchedule('ffhq_bernoulli_PSIM', 2).beta), [0, 0.36395, 1]);
  // the float64 construction before rounding, and the explicit dataset prefix
  const b = betasFromCurve(MEASURED_CURVES.in_bernoulli_PSIM, 5);
  assert.equal(b[5], 1);
  assert.deepEqual(makeSchedule('in_bernoulli_PSIM', 5).beta, makeSchedule('bernoulli_PSIM', 5).beta);
});

test('geometric: ᾱ_t = 1 - t/T in float32, β_T = 1, x_T uniform', () => {
  const s = makeSchedule('geometric', 4);
  assert.deepEqual(s.beta, [0, 0.25, Math.fround(1 / 3), 0.5, 1]);
  assert.equal(s.alphacum[2], Math.fround(0.49999997)); // float32 cumprod, as the official code
  assert.equal(s.alphacum[4], 0);
});

test('explicit ᾱ list and constant β', () => {
  const a = makeSchedule('alphacum:1,0.8,0.5,0', 3);
  assert.deepEqual(a.beta, [0, Math.fround(1 - 0.8), Math.fround(1 - 0.5 / 0.8), 1]);
  assert.ok(Math.abs(a.alphacum[2] - 0.5) < 1e-7);
  const c = makeSchedule(0.1, 3);
  assert.deepEqual(c.beta, [0, Math.fround(0.1), Math.fround(0.1), Math.fround(0.1)]);
  assert.ok(Math.abs(c.alphacum[3] - 0.9 ** 3) < 1e-6);
  assert.throws(() => makeSchedule('alphacum:1,0.5', 3), /needs T\+1 = 4 values/);
  assert.throws(() => makeSchedule('alphacum:1,0.5,0.7', 2), /must decrease/);
  assert.throws(() => makeSchedule('cosine', 3), /unknown schedule 'cosine'/);
  assert.throws(() => makeSchedule('lsun_bernoulli_FID', 3), /unknown schedule/);
  assert.throws(() => makeSchedule(1.5, 3), /not a probability/);
  assert.throws(() => fromBetas('x', [0.1, 1]), /β_0 must be 0/);
  assert.throws(() => makeSchedule('geometric', 0), /positive integer/);
});
