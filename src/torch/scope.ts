/**
 * Deterministic freeing of tensors. Every tensor created inside `tidy(fn)` is disposed when fn
 * returns, except those reachable from fn's result (moved to the enclosing scope) and those
 * marked with `keep()`. Outside any scope, tensors live until `dispose()` or garbage collection.
 */
export interface Tracked {
  dispose(): void;
  readonly kept: boolean;
}

const scopes: Tracked[][] = [];

/** Called by every tensor constructor. */
export function track(t: Tracked): void {
  const top = scopes[scopes.length - 1];
  if (top !== undefined) top.push(t);
}

function collect(value: unknown, into: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ('dispose' in value && 'kept' in value) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, into, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collect(v, into, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, into, depth + 1);
}

/** Runs fn and frees every tensor it created that is not part of its result. Synchronous functions only. */
export function tidy<T>(fn: () => T): T {
  const scope: Tracked[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; await outside it');
  const survivors = new Set<unknown>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) parent?.push(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}

/** Number of open tidy scopes (for tests and assertions). */
export const scopeDepth = (): number => scopes.length;
