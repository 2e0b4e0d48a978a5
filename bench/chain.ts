/**
 * bench:chain — one scale's training step against PyTorch on the same libtorch.
 *
 * The model is an encoder-decoder scale as the chain trains it: encoder 4 / decoder 2 layers, width 256,
 * 4 heads × 64, 8×8 = 64 tokens, K = 256 codes, scale t = 2 of T = 3 (geometric schedule), batch 32.
 * Two workloads, each in TypeScript (the real denoiser and ScaleTrainer) and in bench/chain_ref.py (a
 * plain PyTorch re-implementation: pre-LN, dim_head 64, bias-free q/k/v, exact-GELU MLP ×4, learned
 * positions, cross-attention) when Debian's python3-torch is there:
 *  - train: `ScaleTrainer.trainStep` — a batch of x_0, the forward chain to (x_{t-1}, x_t), the
 *    posterior, loss α_mix·KL + (1-α_mix)·CE with α_mix = 1, backward, gradient clipping at 1,
 *    AdamW(0.9, 0.95, wd 0.01), EMA update;
 *  - model: forward + cross-entropy + backward + AdamW on a fixed batch (x_t, x_{t-1}).
 * Both sides load the same weights and inputs (a safetensors file written here), and a one-off check
 * first compares parameter count, state-dict keys/shapes, logits, loss and gradient norm.
 * The two sides alternate step by step (bench/common.ts), for every thread split; the table gives
 * medians, and bench/results/chain.json the best split of each side, ratio = TS ms / PyTorch ms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { forwardChain, posterior, denoisingLoss } from '../src/diffusion/index.js';
import { ScaleTrainer, writeTokenFile, type ScaleTrainConfig } from '../src/chain/index.js';
import { Reference, sideBySide, threadSplits, writeResult, bestSplit, type Workload, type SplitResults, checkReference, type ReferenceReport } from './common.js';

const K = 256, SIDE = 8, GRIDS = 1024, BATCH = 32;
const REF = 'bench/chain_ref.py';

// ---- the model and its trainer, on random token grids
const outDir = mkdtempSync(join(tmpdir(), 'bench-chain-'));
T.manualSeed(1234);
const tokenFile = join(outDir, 'tokens.safetensors');
const grids = T.randint(0, K, [GRIDS, SIDE, SIDE]);
writeTokenFile(tokenFile, grids, { K });
const config: ScaleTrainConfig = {
  t: 2, chain: { K, T: 3, schedule: 'geometric' },
  model: { type: 'xtransformer', dim: 256, heads: 4, encoderDepth: 4, decoderDepth: 2 },
  train: tokenFile, valSize: BATCH, out: outDir, steps: 1_000_000, batchSize: BATCH,
};
const trainer = new ScaleTrainer(config, { log: () => {} });
const { denoiser, schedule, optimizer } = trainer;
const t = denoiser.t;
const params = denoiser.numParameters();

// ---- a fixed batch for the model workload and the check
const x0 = T.randint(0, K, [BATCH, SIDE * SIDE]);
const [xtm1, xt] = T.noGrad(() => forwardChain(x0, schedule, K, { steps: t }).slice(t - 1)).map((x) => x.keep());

// ---- the shared file: weights, inputs, and outputs for the reference to check
const shared = join(outDir, 'bench.safetensors');
const check = T.tidy(() => {
  const tensors = new Map<string, T.Tensor>();
  for (const [k, v] of denoiser.stateDict()) tensors.set(`model.${k}`, v.detach());
  tensors.set('input.data', grids.flatten(1)).set('input.x0', x0).set('input.xtm1', xtm1).set('input.xt', xt);
  const logits = denoiser.logits(xt, xtm1);
  const loss = denoisingLoss(logits, xtm1, T.noGrad(() => posterior(x0, xt, t, schedule, K)), 1).loss;
  loss.backward();
  const gradNorm = T.noGrad(() => Math.sqrt(denoiser.parameters().reduce((a, p) => a + (p.grad ? p.grad.square().sum().item() : 0), 0)));
  optimizer.zeroGrad();
  tensors.set('check.logits', logits.detach()).set('check.loss', loss.detach().reshape(1)).set('check.grad_norm', T.tensor([gradNorm]));
  const meta = {
    t, K, T: schedule.T, tokens: SIDE * SIDE, batch: BATCH, beta: schedule.beta, alphacum: schedule.alphacum, alpha: schedule.alpha,
    dim: 256, heads: 4, dim_head: 64, encoder_depth: 4, decoder_depth: 2, lr: optimizer.lr, weight_decay: 0.01, grad_clip: 1, ema_decay: 0.9999,
  };
  T.saveSafetensors(shared, tensors, { config: JSON.stringify(meta) });
  return { loss: loss.item(), gradNorm };
});

interface RefCheck extends ReferenceReport {
  logits_max_abs_diff: number;
  loss_rel_diff: number;
  grad_norm_rel_diff: number;
}

/** The reference rebuilds the model from the file: same parameter count, keys, shapes, logits, loss and gradient? */
function referenceCheck(): RefCheck | undefined {
  const c = checkReference<RefCheck>(REF, shared, denoiser, {
    logits_max_abs_diff: [1e-4, 'logits, max |Δ|'],
    loss_rel_diff: [1e-5, 'loss, relative Δ'],
    grad_norm_rel_diff: [1e-4, 'gradient norm, relative Δ'],
  });
  if (!c) return undefined;
  console.log(`same model: ${Object.keys(c.keys).length} state-dict keys and shapes equal; |Δlogits| ${c.logits_max_abs_diff.toExponential(1)}, ` +
    `loss ${check.loss.toFixed(5)} (rel Δ ${c.loss_rel_diff.toExponential(1)}), grad norm ${check.gradNorm.toFixed(5)} (rel Δ ${c.grad_norm_rel_diff.toExponential(1)})`);
  return c;
}

const refCheck = referenceCheck();
const ref = Reference.start(REF, [shared]);
if (!ref) console.log(`TypeScript model: ${params.toLocaleString('en')} parameters`);

const work: Workload[] = [
  { name: 'train', ts: () => { trainer.trainStep(); } },
  { name: 'model', ts: () => T.tidy(() => {
    denoisingLoss(denoiser.logits(xt, xtm1), xtm1, undefined, 0).loss.backward();
    optimizer.stepUpdate();
    optimizer.zeroGrad();
  }) },
];

const cores = availableParallelism();
const rows: SplitResults[] = [];
const ms = (x: number | null) => (x === null ? '       -' : x.toFixed(1).padStart(8));
const tps = (x: number | null) => (x === null ? '      -' : ((BATCH * SIDE * SIDE * 1000) / x).toFixed(0).padStart(7));
console.log(`\n${'split'.padEnd(14)} ${'workload'.padEnd(8)} ${'ts ms'.padStart(8)} ${'torch ms'.padStart(8)} ${'ratio'.padStart(6)} ${'ts tok/s'.padStart(9)} ${'torch tok/s'.padStart(11)}`);
try {
  for (const [intra, blas] of threadSplits(cores)) {
    T.setThreads({ intraOp: intra, blas });
    await ref?.threads(intra, blas);
    const results = await sideBySide(work, ref);
    rows.push({ split: `${intra}+${blas}`, results });
    for (const w of work) {
      const x = results[w.name]!;
      console.log(`${`ATen ${intra} + BLAS ${blas}`.padEnd(14)} ${w.name.padEnd(8)} ${ms(x.ts)} ${ms(x.torch)} ${String(x.ratio ?? '-').padStart(6)} ${tps(x.ts).padStart(9)} ${tps(x.torch).padStart(11)}`);
    }
  }
} finally {
  ref?.close();
  rmSync(outDir, { recursive: true, force: true });
}

console.log('\nbest split of each side (median):');
const summary: Record<string, unknown> = {};
for (const [name, key] of [['train', 'step_ms'], ['model', 'model_step_ms']] as const) {
  const b = bestSplit(rows, name);
  summary[key] = b;
  console.log(`${name.padEnd(6)} ts ${b.ts} ms (${b.ts_split})  torch ${b.torch ?? '-'} ms (${b.torch_split ?? '-'})  ratio ${b.ratio ?? '-'}`);
}
writeResult('bench/results/chain.json', {
  ...summary,
  ratio_definition: 'TypeScript ms / PyTorch ms at each side\'s best split (≤ 1.10 is the target); step_ms: ScaleTrainer.trainStep, model_step_ms: forward + CE + backward + AdamW',
  model: { ...config.model, dim_head: 64, K, tokens: SIDE * SIDE, t, T: schedule.T, batch: BATCH, parameters: params },
  reference_check: refCheck ? { parameters: refCheck.parameters, logits_max_abs_diff: refCheck.logits_max_abs_diff, loss_rel_diff: refCheck.loss_rel_diff, grad_norm_rel_diff: refCheck.grad_norm_rel_diff } : null,
  machine: { cores, blas: T.getThreads().blasLibrary },
  rounds: Number(process.env.BENCH_STEPS ?? 7),
  splits: rows,
});
