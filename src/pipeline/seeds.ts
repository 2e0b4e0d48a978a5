/**
 * Seeds of the pipeline: 64-bit, written as decimal strings (JSON numbers stop at 2^53).
 *
 * A request has one base seed s; its batch i draws from a generator seeded with
 * streamSeed(s, i) = mix64(mix64(s) + i) (splitmix64's mixer, torch/random.ts), so neighbouring base
 * seeds never share a batch stream (with s + i, seed 5's batch 1 would be seed 6's batch 0).
 */
import { randomBytes } from 'node:crypto';
import { Generator, streamSeed } from '../torch/index.js';

const U64 = (1n << 64n) - 1n;

/** A seed from a bigint, a safe integer or a decimal string; throws a RangeError naming `what` otherwise. */
export function parseSeed(v: bigint | number | string, what = 'seed'): bigint {
  let s: bigint | undefined;
  if (typeof v === 'bigint') s = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) s = BigInt(v);
  else if (typeof v === 'string' && /^\d{1,20}$/.test(v.trim())) s = BigInt(v.trim());
  if (s === undefined || s < 0n || s > U64) throw new RangeError(`${what} must be an integer in [0, 2^64), got '${String(v)}'`);
  return s;
}

/** A fresh random 64-bit seed. */
export const drawSeed = (): bigint => randomBytes(8).readBigUInt64LE();

/** Generator of batch i of a request with base seed `base`. */
export const batchGenerator = (base: bigint, i: number): Generator => new Generator(streamSeed(base, i));
