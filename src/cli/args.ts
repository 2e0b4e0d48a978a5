/**
 * Parsing of command-line values shared by the subcommands: bad values are usage errors (exit 2).
 *
 * Numbers are written the way a person types them: integers in decimal digits only (`0x10`, `1e3`,
 * `1.0` and `-1` where a count is wanted are refused, never reinterpreted); seeds above the
 * generator's 32 bits are refused, never wrapped; counts and grids have upper limits so that a typo cannot start a
 * run of hours or exhaust memory.
 */
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

const DECIMAL = /^\+?\d+$/;

/** A whole number in [min, max] written in decimal digits, or undefined when the flag is absent. */
export function integer(v: string | undefined, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const s = v.trim();
  const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}..${max}`;
  if (!DECIMAL.test(s)) {
    const why = /^-\d+$/.test(s) ? 'negative' : /^[+-]?0x/i.test(s) ? 'hexadecimal is not accepted'
      : s !== '' && Number.isFinite(Number(s)) ? 'not a whole number in decimal digits' : 'not a number';
    throw new UsageError(`--${name} must be an integer ${range}, got '${v}' (${why})`);
  }
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer ${range}, got '${v}'`);
  return n;
}

/**
 * The largest seed: libtorch's CPU generator (mt19937) is seeded with 32 bits, so 2^32 would give
 * the stream of 0. Larger seeds are refused rather than wrapped.
 */
export const MAX_SEED = 2 ** 32 - 1;

/** A seed: a decimal integer in 0..MAX_SEED, every one its own random stream; undefined when absent. */
export function seed(v: string | undefined, name = 'seed'): number | undefined {
  try {
    return integer(v, name, 0, MAX_SEED);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}: libtorch's generator takes 32-bit seeds, and a larger one would silently repeat a smaller one's stream`);
  }
}

/** A finite number, or undefined when the flag is absent. */
export function number(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

/** A finite number > 0 (learning rates, weights), or undefined when the flag is absent. */
export function positive(v: string | undefined, name: string): number | undefined {
  const n = number(v, name);
  if (n !== undefined && !(n > 0)) throw new UsageError(`--${name} must be a number > 0, got '${v}'`);
  return n;
}

/** A number in [0, 1], or undefined when the flag is absent. */
export function probability(v: string | undefined, name: string): number | undefined {
  const p = number(v, name);
  if (p !== undefined && !(p >= 0 && p <= 1)) throw new UsageError(`--${name} must lie in [0, 1], got '${v}'`);
  return p;
}

export function need<T>(v: T | undefined, name: string): T {
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

/** Upper limits on what one command may be asked for. */
export const LIMITS = {
  /** Images one `sample`/`edit` run makes. */
  count: 4096,
  /** Images per batch. */
  batchSize: 1024,
  /** Tokens per side of a sliding-window `--grid`. */
  gridSide: 256,
};

/** `HxW` in tokens, each side in 1..LIMITS.gridSide. */
export function grid(v: string | undefined, name = 'grid'): [number, number] | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)x(\d+)$/.exec(v.trim());
  if (!m) throw new UsageError(`--${name} must be HxW in tokens, e.g. 16x16, got '${v}'`);
  const [h, w] = [Number(m[1]), Number(m[2])];
  if (!(h >= 1 && w >= 1 && h <= LIMITS.gridSide && w <= LIMITS.gridSide)) {
    throw new UsageError(`--${name}: each side must lie in 1..${LIMITS.gridSide} tokens, got '${v}'`);
  }
  return [h, w];
}

/** Prints a notice before work that will take long (more than `seconds` by an estimate). */
export function warnIfLong(estimateSeconds: number, what: string, threshold = 60): void {
  if (estimateSeconds <= threshold) return;
  const t = estimateSeconds < 3600 ? `${Math.round(estimateSeconds / 60)} minutes` : `${(estimateSeconds / 3600).toFixed(1)} hours`;
  process.stderr.write(`note: ${what} will take about ${t} on this machine (Ctrl-C stops it)\n`);
}

/** What parseArgs returns for these options. */
export type Parsed<O extends NonNullable<ParseArgsConfig['options']>, P extends boolean = false> =
  ReturnType<typeof nodeParseArgs<{ args: string[]; options: O; strict: true; allowPositionals: P }>>;

/**
 * node:util's parseArgs, except that `--flag -1` passes '-1' as the flag's value (a negative
 * number is a value, not an option), so that the value's own parser can say what is wrong with it.
 */
export function parseArgs<O extends NonNullable<ParseArgsConfig['options']>, P extends boolean = false>(
  args: string[], options: O, allowPositionals?: P,
): Parsed<O, P> {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i], next = args[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(`${a}=${next}`);
      i++;
    } else joined.push(a);
  }
  return nodeParseArgs({ args: joined, options, strict: true, allowPositionals: (allowPositionals ?? false) as P });
}

/** --device: 'cpu' (default), 'cuda' or 'cuda:N'. */
export function device(v: string | undefined): string {
  if (v === undefined) return 'cpu';
  if (!/^(cpu|cuda(:\d+)?)$/.test(v)) throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${v}'`);
  return v;
}
