/** The command-line value parsers: decimal integers only, exact seeds, limits, negative values reach their parser. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { integer, seed, positive, grid, parseArgs, UsageError } from '../../src/cli/args.js';

test('integers are decimal digits only; seeds beyond 32 bits are refused, never wrapped', () => {
  assert.equal(integer('16', 'count', 1), 16);
  assert.equal(integer(undefined, 'count'), undefined);
  for (const [v, why] of [['0x10', /hexadecimal/], ['1e3', /not a whole number/], ['1.5', /not a whole number/], ['-1', /negative/], ['ten', /not a number/], ['', /not a number/]] as const) {
    assert.throws(() => integer(v, 'count', 1), (e: Error) => e instanceof UsageError && why.test(e.message), v);
  }
  assert.throws(() => integer('5000', 'count', 1, 4096), /--count must be an integer in 1\.\.4096, got '5000'/);
  assert.equal(seed('4294967295'), 2 ** 32 - 1);
  assert.throws(() => seed('4294967296'), /--seed must be an integer in 0\.\.4294967295, got '4294967296': libtorch's generator takes 32-bit seeds/);
  assert.throws(() => seed(String(2 ** 53)), /--seed must be an integer in 0\.\.4294967295/);
});

test('learning rates must be positive; grids are bounded', () => {
  assert.equal(positive('3e-4', 'lr'), 3e-4);
  for (const v of ['0', '-1', 'NaN', 'Infinity', '']) assert.throws(() => positive(v, 'lr'), /--lr must be a number/);
  assert.deepEqual(grid('16x12'), [16, 12]);
  assert.throws(() => grid('0x4'), /each side must lie in 1\.\.256/);
  assert.throws(() => grid('1000x1000'), /each side must lie in 1\.\.256/);
});

test('parseArgs hands "-1" to the flag as its value instead of calling it ambiguous', () => {
  const o = { count: { type: 'string' }, force: { type: 'boolean' } } as const;
  assert.equal(parseArgs(['--count', '-1'], o).values.count, '-1');
  assert.equal(parseArgs(['--count', '-0.5', '--force'], o).values.force, true);
  assert.throws(() => parseArgs(['--cuont', '3'], o), /Unknown option '--cuont'/);
});
