/**
 * bench:serve — the editor's server under load, on loopback: `imagebart serve` on the shipped model
 * in a child process, then CLIENTS concurrent clients (default 20) for SECONDS (default 60), each
 * sending, one after another, a sample request (4 images) or an edit request (a test digit, upper half
 * repainted, 2 edits), alternating. Reports completed requests, p50/p95 latency per kind, requests
 * refused as busy (503), other errors (expected 0), the health endpoint's p50/p95 latency while
 * loaded, and the server's RSS before and after. Prints a table and writes bench/results/serve.json.
 * BENCH_CLIENTS, BENCH_SECONDS, BENCH_WORKERS change the load.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20), SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const EXAMPLE = join(ROOT, 'models', 'mnist', 'examples', 'test-0000-digit-7.png');

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] : NaN);

async function main(): Promise<void> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'serve', '--port', '0', '--workers', String(WORKERS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((ok, fail) => {
    child.stdout.on('data', (b: Buffer) => { const m = /(http:\/\/[\d.:]+)\//.exec(String(b)); if (m) ok(m[1]); });
    child.once('exit', (code) => fail(new Error(`the server exited (${code})`)));
  });
  const rssBefore = rssMiB(child.pid!);
  const image = new Blob([new Uint8Array(readFileSync(EXAMPLE))], { type: 'image/png' });
  const latency: Record<'sample' | 'edit', number[]> = { sample: [], edit: [] };
  const health: number[] = [];
  let busy = 0, errors = 0;
  const firstErrors: string[] = [];
  const end = performance.now() + SECONDS * 1000;

  const request = async (kind: 'sample' | 'edit', seed: number): Promise<void> => {
    const t0 = performance.now();
    let r: Response;
    if (kind === 'sample') {
      r = await fetch(`${url}/api/sample`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count: 4, seed: String(seed) }) });
    } else {
      const f = new FormData();
      f.append('image', image, 'digit.png');
      f.append('maskName', 'upper-half');
      f.append('count', '2');
      f.append('seed', String(seed));
      r = await fetch(`${url}/api/edit`, { method: 'POST', body: f });
    }
    if (r.status === 503) {
      busy++;
      await r.arrayBuffer();
      await new Promise((ok) => setTimeout(ok, 250)); // a client backs off before retrying
      return;
    }
    const text = await r.text();
    if (r.status !== 200 || !text.includes('event: result')) {
      errors++;
      if (firstErrors.length < 5) firstErrors.push(`${r.status} ${text.slice(0, 200)}`);
      return;
    }
    latency[kind].push(performance.now() - t0);
  };
  const client = async (c: number) => {
    for (let i = 0; performance.now() < end; i++) await request((c + i) % 2 ? 'edit' : 'sample', c * 100000 + i);
  };
  const prober = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await (await fetch(`${url}/api/health`)).json();
      health.push(performance.now() - t0);
      await new Promise((ok) => setTimeout(ok, 200));
    }
  };
  await Promise.all([...Array.from({ length: CLIENTS }, (_, c) => client(c)), prober()]);
  const rssAfter = rssMiB(child.pid!);
  child.kill('SIGTERM');

  const rows = (['sample', 'edit'] as const).map((k) => ({ kind: k, completed: latency[k].length, p50ms: pct(latency[k], 0.5), p95ms: pct(latency[k], 0.95) }));
  console.log(`bench:serve — ${CLIENTS} clients, ${SECONDS} s, ${WORKERS} worker(s), loopback, ${availableParallelism()} cores, load ${loadavg()[0].toFixed(1)}`);
  console.log('| request | completed | p50 ms | p95 ms |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.kind} | ${r.completed} | ${r.p50ms.toFixed(0)} | ${r.p95ms.toFixed(0)} |`);
  console.log(`busy (503): ${busy}   errors: ${errors}   health p50/p95: ${pct(health, 0.5).toFixed(1)}/${pct(health, 0.95).toFixed(1)} ms (${health.length} probes)   RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB`);
  if (firstErrors.length) console.log(`first errors:\n  ${firstErrors.join('\n  ')}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'serve.json'), JSON.stringify({
    clients: CLIENTS, seconds: SECONDS, workers: WORKERS, cores: availableParallelism(), loadavg: loadavg(), requests: rows, busy, errors,
    health: { probes: health.length, p50ms: pct(health, 0.5), p95ms: pct(health, 0.95), maxms: Math.max(...health) },
    rssMiB: { before: rssBefore, after: rssAfter }, date: new Date().toISOString(),
  }, null, 2) + '\n');
  process.exit(errors ? 1 : 0);
}

void main();
