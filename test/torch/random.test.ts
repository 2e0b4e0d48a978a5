/** Caller-owned generators: 64-bit seeds, streams independent of the global generator and of each other. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, manualSeed, rand, randint, streamSeed, withGenerator, mix64, tensor } from '../../src/torch/index.js';

const draws = (g: Generator | undefined, n = 8) => withGenerator(g, () => randint(0, 1 << 30, [n]).toNumbers());

test('a generator seed is 64 bits: 0, 2^32 and 2^64 − 1 are three streams; the same seed repeats its stream', () => {
  const a = draws(new Generator(0n)), b = draws(new Generator(1n << 32n)), c = draws(new Generator((1n << 64n) - 1n));
  assert.notDeepEqual(a, b, 'seeds 0 and 2^32 differ (libtorch alone keeps 32 bits of a seed)');
  assert.notDeepEqual(a, c);
  assert.deepEqual(draws(new Generator(0n)), a);
  assert.throws(() => new Generator(1n << 64n), /\[0, 2\^64\)/);
  assert.throws(() => new Generator(-1n), /\[0, 2\^64\)/);
});

test('draws inside withGenerator come from its generator, whatever the global one does meanwhile', () => {
  const alone = draws(new Generator(7n), 16);
  const g = new Generator(7n);
  const first = draws(g, 8);
  manualSeed(123);
  rand([100]).dispose(); // the global stream moves on
  const second = draws(g, 8);
  assert.deepEqual([...first, ...second], alone, 'a generator continues its own stream');
  manualSeed(5);
  const global = draws(undefined, 4);
  manualSeed(5);
  withGenerator(new Generator(9n), () => rand([50]).dispose());
  assert.deepEqual(draws(undefined, 4), global, 'a scope leaves the global generator untouched');
});

test('multinomial, uniform_ and normal_ draw from the scope too; scopes nest and restore', () => {
  const probs = tensor(new Float32Array([0.1, 0.2, 0.3, 0.4]), [1, 4]);
  const run = (seed: bigint) => withGenerator(new Generator(seed), () => {
    const m = probs.expand(64, 4).multinomial(1, true).toNumbers();
    const u = rand([3]).uniform_(-1, 1).toNumbers(), n = rand([3]).normal_().toNumbers();
    return [m, u, n];
  });
  assert.deepEqual(run(11n), run(11n));
  assert.notDeepEqual(run(11n), run(12n));
  const outer = new Generator(1n), inner = new Generator(2n);
  const nested = withGenerator(outer, () => [randint(0, 1000, [4]).toNumbers(), withGenerator(inner, () => randint(0, 1000, [4]).toNumbers()), randint(0, 1000, [4]).toNumbers()]);
  const plain = withGenerator(new Generator(1n), () => [randint(0, 1000, [4]).toNumbers(), randint(0, 1000, [4]).toNumbers()]);
  assert.deepEqual([nested[0], nested[2]], plain, 'the inner scope does not consume the outer stream');
  assert.deepEqual(nested[1], withGenerator(new Generator(2n), () => randint(0, 1000, [4]).toNumbers()));
  assert.throws(() => withGenerator(outer, (() => Promise.resolve(1)) as () => unknown), /synchronous/);
});

test('stream seeds: neighbouring base seeds share no stream, and mix64 is splitmix64', () => {
  assert.equal(mix64(0n), 0xe220a8397b1dcdafn, "splitmix64's first output from state 0");
  const family = (base: bigint) => Array.from({ length: 16 }, (_, i) => streamSeed(base, i));
  const a = new Set(family(5n)), b = family(6n);
  assert.ok(b.every((s) => !a.has(s)), "seed 6's streams are none of seed 5's");
  assert.equal(new Set(family(5n)).size, 16);
});
