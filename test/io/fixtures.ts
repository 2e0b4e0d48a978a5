/** Paths of the official fixtures (test/fixtures/official in the repository) and a temp folder. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Compiled tests live in dist/test/io/, three levels below the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = resolve(REPO_ROOT, 'test/fixtures/official');

/** The fixture's path; fails the test clearly when it is missing. */
export function fixturePath(file: string): string {
  const p = join(FIXTURES, file);
  if (!existsSync(p)) assert.fail(`official fixture ${p} is missing: check out test/fixtures/official in the repository root`);
  return p;
}

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'imagebart-io-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
