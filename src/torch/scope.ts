/**
 * Deterministic freeing of tensors. Every tensor created inside `tidy(fn)` is disposed when fn
 * returns, except those reachable from fn's result (moved to the enclosing scope) and those
 * marked with `keep()`. Outside any scope, tensors live until `dispose()` or garbage collection.
 */
export interface Tracked {
  dispose(): void;
  readonly kept: boolean;
  /** Called when the tensor leaves the outermost scope alive. */
  escape(): void;
}

/**
 * Told when the outermost scope opens and closes: tensors made inside scopes are freed
 * deterministically, so their sizes need not be reported to the garbage collector.
 */
let onOutermost: (open: boolean) => void = () => {};
export function setScopeObserver(fn: (open: boolean) => void): void {
  onOutermost = fn;
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
  if (scopes.length === 0) onOutermost(true);
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    if (scopes.length === 0) onOutermost(false);
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  }
  scopes.pop();
  if (scopes.length === 0) onOutermost(false);
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; await outside it');
  const survivors = new Set<unknown>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) {
      if (parent) parent.push(t);
      else t.escape();
    } else if (t.kept) {
      if (!parent) t.escape();
    } else t.dispose();
  }
  return result;
}

/** Number of open tidy scopes (for tests and assertions). */
export const scopeDepth = (): number => scopes.length;
