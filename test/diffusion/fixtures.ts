/** Access to the official parity fixtures (test/fixtures/official in the repository) for tests. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Tensor, loadSafetensors, noGrad } from '../../src/torch/index.js';

/** Compiled tests live in dist/test/<dir>/, three levels below the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = resolve(REPO_ROOT, 'test/fixtures/official');

export interface Fixture {
  tensors: Map<string, Tensor>;
  /** Metadata with JSON-encoded values parsed. */
  meta: Record<string, unknown>;
  get(name: string): Tensor;
}

export function loadFixture(file: string): Fixture {
  const path = resolve(FIXTURES, file);
  if (!existsSync(path)) {
    throw new Error(`parity fixture ${path} is missing: the official fixtures ship with the repository under test/fixtures/official`);
  }
  const { tensors, metadata } = loadSafetensors(path);
  for (const t of tensors.values()) t.keep();
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    try {
      meta[k] = JSON.parse(v);
    } catch {
      meta[k] = v;
    }
  }
  const get = (name: string): Tensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`fixture ${file} has no tensor '${name}'`);
    return t;
  };
  return { tensors, meta, get };
}

/** The tensors whose names start with `prefix`, with the prefix removed. */
export function withPrefix(f: Fixture, prefix: string): Map<string, Tensor> {
  return new Map([...f.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape, `shapes differ: [${a.shape}] vs [${b.shape}]`);
  return noGrad(() => a.float().sub(b.float()).abs().max().item());
}

/** Asserts max |a - b| ≤ atol and returns the error (for reports). */
export function assertClose(a: Tensor, b: Tensor, atol: number, what: string): number {
  const err = maxAbsDiff(a, b);
  assert.ok(err <= atol, `${what}: max abs error ${err} > ${atol}`);
  return err;
}
