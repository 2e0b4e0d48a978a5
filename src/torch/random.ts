/**
 * Random number generators owned by the caller instead of libtorch's process-global one.
 *
 * A `Generator` is a CPU mt19937 whose whole state is filled from splitmix64 of a 64-bit seed
 * (native/generator.cc), so seeds 0 and 2^32 give different streams (the global generator keeps
 * only 32 bits of a seed). `withGenerator(g, fn)` makes g the stream of every random draw made
 * synchronously inside fn — rand, randn, randint, randperm, multinomial, uniform_, normal_ — so a
 * request that runs its model code inside its own generator's scope draws the same numbers however
 * its work interleaves with other requests' (other worker threads, other scopes).
 */
import { native, type NativeGeneratorHandle } from './native.js';

const U64 = (1n << 64n) - 1n;

export class Generator {
  /** @internal the native handle passed to operators' `generator` argument */
  readonly h: NativeGeneratorHandle;
  readonly seed: bigint;

  constructor(seed: bigint | number) {
    const s = BigInt(seed);
    if (s < 0n || s > U64) throw new RangeError(`generator seed must lie in [0, 2^64), got ${s}`);
    this.seed = s;
    this.h = native.newGenerator(s);
  }
}

let current: Generator | undefined;

/** The generator of the innermost withGenerator scope (undefined: libtorch's global one). */
export const currentGenerator = (): NativeGeneratorHandle | undefined => current?.h;

/** Runs fn (synchronous) with every random draw taken from g. */
export function withGenerator<T>(g: Generator | undefined, fn: () => T): T {
  const outer = current;
  current = g ?? outer;
  try {
    const result = fn();
    if (result instanceof Promise) throw new Error('withGenerator() takes a synchronous function');
    return result;
  } finally {
    current = outer;
  }
}

/** splitmix64's output function applied to z (a 64-bit bijection with good avalanche). */
export function mix64(z: bigint): bigint {
  z = (z + 0x9e3779b97f4a7c15n) & U64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & U64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & U64;
  return z ^ (z >> 31n);
}

/**
 * The seed of stream i derived from a base seed: mix64(mix64(base) + i). Neighbouring base seeds
 * give unrelated families (base + 1's stream 0 is not base's stream 1, as with seed + i).
 */
export const streamSeed = (base: bigint, i: number): bigint => mix64((mix64(base) + BigInt(i)) & U64);
