/** Parsing of command-line values shared by the subcommands: bad values are usage errors (exit 2). */

export class UsageError extends Error {}

/** A whole number ≥ min (default 0), or undefined when the flag is absent. */
export function integer(v: string | undefined, name: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

/** A finite number, or undefined when the flag is absent. */
export function number(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
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

/** --device: 'cpu' (default), 'cuda' or 'cuda:N'. */
export function device(v: string | undefined): string {
  if (v === undefined) return 'cpu';
  if (!/^(cpu|cuda(:\d+)?)$/.test(v)) throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${v}'`);
  return v;
}
