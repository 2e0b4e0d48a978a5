/** Paths of the official-release fixtures (test/fixtures/official-release) and a copy of the tiny release to alter. */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const RELEASE_FIXTURES = resolve(REPO_ROOT, 'test/fixtures/official-release');

export function releasePath(file: string): string {
  const p = join(RELEASE_FIXTURES, file);
  if (!existsSync(p)) assert.fail(`official-release fixture ${p} is missing: check out test/fixtures/official-release`);
  return p;
}

/** The tiny release's sampling YAML. */
export const TINY = (): string => releasePath('tiny/configs/sampling/tiny_3_scales.yaml');

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'imagebart-release-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A copy of the tiny release in a temporary folder, with `edit(root)` applied; returns its sampling YAML. */
export function alteredTiny(edit: (root: string) => void): string {
  const root = join(tempDir(), 'tiny');
  cpSync(releasePath('tiny'), root, { recursive: true });
  edit(root);
  return join(root, 'configs/sampling/tiny_3_scales.yaml');
}

/** Replaces text in a file of an altered release (the text must occur). */
export function replaceIn(path: string, from: string | RegExp, to: string): void {
  const text = readFileSync(path, 'utf-8');
  const next = text.replace(from, to);
  assert.notEqual(next, text, `${path} holds no ${String(from)}`);
  writeFileSync(path, next);
}
