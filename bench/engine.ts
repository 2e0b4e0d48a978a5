/**
 * bench:engine — binding overhead against PyTorch on the same libtorch.
 *
 * Two workloads, each in TypeScript and in bench/engine_ref.py (when Debian's python3-torch is
 * there), for every thread split (ATen intra-op × BLAS threads), in the same run:
 *  - a transformer training step: 4 pre-LN layers, d 256, 8 heads, MLP 1024, seq 64, batch 32,
 *    vocab 512, AdamW;
 *  - a conv step: batch 16, 64→64 channels, 3×3, 32×32, forward + backward.
 * Prints a table of medians and writes bench/results/engine.json with the best split of each side.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as T from '../src/torch/index.js';
import { Module, ModuleList, Linear, LayerNorm, Embedding, Conv2d } from '../src/nn/index.js';
import { AdamW } from '../src/optim/index.js';

const D = 256, H = 8, L = 4, MLP = 1024, S = 64, B = 32, V = 512;
const STEPS = Number(process.env.BENCH_STEPS ?? 7);

class Block extends Module {
  readonly ln1 = this.module('ln1', new LayerNorm(D));
  readonly ln2 = this.module('ln2', new LayerNorm(D));
  readonly qkv = this.module('qkv', new Linear(D, 3 * D));
  readonly proj = this.module('proj', new Linear(D, D));
  readonly fc1 = this.module('fc1', new Linear(D, MLP));
  readonly fc2 = this.module('fc2', new Linear(MLP, D));
  forward(x: T.Tensor, mask: T.Tensor): T.Tensor {
    const [b, t] = x.shape as [number, number];
    const [q, k, v] = this.qkv.forward(this.ln1.forward(x)).view(b, t, 3, H, D / H).permute(2, 0, 3, 1, 4).unbind(0) as [T.Tensor, T.Tensor, T.Tensor];
    const y = T.attention(q, k, v, { mask }).transpose(1, 2).reshape(b, t, D);
    const x1 = x.add(this.proj.forward(y));
    return x1.add(this.fc2.forward(this.fc1.forward(this.ln2.forward(x1)).gelu()));
  }
}

class GPT extends Module {
  readonly tok = this.module('tok', new Embedding(V, D));
  readonly pos = this.param('pos', T.zeros([1, S, D]));
  readonly blocks = this.module('blocks', new ModuleList(Array.from({ length: L }, () => new Block())));
  readonly ln = this.module('ln', new LayerNorm(D));
  readonly head = this.module('head', new Linear(D, V, false));
  forward(idx: T.Tensor, mask: T.Tensor): T.Tensor {
    let x = this.tok.forward(idx).add(this.pos);
    for (const blk of this.blocks) x = blk.forward(x, mask);
    return this.head.forward(this.ln.forward(x));
  }
}

function timed(fn: () => void, n: number): number[] {
  for (let i = 0; i < 3; i++) fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function runTs(): { transformer: number; conv: number } {
  T.manualSeed(0);
  const model = new GPT();
  const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.01 });
  const idx = T.randint(0, V, [B, S]);
  const tgt = T.randint(0, V, [B, S]);
  const mask = T.full([S, S], -Infinity).triu(1);
  const transformer = median(timed(() => T.tidy(() => {
    opt.zeroGrad();
    T.crossEntropy(model.forward(idx, mask).view(-1, V), tgt.view(-1)).backward();
    opt.stepUpdate();
  }), STEPS));
  const conv = new Conv2d(64, 64, 3, { padding: 1 });
  const x = T.randn([16, 64, 32, 32]);
  const convMs = median(timed(() => T.tidy(() => {
    for (const p of conv.parameters()) p.grad = undefined;
    conv.forward(x).square().mean().backward();
  }), STEPS));
  return { transformer, conv: convMs };
}

function hasTorch(): boolean {
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

function runPy(intra: number, blas: number): { transformer: number; conv: number } {
  const r = spawnSync('/usr/bin/python3', ['bench/engine_ref.py', String(intra), String(blas), String(STEPS)], { encoding: 'utf-8' });
  if (r.status !== 0) throw new Error(`python reference failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { transformer_ms: number[]; conv_ms: number[] };
  return { transformer: median(j.transformer_ms), conv: median(j.conv_ms) };
}

const cores = availableParallelism();
// BENCH_SPLITS="2+1,1+2" narrows the thread splits; BENCH_NO_TORCH=1 skips the reference.
const splits: [number, number][] = process.env.BENCH_SPLITS
  ? process.env.BENCH_SPLITS.split(',').map((s) => s.split('+').map(Number) as [number, number])
  : [];
if (splits.length === 0) for (const i of [1, cores]) for (const b of [1, cores]) if (!splits.some(([x, y]) => x === i && y === b)) splits.push([i, b]);
const py = !process.env.BENCH_NO_TORCH && hasTorch();
if (!py) console.log('python3-torch not found: TypeScript only (apt-get install python3-torch for the side-by-side reference)');

type Row = { intra: number; blas: number; ts: { transformer: number; conv: number }; torch?: { transformer: number; conv: number } };
const rows: Row[] = [];
for (const [intra, blas] of splits) {
  T.setThreads({ intraOp: intra, blas });
  const ts = runTs();
  const torch = py ? runPy(intra, blas) : undefined;
  rows.push({ intra, blas, ts, torch });
  const f = (x?: number) => (x === undefined ? '     -' : x.toFixed(1).padStart(7));
  console.log(`intra ${intra} blas ${blas} | transformer ts ${f(ts.transformer)} ms torch ${f(torch?.transformer)} ms | conv ts ${f(ts.conv)} ms torch ${f(torch?.conv)} ms`);
}

const best = (side: 'ts' | 'torch', k: 'transformer' | 'conv') => {
  const cands = rows.filter((r) => r[side]).map((r) => ({ ms: r[side]![k], split: `${r.intra}+${r.blas}` }));
  return cands.sort((a, b) => a.ms - b.ms)[0];
};
const result: Record<string, unknown> = { machine: { cores, blas: T.getThreads().blasLibrary }, steps: STEPS, splits: rows };
console.log('\nbest split of each side (median ms):');
for (const [k, name] of [['transformer', 'transformer_step_ms'], ['conv', 'conv_step_ms']] as const) {
  const ts = best('ts', k)!;
  const torch = best('torch', k);
  const ratio = torch ? ts.ms / torch.ms : undefined;
  result[name] = { ts: +ts.ms.toFixed(2), torch: torch ? +torch.ms.toFixed(2) : null, ratio: ratio ? +ratio.toFixed(3) : null, ts_split: ts.split, torch_split: torch?.split ?? null };
  console.log(`${k.padEnd(12)} ts ${ts.ms.toFixed(1)} ms (${ts.split})  torch ${torch ? torch.ms.toFixed(1) + ` ms (${torch.split})` : '-'}  ratio ${ratio?.toFixed(3) ?? '-'}`);
}
if (!existsSync('bench/results')) mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/engine.json', JSON.stringify(result, null, 2) + '\n');
console.log('wrote bench/results/engine.json');
