/** Running CLI commands in-process with their output captured, and table-driven bad-input cases. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type Command = (argv: string[]) => Promise<number>;

/** Runs a command with stdout, stderr and console output captured. */
export async function run(cmd: Command, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const [stdout, stderr] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  const [log, error] = [console.log, console.error];
  let out = '', err = '';
  // the commands write text; the test runner's own reports (binary, under node --test) pass through, or
  // the results of earlier tests written while a later one runs would be swallowed
  process.stdout.write = ((s: string | Uint8Array, ...rest: never[]) => (typeof s === 'string' ? ((out += s), true) : stdout(s, ...rest))) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array, ...rest: never[]) => (typeof s === 'string' ? ((err += s), true) : stderr(s, ...rest))) as typeof process.stderr.write;
  console.log = (...a: unknown[]) => { out += a.join(' ') + '\n'; };
  console.error = (...a: unknown[]) => { err += a.join(' ') + '\n'; };
  try {
    return { code: await cmd(argv), out, err };
  } finally {
    process.stdout.write = stdout;
    process.stderr.write = stderr;
    [console.log, console.error] = [log, error];
  }
}

/** SHA-256 of every file under `dir` (recursively), by path: what must not change. */
export function hashTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(p, createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

export interface BadCase {
  name: string;
  argv: string[];
  /** The message (stderr) must match. */
  message: RegExp;
  /** Exit code (default 2, a usage error). */
  code?: number;
  /** Files that must not exist afterwards (outputs a refused run must not write). */
  absent?: string[];
}

/**
 * Runs every case and checks its exit code and message, and that no file under `guarded` changed,
 * appeared or vanished. Returns [case, first line of the message] for the report table.
 */
export async function checkBadInputs(cmd: Command, cases: BadCase[], guarded: string[]): Promise<[string, string][]> {
  const table: [string, string][] = [];
  for (const c of cases) {
    const before = guarded.map(hashTree);
    const r = await run(cmd, c.argv);
    assert.equal(r.code, c.code ?? 2, `${c.name}: exit code (stderr: ${r.err})`);
    assert.match(r.err, c.message, `${c.name}: message`);
    guarded.forEach((g, i) => assert.deepEqual(hashTree(g), before[i], `${c.name}: files under ${g} changed`));
    for (const p of c.absent ?? []) assert.ok(!existsSync(p), `${c.name}: ${p} was written`);
    table.push([c.name, r.err.trim().split('\n')[0]]);
  }
  if (process.env.IMAGEBART_BAD_INPUT_TABLE) for (const [n, m] of table) process.stdout.write(`| ${n} | ${m.replace(/\|/g, '\\|')} |\n`);
  return table;
}
