/**
 * `imagebart chain …` end to end on synthetic token grids: usage errors, train --scale 1, train --all
 * (T = 2, one child process per scale) resuming it, nll.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, readSafetensorsHeader, saveSafetensors } from '../../src/torch/index.js';
import { writeTokenFile, readManifest } from '../../src/chain/index.js';
import { chainCommand } from '../../src/cli/chain.js';

const K = 8, H = 4, W = 4;
const dir = mkdtempSync(join(tmpdir(), 'imagebart-chain-cli-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

process.chdir(dir);

/**
 * Runs `imagebart chain …` in this process, capturing its stderr, and its stdout up to its first await:
 * help and nll print synchronously, and the test runner itself reports on stdout, which must not be
 * captured across an await.
 */
async function chain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [], err: string[] = [];
  const { stdout, stderr } = process;
  const [writeOut, writeErr] = [stdout.write, stderr.write];
  stdout.write = ((s: string | Uint8Array) => out.push(String(s)) > 0) as typeof stdout.write;
  stderr.write = ((s: string | Uint8Array) => err.push(String(s)) > 0) as typeof stderr.write;
  let running: Promise<number>;
  try {
    running = chainCommand(args);
  } finally {
    stdout.write = writeOut;
  }
  try {
    return { code: await running, stdout: out.join(''), stderr: err.join('') };
  } finally {
    stderr.write = writeErr;
  }
}

/** M grids x[i][j] = (a + b·i + c·j) mod K, a < K, b, c ∈ {0, 1}. */
function writeGrids(name: string, M: number, o: { K?: number; seed: number }): void {
  let s = o.seed;
  const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  const x = new BigInt64Array(M * H * W);
  for (let m = 0; m < M; m++) {
    const a = Math.floor(rnd() * K), b = rnd() < 0.5 ? 1 : 0, c = rnd() < 0.5 ? 1 : 0;
    for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) x[(m * H + i) * W + j] = BigInt((a + b * i + c * j) % K);
  }
  writeTokenFile(join(dir, name), tensor(x, [M, H, W]), { K: o.K ?? K });
}
writeGrids('train.safetensors', 300, { seed: 1 });
writeGrids('test.safetensors', 64, { seed: 2 });
writeGrids('k16.safetensors', 8, { K: 16, seed: 3 });
saveSafetensors(join(dir, 'vqgan-encoded.safetensors'), { tokens: tensor(new Int16Array(16).fill(7), [1, H, W]) }, { num_tokens: '4' });
writeFileSync(join(dir, 'corrupt.safetensors'), 'not a safetensors file');
writeFileSync(join(dir, 'vqgan.safetensors'), '');

const TINY = ['--tokens', 'train.safetensors', '--out', 'chain', '--T', '2', '--width', '32', '--heads', '1', '--enc-depth', '1', '--dec-depth', '1',
  '--gpt-depth', '1', '--batch-size', '16', '--val-size', '32', '--eval-every', '2', '--log-every', '2'];

test('help and clear usage errors', async () => {
  for (const [args, want] of [[['--help'], /train.*\n.*\n\s+nll/], [['train', '--help'], /--scale t/], [['nll', '--help'], /--split test\|val/]] as const) {
    const r = await chain(...args);
    assert.equal(r.code, 0);
    assert.match(r.stdout, want);
  }
  const errors: [string[], number, RegExp][] = [
    [['frobnicate'], 2, /unknown command 'frobnicate'/],
    [['train', '--tokens', 'train.safetensors', '--out', 'x'], 2, /either --scale t or --all/],
    [['train', '--tokens', 'missing.safetensors', '--out', 'x', '--scale', '1'], 2, /token file .*missing.safetensors does not exist/],
    [['train', '--tokens', 'corrupt.safetensors', '--out', 'x', '--scale', '1'], 1, /corrupt.safetensors: .*not a safetensors file/],
    [['train', '--tokens', 'train.safetensors', '--out', 'x', '--scale', '1', '--K', '4'], 1, /K = 8 codebook, the chain is configured with K = 4/],
    [['train', '--tokens', 'vqgan-encoded.safetensors', '--out', 'x', '--scale', '1'], 1, /ids reach 7 but K = 4/],
    [['train', '--tokens', 'train.safetensors', '--out', 'x', '--scale', '1', '--schedule', 'cosine'], 2, /--schedule: unknown schedule 'cosine'/],
    [['train', '--tokens', 'train.safetensors', '--out', 'x', '--scale', '4'], 2, /--scale 4 outside 1\.\.3/],
    [['train', '--steps', 'many'], 2, /Run 'imagebart chain train --help'/],
    [['nll', '--manifest', 'none.json', '--tokens', 'test.safetensors'], 2, /none.json does not exist/],
  ];
  for (const [args, code, message] of errors) {
    const r = await chain(...args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  assert.ok(!existsSync(join(dir, 'x', 'scale1')), 'nothing trained');
});

test('train --scale 1, then --all (T = 2) resumes it and trains scale 2 in parallel, writes the manifest; nll', async (t) => {
  const one = await chain('train', ...TINY, '--scale', '1', '--steps', '4');
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stderr, /scale 1: done at step 4, val NLL [\d.]+ bits\/token/);

  const all = await chain('train', ...TINY, '--all', '--steps', '6', '--vqgan', 'vqgan.safetensors');
  assert.equal(all.code, 0, all.stderr);
  for (const line of all.stderr.split('\n').filter((l) => l && !/ step \d/.test(l))) t.diagnostic(line);
  assert.match(all.stderr, /in 2 processes at a time, BLAS threads \d+ \+ \d+/);
  assert.match(all.stderr, /^\[scale 1\] scale 1: resumed from .* at step 4$/m);
  assert.match(all.stderr, /^\[scale 2\] scale 2\/2: gpt, /m);
  const m = readManifest(join(dir, 'chain', 'chain.json'));
  assert.deepEqual({ K: m.K, T: m.T, schedule: m.schedule, tokenShape: m.tokenShape, vqgan: m.vqgan, beta: m.beta },
    { K, T: 2, schedule: 'geometric', tokenShape: [H, W], vqgan: join('..', 'vqgan.safetensors'), beta: [0, 0.5, 1] });
  for (const s of m.scales) {
    const meta = readSafetensorsHeader(join(dir, 'chain', s.checkpoint)).metadata;
    assert.equal(meta.step, '6', `scale ${s.t} trained to --steps`);
  }

  const text = await chain('nll', '--manifest', 'chain/chain.json', '--tokens', 'test.safetensors');
  assert.equal(text.code, 0, text.stderr);
  for (const line of text.stdout.trimEnd().split('\n')) t.diagnostic(line);
  for (const row of ['1', '2', 'prior', 'total']) {
    const bits = Number(new RegExp(`^${row}\\s+(\\S+)$`, 'm').exec(text.stdout)?.[1]);
    assert.ok(Number.isFinite(bits) && bits >= 0, `${row}: ${text.stdout}`);
  }
  const json = await chain('nll', '--manifest', 'chain/chain.json', '--tokens', 'test.safetensors', '--json', '--limit', '40');
  const r = JSON.parse(json.stdout) as { grids: number; perScale: number[]; prior: number; total: number };
  assert.equal(r.grids, 40);
  assert.ok(r.perScale.every(Number.isFinite));
  assert.ok(Math.abs(r.total - r.perScale[0] - r.perScale[1] - r.prior) < 1e-9);
  const val = JSON.parse((await chain('nll', '--manifest', 'chain/chain.json', '--split', 'val', '--json')).stdout) as { grids: number; total: number };
  assert.equal(val.grids, 32, 'the held-out validation grids');
  assert.ok(Number.isFinite(val.total));

  const wrongK = await chain('nll', '--manifest', 'chain/chain.json', '--tokens', 'k16.safetensors');
  assert.equal(wrongK.code, 1);
  assert.match(wrongK.stderr, /K = 16 codebook, the chain has K = 8/);
  const otherModel = await chain('train', ...TINY, '--scale', '1', '--width', '64');
  assert.equal(otherModel.code, 1);
  assert.match(otherModel.stderr, /belongs to another scale or model/);
});
