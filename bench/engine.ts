/**
 * bench:engine — binding overhead against PyTorch on the same libtorch.
 *
 * Two workloads, each in TypeScript and in bench/engine_ref.py (when Debian's python3-torch is
 * there), for every thread split (ATen intra-op × BLAS threads), in the same run:
 *  - a transformer training step: 4 pre-LN layers, d 256, 8 heads, MLP 1024, seq 64, batch 32,
 *    vocab 512, AdamW;
 *  - a conv step: batch 16, 64→64 channels, 3×3, 32×32, forward + backward.
 * The two sides alternate step by step (bench/common.ts), so both see the same background load.
 * Prints a table of medians and writes bench/results/engine.json with the best split of each side.
 */
import { availableParallelism } from 'node:os';
import * as T from '../src/torch/index.js';
import { Module, ModuleList, Linear, LayerNorm, Embedding, Conv2d } from '../src/nn/index.js';
import { AdamW } from '../src/optim/index.js';
import { Reference, sideBySide, threadSplits, writeResult, bestSplit, type Workload, type SplitResults } from './common.js';

const D = 256, H = 8, L = 4, MLP = 1024, S = 64, B = 32, V = 512;

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
  /** One scope per block frees its intermediates when it returns, as Python's reference counting does. */
  step(x: T.Tensor, mask: T.Tensor): T.Tensor {
    return T.tidy(() => this.forward(x, mask));
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
    for (const blk of this.blocks) x = blk.step(x, mask);
    return this.head.forward(this.ln.forward(x));
  }
}

/** The two workloads, built once; each call runs one step. */
function workloads(): Workload[] {
  T.manualSeed(0);
  const model = new GPT();
  const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.01 });
  const idx = T.randint(0, V, [B, S]);
  const tgt = T.randint(0, V, [B, S]);
  const mask = T.full([S, S], -Infinity).triu(1);
  const conv = new Conv2d(64, 64, 3, { padding: 1 });
  const x = T.randn([16, 64, 32, 32]);
  return [
    { name: 'transformer', ts: () => T.tidy(() => {
      opt.zeroGrad();
      T.crossEntropy(model.forward(idx, mask).view(-1, V), tgt.view(-1)).backward();
      opt.stepUpdate();
    }) },
    { name: 'conv', ts: () => T.tidy(() => {
      for (const p of conv.parameters()) p.grad = undefined;
      conv.forward(x).square().mean().backward();
    }) },
  ];
}

const cores = availableParallelism();
const ref = Reference.start('bench/engine_ref.py');
const work = workloads();
const rows: SplitResults[] = [];
const f = (x: number | null) => (x === null ? '      -' : x.toFixed(1).padStart(7));
for (const [intra, blas] of threadSplits(cores)) {
  T.setThreads({ intraOp: intra, blas });
  await ref?.threads(intra, blas);
  const results = await sideBySide(work, ref);
  rows.push({ split: `${intra}+${blas}`, results });
  const r = results;
  console.log(`ATen ${intra} + BLAS ${blas} | transformer ts ${f(r.transformer!.ts)} ms torch ${f(r.transformer!.torch)} ms ratio ${r.transformer!.ratio ?? '-'} | conv ts ${f(r.conv!.ts)} ms torch ${f(r.conv!.torch)} ms ratio ${r.conv!.ratio ?? '-'}`);
}
ref?.close();

const summary: Record<string, unknown> = {};
console.log('\nbest split of each side (median ms):');
for (const [name, key] of [['transformer', 'transformer_step_ms'], ['conv', 'conv_step_ms']] as const) {
  const b = bestSplit(rows, name);
  summary[key] = b;
  console.log(`${name.padEnd(12)} ts ${b.ts} ms (${b.ts_split})  torch ${b.torch ?? '-'} ms (${b.torch_split ?? '-'})  ratio ${b.ratio ?? '-'}`);
}
writeResult('bench/results/engine.json', { ...summary, machine: { cores, blas: T.getThreads().blasLibrary }, rounds: Number(process.env.BENCH_STEPS ?? 7), splits: rows });
