/**
 * bench:vqgan — the first stage against PyTorch on the same libtorch.
 *
 * The model is the CLI's default for emoji (defaultTrainConfig('emoji'): 32×32 RGB → 8×8 tokens, ch 32,
 * ch_mult [1, 2, 2], one res block, attention at 8×8, 512 codes, embed_dim 32). Three workloads, each in
 * TypeScript (the real VQModel, VQGANLoss and VQGANTrainer.trainStep) and in bench/vqgan_ref.py (a plain
 * PyTorch re-implementation of taming's architecture) when Debian's python3-torch is there:
 *  - encode: 64 images → 8×8 token grids, no grad;
 *  - decode: 64 token grids → images, no grad;
 *  - train: one autoencoder step on 32 images, L1 + codebook loss, backward, Adam(0.5, 0.9) — the
 *    trainer's step before disc_start, so no discriminator and no perceptual loss on either side.
 * Both sides load the same weights and inputs (a safetensors file written here), and a one-off check
 * first compares parameter count, state-dict keys/shapes, outputs and the loss gradient's norm.
 * Both run the same kernels (swish is aten::silu on both) under the same malloc policy (the reference
 * applies the binding's IMAGEBART_MALLOC_TRIM setting to itself; without it PyTorch re-faults its freed
 * activations every step, which on a VM costs it up to 5× on encode and would flatter the ratio).
 * BENCH_ONLY=encode,decode,train narrows the workloads, BENCH_SPLITS the thread splits, BENCH_STEPS the rounds.
 * The two sides alternate step by step (bench/common.ts), for every thread split; the table gives
 * medians, and bench/results/vqgan.json the best split of each side, ratio = TS ms / PyTorch ms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import type { ImageDataset } from '../src/data/index.js';
import { VQGANTrainer } from '../src/vqgan/trainer.js';
import { defaultTrainConfig } from '../src/cli/vqgan.js';
import { Reference, sideBySide, threadSplits, writeResult, round, bestSplit, type Workload, type SplitResults, checkReference, type ReferenceReport } from './common.js';

const TRAIN_BATCH = 32;
const CODEC_BATCH = 64;
const REF = 'bench/vqgan_ref.py';

// ---- the model, through the real trainer (its step never reaches disc_start here)
const config = defaultTrainConfig('emoji');
config.batchSize = TRAIN_BATCH;
config.loss = { ...config.loss, discStart: Number.MAX_SAFE_INTEGER };
const { resolution: R, inChannels: C } = config.model.ddconfig;
const r = R / 2 ** (config.model.ddconfig.chMult.length - 1);

T.manualSeed(1234);
const xTrain = T.rand([TRAIN_BATCH, C, R, R]).mul(2).sub(1);
const xEncode = T.rand([CODEC_BATCH, C, R, R]).mul(2).sub(1);
const idxDecode = T.randint(0, config.model.nEmbed, [CODEC_BATCH, r, r]);

const trainImages = xTrain.toFloat32Array();
const data: ImageDataset = {
  name: 'bench-random', size: TRAIN_BATCH, channels: C as 1 | 3, resolution: R,
  get: (i) => ({ image: trainImages.subarray(i * C * R * R, (i + 1) * C * R * R) }),
};
const outDir = mkdtempSync(join(tmpdir(), 'bench-vqgan-'));
process.on('exit', () => rmSync(outDir, { recursive: true, force: true }));
const trainer = new VQGANTrainer(config, { outDir, train: data, write: () => {} });
const model = trainer.model;
const params = model.numParameters();

// ---- the shared file: weights, inputs, and outputs for the reference to check
const shared = join(outDir, 'bench.safetensors');
const check: Record<string, number> = {};
T.tidy(() => {
  const x = xTrain.narrow(0, 0, 4);
  const tensors = new Map<string, T.Tensor>();
  for (const [k, t] of model.stateDict()) tensors.set(`model.${k}`, t.detach());
  tensors.set('input.train', xTrain).set('input.encode', xEncode).set('input.decode', idxDecode);
  T.noGrad(() => {
    const { zq, loss, codes } = model.encode(x);
    const indices = T.randint(0, config.model.nEmbed, [4, r, r]);
    tensors.set('check.x', x).set('check.rec', model.decode(zq)).set('check.qloss', loss.reshape(1)).set('check.codes', codes);
    tensors.set('check.indices', indices).set('check.dec', model.decodeIndices(indices));
  });
  // The real objective's gradient (step 0: L1 + codebook loss), then the gradients are dropped again.
  const out = model.forward(x);
  const g = trainer.loss.generatorLoss(x, out.rec, out.qloss, 0, model.decoder.convOut.weight);
  g.loss.backward();
  const gradNorm = T.noGrad(() => Math.sqrt(model.parameters().reduce((a, p) => a + (p.grad ? p.grad.square().sum().item() : 0), 0)));
  trainer.optAE.zeroGrad();
  tensors.set('check.loss', g.loss.detach().reshape(1)).set('check.grad_norm', T.tensor([gradNorm]));
  T.saveSafetensors(shared, tensors, { train: JSON.stringify(config) });
  check.loss = g.loss.item();
  check.grad_norm = gradNorm;
});

interface RefCheck extends ReferenceReport {
  rec_max_abs_diff: number;
  dec_max_abs_diff: number;
  qloss_rel_diff: number;
  codes_mismatch: number;
  loss_rel_diff: number;
  grad_norm_rel_diff: number;
}

/** The reference rebuilds the model from the file: same parameter count, keys, shapes, outputs and gradient? */
function referenceCheck(): RefCheck | undefined {
  const c = checkReference<RefCheck>(REF, shared, model, {
    rec_max_abs_diff: [1e-4, 'reconstruction, max |Δ|'],
    dec_max_abs_diff: [1e-4, 'decode from indices, max |Δ|'],
    qloss_rel_diff: [1e-4, 'codebook loss, relative Δ'],
    codes_mismatch: [1, 'codes that differ'],
    loss_rel_diff: [1e-4, 'training loss, relative Δ'],
    grad_norm_rel_diff: [1e-3, 'gradient norm, relative Δ'],
  });
  if (!c) return undefined;
  console.log(`same model: ${Object.keys(c.keys).length} state-dict keys and shapes equal; |Δrec| ${c.rec_max_abs_diff.toExponential(1)}, ` +
    `|Δdec| ${c.dec_max_abs_diff.toExponential(1)}, codes equal, loss ${check.loss!.toFixed(5)} (rel Δ ${c.loss_rel_diff.toExponential(1)}), ` +
    `grad norm ${check.grad_norm!.toFixed(5)} (rel Δ ${c.grad_norm_rel_diff.toExponential(1)})`);
  return c;
}

const refCheck = referenceCheck();
const ref = Reference.start(REF, [shared]);
if (!ref) console.log(`TypeScript model: ${params.toLocaleString('en')} parameters`);

const all: Workload[] = [
  { name: 'encode', ts: () => T.noGrad(() => T.tidy(() => { model.encodeToIndices(xEncode); })) },
  { name: 'decode', ts: () => T.noGrad(() => T.tidy(() => { model.decodeIndices(idxDecode); })) },
  { name: 'train', ts: () => { trainer.trainStep(xTrain); } },
];
// BENCH_ONLY="encode,decode" narrows the workloads (for profiling one of them).
const only = process.env.BENCH_ONLY?.split(',');
const work = only ? all.filter((w) => only.includes(w.name)) : all;
const IMAGES: Record<string, number> = { encode: CODEC_BATCH, decode: CODEC_BATCH, train: TRAIN_BATCH };

const cores = availableParallelism();
const rows: SplitResults[] = [];
const ms = (x: number | null) => (x === null ? '       -' : x.toFixed(1).padStart(8));
const ips = (name: string, x: number | null) => (x === null ? '      -' : ((IMAGES[name]! * 1000) / x).toFixed(0).padStart(7));
console.log(`\n${'split'.padEnd(14)} ${'workload'.padEnd(8)} ${'ts ms'.padStart(8)} ${'torch ms'.padStart(8)} ${'ratio'.padStart(6)} ${'ts img/s'.padStart(9)} ${'torch img/s'.padStart(11)}`);
try {
  for (const [intra, blas] of threadSplits(cores)) {
    T.setThreads({ intraOp: intra, blas });
    await ref?.threads(intra, blas);
    const results = await sideBySide(work, ref);
    rows.push({ split: `${intra}+${blas}`, results });
    for (const w of work) {
      const x = results[w.name]!;
      console.log(`${`ATen ${intra} + BLAS ${blas}`.padEnd(14)} ${w.name.padEnd(8)} ${ms(x.ts)} ${ms(x.torch)} ${String(x.ratio ?? '-').padStart(6)} ${ips(w.name, x.ts).padStart(9)} ${ips(w.name, x.torch).padStart(11)}`);
    }
  }
} finally {
  ref?.close();
}

// Each side at its own best split (bestSplit): the ratio users see when both are tuned.
const summary: Record<string, unknown> = {};
console.log('\nbest split of each side (median):');
for (const [name, key] of [['encode', 'encode_images_per_s'], ['decode', 'decode_images_per_s'], ['train', 'train_step_ms']] as const) {
  if (!work.some((w) => w.name === name)) continue;
  const b = bestSplit(rows, name);
  const perS = (m: number) => round((IMAGES[name]! * 1000) / m, 1);
  // Both sides at the same split, for each split: under background load the best-of-each-side ratio
  // rides on one lucky median, and these show how much it moves.
  const bySplit = Object.fromEntries(rows.map((row) => [row.split, row.results[name]!.ratio]));
  const splits = { ts_split: b.ts_split, torch_split: b.torch_split, ratio_by_split: bySplit };
  summary[key] = name === 'train'
    ? { ts: b.ts, torch: b.torch, ratio: b.ratio, ...splits }
    : { ts: perS(b.ts), torch: b.torch ? perS(b.torch) : null, ratio: b.ratio, ts_ms: b.ts, torch_ms: b.torch, ...splits };
  console.log(`${name.padEnd(7)} ts ${b.ts} ms (${b.ts_split}, ${perS(b.ts)} img/s)  torch ${b.torch ?? '-'} ms (${b.torch_split ?? '-'}${b.torch ? `, ${perS(b.torch)} img/s` : ''})  ratio ${b.ratio ?? '-'}`);
}
writeResult('bench/results/vqgan.json', {
  ...summary,
  ratio_definition: 'TypeScript ms / PyTorch ms at each side\'s best split (≤ 1.10 is the target)',
  model: { config: 'defaultTrainConfig("emoji")', parameters: params, train_batch: TRAIN_BATCH, codec_batch: CODEC_BATCH },
  reference: { script: REF, swish: 'F.silu (aten::silu, as the TypeScript side)', malloc: `binding policy (IMAGEBART_MALLOC_TRIM=${process.env.IMAGEBART_MALLOC_TRIM ?? 'default 1 GiB'})` },
  reference_check: refCheck ? { parameters: refCheck.parameters, rec_max_abs_diff: refCheck.rec_max_abs_diff, dec_max_abs_diff: refCheck.dec_max_abs_diff, loss_rel_diff: refCheck.loss_rel_diff, grad_norm_rel_diff: refCheck.grad_norm_rel_diff } : null,
  machine: { cores, blas: T.getThreads().blasLibrary },
  rounds: Number(process.env.BENCH_STEPS ?? 7),
  splits: rows,
});
