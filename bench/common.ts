/**
 * Side-by-side benchmarking against a PyTorch reference on a shared, noisy machine.
 *
 * The reference runs as a child process serving one step per request (`bench/*_ref.py --serve`),
 * and the TypeScript and PyTorch steps alternate, so both sides see the same background load;
 * each side's median over the measured rounds is reported, and their ratio.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Module } from '../src/nn/index.js';
import { createInterface, type Interface } from 'node:readline';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const PYTHON = '/usr/bin/python3';

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function timeOnce(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export function torchAvailable(): boolean {
  if (process.env.BENCH_NO_TORCH) return false;
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

/** A PyTorch reference process: `threads INTRA BLAS` sets its split, `step NAME` runs one step and answers its milliseconds. */
export class Reference {
  private readonly lines: Interface;
  private readonly pending: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: proc.stdout });
    this.lines.on('line', (l) => this.pending.shift()?.resolve(l));
    proc.on('exit', (code) => {
      for (const p of this.pending.splice(0)) p.reject(new Error(`the reference process exited (${code})`));
    });
    proc.stderr.on('data', (d: Buffer) => process.stderr.write(`[reference] ${d}`));
  }

  /** Starts the reference, or says why there is none (no python3-torch) and returns undefined. */
  static start(script: string, args: string[] = []): Reference | undefined {
    if (!torchAvailable()) {
      console.log('python3-torch not found: TypeScript only (apt-get install python3-torch for the side-by-side reference)');
      return undefined;
    }
    return new Reference(spawn(PYTHON, [script, '--serve', ...args], { stdio: 'pipe' }));
  }

  request(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.proc.stdin.write(line + '\n');
    });
  }

  async threads(intra: number, blas: number): Promise<void> { await this.request(`threads ${intra} ${blas}`); }
  async step(name: string): Promise<number> { return Number(await this.request(`step ${name}`)); }
  close(): void { this.proc.stdin.end(); }
}

export interface Workload {
  name: string;
  ts: () => void;
}

export interface SideBySide {
  ts: number;
  torch: number | null;
  ratio: number | null;
}

/** Runs warm-up rounds, then `rounds` alternating TS / reference steps per workload; medians in ms. */
export async function sideBySide(workloads: Workload[], ref: Reference | undefined, o: { warmup?: number; rounds?: number } = {}): Promise<Record<string, SideBySide>> {
  const ts: Record<string, number[]> = {};
  const torch: Record<string, number[]> = {};
  const warmup = o.warmup ?? 2;
  const rounds = o.rounds ?? Number(process.env.BENCH_STEPS ?? 7);
  for (let r = 0; r < warmup + rounds; r++) {
    for (const w of workloads) {
      const a = timeOnce(w.ts);
      const b = ref ? await ref.step(w.name) : NaN;
      if (r < warmup) continue;
      (ts[w.name] ??= []).push(a);
      (torch[w.name] ??= []).push(b);
    }
  }
  return Object.fromEntries(workloads.map((w) => {
    const t = median(ts[w.name]!);
    const p = ref ? median(torch[w.name]!) : null;
    return [w.name, { ts: round(t), torch: p === null ? null : round(p), ratio: p === null ? null : round(t / p, 3) }];
  }));
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** One thread split's medians, per workload. */
export interface SplitResults {
  split: string;
  results: Record<string, SideBySide>;
}

/** One workload with each side at its own best split: the ratio users see when both are tuned. */
export function bestSplit(rows: SplitResults[], name: string): SideBySide & { ts_split: string; torch_split: string | null } {
  const fastest = (side: 'ts' | 'torch') =>
    rows.filter((r) => r.results[name]![side] !== null).sort((a, b) => a.results[name]![side]! - b.results[name]![side]!)[0];
  const ts = fastest('ts')!;
  const torch = fastest('torch');
  const tsMs = ts.results[name]!.ts;
  const torchMs = torch ? torch.results[name]!.torch : null;
  return { ts: tsMs, torch: torchMs, ratio: torchMs ? round(tsMs / torchMs, 3) : null, ts_split: ts.split, torch_split: torch?.split ?? null };
}

/** The thread splits to measure: BENCH_SPLITS="2+1,1+2", else every combination of 1 and all cores. */
export function threadSplits(cores: number): [number, number][] {
  if (process.env.BENCH_SPLITS) return process.env.BENCH_SPLITS.split(',').map((s) => s.split('+').map(Number) as [number, number]);
  const out: [number, number][] = [];
  for (const i of new Set([1, cores])) for (const b of new Set([1, cores])) out.push([i, b]);
  return out;
}

export function writeResult(path: string, result: unknown): void {
  if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(result, null, 2) + '\n');
  console.log(`wrote ${path}`);
}

/** What every reference's `--check FILE` reports, besides its own output differences. */
export interface ReferenceReport {
  parameters: number;
  keys: Record<string, number[]>;
}

/** An output difference the reference reports, the bound it must stay under, and what it measures. */
export type Tolerances<C> = { [K in keyof C]?: [bound: number, what: string] };

/**
 * Runs `script --check file`: the reference rebuilds its model from the weights in `file` and
 * reports its parameter count, state-dict shapes and output differences. Throws unless it is the
 * same model as `model` and every difference named in `tolerances` stays under its bound;
 * undefined without python3-torch.
 */
export function checkReference<C extends ReferenceReport>(script: string, file: string, model: Module, tolerances: Tolerances<C>): C | undefined {
  if (!torchAvailable()) return undefined;
  const p = spawnSync(PYTHON, [script, '--check', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (p.status !== 0) throw new Error(`${script} --check failed (${p.status}):\n${p.stderr}`);
  const c = JSON.parse(p.stdout) as C;
  const params = model.numParameters();
  const ours = Object.fromEntries([...model.stateDict()].map(([k, t]) => [k, t.shape]));
  console.log(`parameters: TypeScript ${params.toLocaleString('en')}, PyTorch reference ${c.parameters.toLocaleString('en')}`);
  const problems: string[] = [];
  if (c.parameters !== params) problems.push(`parameter count ${params} vs ${c.parameters}`);
  for (const k of new Set([...Object.keys(ours), ...Object.keys(c.keys)])) {
    if (JSON.stringify(ours[k]) !== JSON.stringify(c.keys[k])) problems.push(`${k}: [${ours[k] ?? 'missing'}] vs [${c.keys[k] ?? 'missing'}]`);
  }
  for (const [key, [bound, what]] of Object.entries(tolerances) as [string, [number, string]][]) {
    const v = (c as unknown as Record<string, number>)[key];
    if (!(v < bound)) problems.push(`${what}: ${v} (bound ${bound})`);
  }
  if (problems.length) throw new Error(`the PyTorch reference is not the same model:\n  ${problems.join('\n  ')}`);
  return c;
}
