/**
 * eval:completion — the quality evidence of issue 5 on a trained MNIST chain: the paper's Fig. 5 effect.
 *
 * Two chains over the same VQGAN tokens (32×32 MNIST → 8×8 grids), about the same total parameters:
 * - T = 3 ImageBART (runs/chain-mnist-T3/chain.json): two encoder-decoder scales and a GPT at scale 3;
 * - T = 1 left-to-right baseline (runs/chain-mnist-T1/chain.json): one GPT on x0 alone. With T = 1 its
 *   only scale ignores x_T, so maskedEdit samples it left to right with the kept tokens forced — the
 *   baseline the paper compares to: it sees no context below the position it draws.
 *
 * For N (64) held-out MNIST test images, chosen by a seeded permutation, read from the MNIST IDX files
 * (the real pixels, so errors are against the originals) and tokenized with the chain's VQGAN:
 * 1. 64 unconditional samples of each chain → docs/mnist-samples-T3.png, docs/mnist-samples-T1.png;
 * 2. upper-half completion given the lower half (named mask 'upper-half': token rows 0–3 repainted,
 *    4–7 kept), maskedEdit with its defaults for both chains, decoded without compositing (every pixel
 *    is the model's) → docs/mnist-completion.png, 16 columns, rows: original | VQGAN reconstruction |
 *    masked input (repainted area grey) | T = 3 | T = 1;
 * 3. metrics over all N on the repainted pixels (rows 0–15 of 32), values in [-1, 1]: L1 and MSE against
 *    the originals and against the VQGAN reconstructions, with references (reconstruction vs original:
 *    the floor; an all-black upper half; the unconditional samples' upper halves: no context at all);
 *    the repainted tokens equal to the original's; two coherence proxies: a 5-NN pixel classifier on the
 *    60 000 MNIST training digits agrees with the true label of the completed digit (ceiling: the
 *    reconstruction; what the lower half alone tells: 5-NN on lower-half pixels only), and seam
 *    continuity (ink of the kept row 16 continued by ink in the completion's row 15 within ±1 px, F1);
 * 4. the chain NLL (negative ELBO, bits per token; exact NLL for T = 1) on 1000 test grids (the first
 *    1000 of a seeded permutation of the token file).
 * Prints a table and writes bench/results/completion.json.
 *
 * Options: --t3 FILE --t1 FILE --count N --show N --seed N --draws N (completions per image, default 4; metrics
 * averaged) --nll N --out FILE --docs DIR.
 */
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { tensor, tidy, noGrad, manualSeed, getThreads, type Tensor } from '../src/torch/index.js';
import { readTokenFile, chainNll } from '../src/chain/index.js';
import { encodePng, loadMnist, makeGrid, permutation, type RGBAImage } from '../src/data/index.js';
import {
  decodeTokens, loadSamplingChain, maskedEdit, namedMask, sample, tokenMask, type SamplingChain, type FirstStage,
} from '../src/sample/index.js';

const { values: args } = parseArgs({
  options: {
    t3: { type: 'string', default: 'runs/chain-mnist-T3/chain.json' },
    t1: { type: 'string', default: 'runs/chain-mnist-T1/chain.json' },
    tokens: { type: 'string', default: 'runs/tokens-mnist-test.safetensors' },
    count: { type: 'string', default: '64' },
    show: { type: 'string', default: '16' },
    seed: { type: 'string', default: '1' },
    draws: { type: 'string', default: '4' },
    nll: { type: 'string', default: '1000' },
    out: { type: 'string', default: 'bench/results/completion.json' },
    docs: { type: 'string', default: 'docs' },
  },
  strict: true,
});
const N = Number(args.count), SHOW = Math.min(Number(args.show), N), SEED = Number(args.seed);
const DRAWS = Number(args.draws), NLL_COUNT = Number(args.nll);

const started = performance.now();
const timings: Record<string, number> = {};
function timed<T>(name: string, fn: () => T): T {
  const t0 = performance.now();
  const r = fn();
  timings[name] = Number(((performance.now() - t0) / 1000).toFixed(2));
  process.stderr.write(`[completion] ${name}: ${timings[name]} s\n`);
  return r;
}

// ---------------------------------------------------------------- models and data
const methods = timed('load', () => ({
  T3: loadSamplingChain(args.t3!),
  T1: loadSamplingChain(args.t1!),
}));
const stage: FirstStage = methods.T3.firstStage;
const vqT3 = methods.T3.manifest.vqgan && resolve(dirname(args.t3!), methods.T3.manifest.vqgan);
const vqT1 = methods.T1.manifest.vqgan && resolve(dirname(args.t1!), methods.T1.manifest.vqgan);
if (vqT3 !== vqT1) throw new Error(`the two chains name different VQGANs (${vqT3}, ${vqT1}): their tokens are not comparable`);
const R = stage.config.ddconfig.resolution;
const [h, w] = methods.T3.chain.tokenShape;
if (R !== 32 || h !== 8 || w !== 8) throw new Error(`expected 32×32 images and 8×8 grids, got ${R} and ${h}×${w}`);
const PLANE = R * R;
const paramCount = (c: SamplingChain) => c.denoisers.reduce((s, d) => s + d.numParameters(), 0);

const test = loadMnist({ split: 'test', resolution: R });
const train = loadMnist({ split: 'train', resolution: R });
const picked = Array.from(permutation(test.size, SEED).subarray(0, N));
const originals = new Float32Array(N * PLANE);
picked.forEach((i, b) => originals.set(test.get(i).image, b * PLANE));
const labels = picked.map((i) => test.labels[i]);

// x0: the originals through the VQGAN encoder, as editImage does; checked against the token file.
const tokenFile = readTokenFile(args.tokens!);
const { x0, fileAgreement } = timed('encode', () => noGrad(() => tidy(() => {
  const x = stage.encodeToIndices(tensor(originals, [N, 1, R, R])).long();
  const fromFile = tokenFile.tokens.indexSelect(0, tensor(BigInt64Array.from(picked, BigInt)));
  return { x0: x, fileAgreement: x.eq(fromFile).float().mean().item() };
})));
const recon = decodeTokens(stage, x0).data;

// ---------------------------------------------------------------- pictures
function upscale(img: RGBAImage, f: number): RGBAImage {
  const W = img.width * f, H = img.height * f, rgba = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) rgba.set(img.rgba.subarray(((Math.floor(y / f) * img.width) + Math.floor(x / f)) * 4, ((Math.floor(y / f) * img.width) + Math.floor(x / f)) * 4 + 4), (y * W + x) * 4);
  }
  return { width: W, height: H, rgba };
}
const docs = args.docs!;
mkdirSync(docs, { recursive: true });
function writePng(name: string, img: RGBAImage): string {
  const path = `${docs}/${name}`;
  writeFileSync(path, encodePng(img.rgba, img.width, img.height));
  return path;
}
const shape = { channels: 1 as const, height: R, width: R };
const tiles = (data: Float32Array, n: number) => Array.from({ length: n }, (_, b) => data.subarray(b * PLANE, (b + 1) * PLANE));

// ---------------------------------------------------------------- 1. unconditional samples
const samples: Record<string, Float32Array> = {};
const files: string[] = [];
for (const [name, m] of Object.entries(methods)) {
  samples[name] = timed(`samples ${name}`, () => {
    const r = sample(m.chain, { batch: N, seed: SEED });
    return decodeTokens(stage, r.tokens).data;
  });
  files.push(writePng(`mnist-samples-${name}.png`, upscale(makeGrid(tiles(samples[name], N), shape, { nrow: 8 }), 2)));
}

// ---------------------------------------------------------------- 2. upper-half completions
const pixelKeep = namedMask('upper-half', R); // 1 = kept: rows 16..31
const keep = tokenMask(pixelKeep, R, [h, w]); // [1, 8, 8]: token rows 4..7 kept
const repaintedTokens = keep.logicalNot().expand(N, h, w);
const completions: Record<string, Float32Array[]> = {};
const tokenMatch: Record<string, number[]> = {};
const editSettings: Record<string, unknown> = {};
for (const [name, m] of Object.entries(methods)) {
  completions[name] = [];
  tokenMatch[name] = [];
  for (let d = 0; d < DRAWS; d++) {
    timed(`completion ${name} draw ${d + 1}`, () => noGrad(() => tidy(() => {
      const r = maskedEdit(m.chain, x0, keep, { seed: SEED + 1000 + d });
      if (!r.tokens.eq(x0).logicalOr(repaintedTokens).all().item()) throw new Error(`${name}: kept tokens changed`);
      editSettings[name] = { repeats: r.repeats, settings: r.settings };
      tokenMatch[name].push(r.tokens.eq(x0).logicalAnd(repaintedTokens).float().sum().item() / repaintedTokens.float().sum().item());
      completions[name].push(decodeTokens(stage, r.tokens).data);
    })));
  }
}
const masked = originals.map((v, i) => (pixelKeep[i % PLANE] ? v : 0)); // repainted pixels grey
const rows = [originals, recon, masked, completions.T3[0], completions.T1[0]].flatMap((data) => tiles(data, SHOW));
files.push(writePng('mnist-completion.png', upscale(makeGrid(rows, shape, { nrow: SHOW, padValue: 255 }), 2)));

// ---------------------------------------------------------------- 3. metrics
const repainted = Array.from(pixelKeep, (k) => !k); // rows 0..15
const REPAINTED_PIXELS = repainted.filter(Boolean).length;
/** Mean over images of the masked-region mean |a−b| and (a−b)², with the standard error of the L1 mean. */
function perImageL1(a: Float32Array, b: Float32Array): number[] {
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    let l1 = 0;
    for (let p = 0; p < PLANE; p++) if (repainted[p]) l1 += Math.abs(Math.max(-1, Math.min(1, a[n * PLANE + p])) - Math.max(-1, Math.min(1, b[n * PLANE + p])));
    out.push(l1 / REPAINTED_PIXELS);
  }
  return out;
}
/** T3 − T1 masked-region L1 against the originals, per image (averaged over draws): mean, standard error, images where T3 is closer. */
function pairedL1(): { meanDiff: number; se: number; t3Closer: number } {
  const avg = (draws: Float32Array[]) => draws.map((c) => perImageL1(c, originals)).reduce((s, v) => s.map((x, n) => x + v[n] / draws.length), new Array<number>(N).fill(0));
  const a = avg(completions.T3), b = avg(completions.T1);
  const d = a.map((x, n) => x - b[n]);
  const m = mean(d);
  const sd = Math.sqrt(d.reduce((s, x) => s + (x - m) ** 2, 0) / (N - 1));
  return { meanDiff: r4(m), se: r4(sd / Math.sqrt(N)), t3Closer: d.filter((x) => x < 0).length / N };
}
function regionError(a: Float32Array, b: Float32Array): { l1: number; mse: number; l1_se: number } {
  const l1s: number[] = [], mses: number[] = [];
  for (let n = 0; n < N; n++) {
    let l1 = 0, se = 0;
    for (let p = 0; p < PLANE; p++) {
      if (!repainted[p]) continue;
      const d = Math.max(-1, Math.min(1, a[n * PLANE + p])) - Math.max(-1, Math.min(1, b[n * PLANE + p]));
      l1 += Math.abs(d); se += d * d;
    }
    l1s.push(l1 / REPAINTED_PIXELS); mses.push(se / REPAINTED_PIXELS);
  }
  const m = mean(l1s);
  const sd = Math.sqrt(l1s.reduce((s, x) => s + (x - m) ** 2, 0) / (l1s.length - 1));
  return { l1: r4(m), mse: r4(mean(mses)), l1_se: r4(sd / Math.sqrt(l1s.length)) };
}
const r4 = (x: number) => Number(x.toFixed(4));
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const averageDraws = (fn: (data: Float32Array) => Record<string, number>, draws: Float32Array[]) => {
  const rs = draws.map(fn);
  return Object.fromEntries(Object.keys(rs[0]).map((k) => [k, r4(rs.reduce((s, r) => s + r[k], 0) / rs.length)]));
};

// 5-NN classifier on the 28×28 pixels of the 60 000 training digits (a 32×32 image's centre crop).
const SRC = 28, PADDING = (R - SRC) / 2;
const trainPixels = tensor(Float32Array.from(train.pixels, (v) => v / 255), [train.size, SRC * SRC]).keep();
const trainLabels = tensor(Int32Array.from(train.labels), [train.size]).long().keep();
const lowerHalf = tensor(Float32Array.from({ length: SRC * SRC }, (_, p) => (Math.floor(p / SRC) >= R / 2 - PADDING ? 1 : 0)), [1, SRC * SRC]).keep();
function knnLabels(images: Float32Array, o: { lowerOnly?: boolean } = {}): number[] {
  const crop = new Float32Array(N * SRC * SRC);
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < SRC; y++) {
      for (let x = 0; x < SRC; x++) crop[(n * SRC + y) * SRC + x] = (Math.max(-1, Math.min(1, images[n * PLANE + (y + PADDING) * R + x + PADDING])) + 1) / 2;
    }
  }
  return noGrad(() => tidy(() => {
    let q = tensor(crop, [N, SRC * SRC]);
    let t = trainPixels;
    if (o.lowerOnly) { q = q.mul(lowerHalf); t = t.mul(lowerHalf); }
    const d2 = q.square().sum(1, true).add(t.square().sum(1).unsqueeze(0)).sub(q.matmul(t.transpose(0, 1)).mul(2)); // [N, 60000]
    const [, idx] = d2.topk(5, 1, false);
    const votes = trainLabels.index([idx]).oneHot(10).sum(1); // [N, 10]
    return votes.argmax(1).toNumbers();
  }));
}
const labelAgreement = (images: Float32Array, o?: { lowerOnly?: boolean }) => knnLabels(images, o).filter((c, n) => c === labels[n]).length / N;

// Seam continuity: ink (> 0) in the kept row 16 of the original continued by ink in row 15 of the image (±1 px), F1.
function seam(images: Float32Array): { recall: number; precision: number; f1: number } {
  let hitR = 0, totR = 0, hitP = 0, totP = 0;
  const ink = (data: Float32Array, n: number, y: number, x: number) => x >= 0 && x < R && data[n * PLANE + y * R + x] > 0;
  const near = (data: Float32Array, n: number, y: number, x: number) => ink(data, n, y, x - 1) || ink(data, n, y, x) || ink(data, n, y, x + 1);
  for (let n = 0; n < N; n++) {
    for (let x = 0; x < R; x++) {
      if (ink(originals, n, R / 2, x)) { totR++; if (near(images, n, R / 2 - 1, x)) hitR++; }
      if (ink(images, n, R / 2 - 1, x)) { totP++; if (near(originals, n, R / 2, x)) hitP++; }
    }
  }
  const recall = hitR / Math.max(1, totR), precision = hitP / Math.max(1, totP);
  return { recall: r4(recall), precision: r4(precision), f1: r4((2 * recall * precision) / Math.max(1e-9, recall + precision)) };
}

const metrics = timed('metrics', () => {
  const black = new Float32Array(N * PLANE).fill(-1);
  const rowFor = (draws: Float32Array[], extra: Record<string, unknown> = {}) => ({
    vsOriginal: averageDraws((c) => regionError(c, originals), draws),
    vsReconstruction: averageDraws((c) => regionError(c, recon), draws),
    knnLabelAgreement: r4(draws.reduce((s, c) => s + labelAgreement(c), 0) / draws.length),
    seam: averageDraws((c) => seam(c), draws),
    ...extra,
  });
  return {
    completion: {
      T3: rowFor(completions.T3, { repaintedTokensEqualOriginal: r4(mean(tokenMatch.T3)) }),
      T1: rowFor(completions.T1, { repaintedTokensEqualOriginal: r4(mean(tokenMatch.T1)) }),
      pairedL1T3minusT1: pairedL1(),
    },
    references: {
      reconstruction: rowFor([recon]),
      original: { knnLabelAgreement: r4(labelAgreement(originals)), seam: seam(originals) },
      allBlackUpperHalf: rowFor([black]),
      unconditionalSamplesT3: rowFor([samples.T3]),
      unconditionalSamplesT1: rowFor([samples.T1]),
      lowerHalfOnlyKnn: { knnLabelAgreement: r4(labelAgreement(originals, { lowerOnly: true })) },
    },
  };
});

// ---------------------------------------------------------------- 4. NLL on held-out grids
const nll = timed('nll', () => {
  const order = permutation(tokenFile.tokens.size(0), SEED + 7).subarray(0, NLL_COUNT);
  const grids = tokenFile.tokens.indexSelect(0, tensor(BigInt64Array.from(order, BigInt))).keep();
  return Object.fromEntries(Object.entries(methods).map(([name, m]) => {
    manualSeed(SEED + 7); // the forward-chain draw of the ELBO
    const r = chainNll(m.chain.denoisers, grids, m.chain.schedule, { batchSize: 100 });
    return [name, { total: r4(r.total), perScale: r.perScale.map(r4), prior: r4(r.prior) }];
  }));
});

// ---------------------------------------------------------------- report
const seconds = Number(((performance.now() - started) / 1000).toFixed(1));
const result = {
  issue: 5,
  what: 'upper-half completion given the lower half on held-out MNIST: T = 3 ImageBART vs a T = 1 left-to-right GPT of about the same size',
  chains: Object.fromEntries(Object.entries(methods).map(([name, m]) => [name, {
    manifest: resolve(name === 'T3' ? args.t3! : args.t1!), T: m.manifest.T, K: m.manifest.K, schedule: m.manifest.schedule,
    parameters: paramCount(m.chain), scales: m.chain.denoisers.map((d) => ({ t: d.t, parameters: d.numParameters() })),
  }])),
  vqgan: vqT3,
  images: { count: N, shown: SHOW, seed: SEED, testIndices: picked, labels, tokenFileAgreement: r4(fileAgreement) },
  mask: { name: 'upper-half', repaintedPixelRows: [0, R / 2 - 1], keptTokenRows: [h / 2, h - 1], repaintedTokens: (h / 2) * w },
  edit: { draws: DRAWS, seeds: Array.from({ length: DRAWS }, (_, d) => SEED + 1000 + d), composite: false, ...editSettings },
  units: 'pixels in [-1, 1]; L1 / MSE averaged over the repainted pixels (rows 0–15 of 32), then over images; l1_se: standard error over images',
  metrics,
  nll: { bitsPerToken: nll, grids: NLL_COUNT, note: 'T = 3: negative ELBO (an upper bound, one forward-chain draw); T = 1: exact NLL of the GPT. Token space only.' },
  files,
  layout: { 'mnist-completion.png': `${SHOW} columns (test images); rows: original | VQGAN reconstruction | masked input (repainted area grey) | T = 3 completion | T = 1 completion (draw 1, not composited); ×2 nearest`, 'mnist-samples-*.png': `${N} unconditional samples, 8 per row, ×2 nearest` },
  timings, seconds, threads: getThreads(),
};
mkdirSync(dirname(args.out!), { recursive: true });
writeFileSync(args.out!, JSON.stringify(result, null, 2) + '\n');

const c = metrics.completion, ref = metrics.references;
const line = (name: string, r: { vsOriginal: Record<string, number>; vsReconstruction: Record<string, number>; knnLabelAgreement: number; seam: Record<string, number> }) =>
  `${name.padEnd(34)} ${r.vsOriginal.l1.toFixed(4)} ±${r.vsOriginal.l1_se.toFixed(4)}  ${r.vsOriginal.mse.toFixed(4)}   ${r.vsReconstruction.l1.toFixed(4)}  ${r.vsReconstruction.mse.toFixed(4)}   ${(100 * r.knnLabelAgreement).toFixed(1).padStart(5)}%   ${r.seam.f1.toFixed(3)}`;
console.log(`\nupper-half completion, ${N} held-out MNIST digits, ${DRAWS} draw(s) each (masked region: ${REPAINTED_PIXELS} px)`);
console.log(`${''.padEnd(34)} L1 vs orig        MSE      L1 vs rec MSE      5-NN label  seam F1`);
console.log(line(`T=3 ImageBART (${(result.chains.T3.parameters / 1e6).toFixed(2)}M)`, c.T3));
console.log(line(`T=1 left-to-right GPT (${(result.chains.T1.parameters / 1e6).toFixed(2)}M)`, c.T1));
console.log(line('VQGAN reconstruction (floor)', ref.reconstruction));
console.log(line('all-black upper half', ref.allBlackUpperHalf));
console.log(line('unconditional T=3 sample', ref.unconditionalSamplesT3));
console.log(line('unconditional T=1 sample', ref.unconditionalSamplesT1));
console.log(`original: 5-NN label ${(100 * ref.original.knnLabelAgreement).toFixed(1)}%, seam F1 ${ref.original.seam.f1.toFixed(3)}; lower half alone: 5-NN label ${(100 * ref.lowerHalfOnlyKnn.knnLabelAgreement).toFixed(1)}%`);
console.log(`paired L1 vs orig, T=3 − T=1 per image: ${c.pairedL1T3minusT1.meanDiff.toFixed(4)} ± ${c.pairedL1T3minusT1.se.toFixed(4)} (s.e.); T=3 closer on ${(100 * c.pairedL1T3minusT1.t3Closer).toFixed(0)}% of images`);
console.log(`repainted tokens equal to the original's: T=3 ${(100 * mean(tokenMatch.T3)).toFixed(1)}%, T=1 ${(100 * mean(tokenMatch.T1)).toFixed(1)}%`);
console.log(`NLL on ${NLL_COUNT} test grids (bits/token): T=3 ${nll.T3.total.toFixed(3)} (per scale ${nll.T3.perScale.join(', ')}), T=1 ${nll.T1.total.toFixed(3)}`);
console.log(`token-file agreement of the re-encoded originals: ${(100 * fileAgreement).toFixed(2)}%`);
console.log(`files: ${files.join(', ')}; ${args.out}; ${seconds} s`);
