/**
 * JSON files checked against zod schemas (manifests, training configs), with messages that name the
 * file, the field (`scales[0].checkpoint`) and the expected type. Schemas are strict objects: an
 * unknown key — a misspelled `modle` — is an error, not silently ignored.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { describeFsError } from './output.js';

/** A file whose content does not fit its schema; `problems` lists every field that is wrong. */
export class SchemaError extends Error {
  constructor(readonly what: string, readonly problems: string[]) {
    super(`${what}: ${problems.join('; ')}`);
    this.name = 'SchemaError';
  }
}

const fieldName = (path: readonly PropertyKey[]): string =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');

/** One zod issue in words: what is wrong with which field. */
function describe(issue: z.core.$ZodIssue): string[] {
  const field = fieldName(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `unknown field "${fieldName([...issue.path, k])}"`);
  }
  const message = issue.message.replace(/^Invalid input: /, '');
  if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) {
    return [`field "${field}" is missing (expected ${issue.expected})`];
  }
  return [field ? `field "${field}": ${message}` : message];
}

/** `value` parsed by `schema`, or a SchemaError naming `what` (e.g. "chain manifest runs/chain.json"). */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new SchemaError(what, r.error.issues.flatMap(describe));
}

/** A JSON file read and checked against `schema`; unreadable files and bad JSON name the file too. */
export function readJsonFile<S extends z.ZodType>(schema: S, path: string, what: string): z.output<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SchemaError(`${what} ${path}`, [`cannot read it (${describeFsError(e)})`]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new SchemaError(`${what} ${path}`, [`not valid JSON (${(e as Error).message})`]);
  }
  return parseWith(schema, value, `${what} ${path}`);
}
