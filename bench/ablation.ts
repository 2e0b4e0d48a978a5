/**
 * bench:ablation — the paper's Tab. 3 at small scale: does a longer chain (T) help, at the same total
 * parameters and the same training compute?
 *
 * Per dataset (MNIST, Fashion-MNIST), one VQGAN (32×32 → 8×8 tokens) and one feature classifier; then
 * for T ∈ {1, 2, 4} and seeds {0, 1} a chain whose scales share the parameter budget (T = 1 is one
 * left-to-right GPT on x0, the Taming Transformers baseline) and every scale trains the same number of
 * steps at the same batch size, so the total training FLOPs are about equal (each of T scales is 1/T of
 * the budget). Each chain is scored by
 * - unconditional Fréchet distance of N samples (classifier features, against the training split), and
 * - upper-half completion Fréchet distance of N held-out images whose upper half the chain repaints,
 * beside the reference points (N real held-out images, N VQGAN reconstructions). The README table
 * puts the paper's FFHQ figures beside them; docs/ablation/ holds each T's samples and completions.
 *
 * Resumable in stages: every stage skips what its output already holds (VQGAN runs and chain scales
 * resume from their checkpoints), so `npm run bench:ablation` can be stopped and restarted at will.
 * Writes bench/results/ablation.json and the README's table (between its ablation-table markers; with another
 * --out only the results file and the printed table). Options: --datasets mnist,fashion-mnist --T 1,2,4 --seeds 0,1
 * --steps N (per scale) --count N (images per metric) --root DIR (default runs/ablation); --report only
 * rewrites the table from the results file. The encoder-decoders are ResidualScaled (as in the official FFHQ
 * T = 4 configs: logits = exp(s_t)·net + log q(x_t | x_{t-1}), a learned correction to copying x_t; chains
 * named T4-residual-seed0); --encoder-decoder plain trains plain ones (T4-seed0), rows of their own.
 */
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openDataset, encodePng, fromCHW, type ImageDataset } from '../src/data/index.js';
import { loadSamplingChain } from '../src/sample/index.js';
import { loadVQModel } from '../src/vqgan/index.js';
import { readTokenFile, createDenoiser, type ScaleModelConfig } from '../src/chain/index.js';
import { makeSchedule } from '../src/diffusion/index.js';
import { loadClassifier, evaluateReference, evaluateSamples, evaluateCompletion, type EvalRecord } from '../src/eval/index.js';

const DEFAULT_OUT = 'bench/results/ablation.json';
const { values: args } = parseArgs({
  options: {
    datasets: { type: 'string', default: 'mnist,fashion-mnist' },
    T: { type: 'string', default: '1,2,4' },
    seeds: { type: 'string', default: '0,1' },
    steps: { type: 'string', default: '3000' },
    'batch-size': { type: 'string', default: '32' },
    count: { type: 'string', default: '1000' },
    root: { type: 'string', default: 'runs/ablation' },
    out: { type: 'string', default: DEFAULT_OUT },
    'encoder-decoder': { type: 'string', default: 'residual' },
    report: { type: 'boolean', default: false },
  },
  strict: true,
});
const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
const DATASETS = list(args.datasets);
const TS = list(args.T).map(Number);
const SEEDS = list(args.seeds).map(Number);
const STEPS = Number(args.steps), BATCH = Number(args['batch-size']), COUNT = Number(args.count);
const ROOT = resolve(args.root);
const CLI = resolve('dist/src/cli/main.js');
const WIDTH = 128;
/**
 * The encoder-decoders' kind: ResidualScaled (default), as in the official FFHQ T = 4 configs behind the paper's
 * Tab. 3, or plain (on MNIST at this budget ResidualScaled lowers T = 4's NLL bound from 5.63 to 4.84 bits/token).
 */
if (!['residual', 'plain'].includes(args['encoder-decoder'])) throw new Error(`--encoder-decoder must be residual or plain, got ${args['encoder-decoder']}`);
const RESIDUAL = args['encoder-decoder'] === 'residual';
/** Whether a chain of T scales has ResidualScaled encoder-decoders (T = 1 has none). */
const isResidual = (T: number) => RESIDUAL && T > 1;
/** The name of a T-scale chain's setting, in its results key and its pictures: T4, or T4-residual. */
const variant = (T: number) => `T${T}${isResidual(T) ? '-residual' : ''}`;
/** A chain's key in the results and its folder under --root: T4-residual-seed0. */
const chainName = (T: number, seed: number) => `${variant(T)}-seed${seed}`;

const say = (line: string) => process.stderr.write(`[ablation] ${line}\n`);

/** Runs an imagebart command, streaming its output; throws when it fails. */
function imagebart(...argv: string[]): void {
  say(`imagebart ${argv.join(' ')}`);
  const r = spawnSync(process.execPath, [CLI, ...argv], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`imagebart ${argv[0]} ${argv[1] ?? ''} failed (exit ${r.status})`);
}

/**
 * Scale architectures sharing a budget of ≈ 2.6M parameters at width 128 (K 106: 2.61M, 2.62M, 2.63M):
 * T = 1 a 13-layer GPT; T = 2 an encoder-decoder of 4 + 2 layers and a 6-layer GPT; T = 4 three of
 * 2 + 1 layers and a 2-layer GPT (the last scale, modelling x_3 = ¾ noise, needs the least).
 */
function architecture(T: number, t: number): ScaleModelConfig {
  const gptDepth: Record<number, number> = { 1: 13, 2: 6, 4: 2 };
  const ed: Record<number, [number, number]> = { 2: [4, 2], 4: [2, 1] };
  if (!(T in gptDepth)) throw new Error(`no parameter split defined for T = ${T}`);
  if (t === T) return { type: 'gpt', dim: WIDTH, heads: WIDTH / 64, depth: gptDepth[T] };
  const [encoderDepth, decoderDepth] = ed[T];
  return { type: isResidual(T) ? 'residual-xtransformer' : 'xtransformer', dim: WIDTH, heads: WIDTH / 64, encoderDepth, decoderDepth };
}

interface Prepared { vqgan: string; train: string; test: string; classifier: string; K: number }

/**
 * Stage 1: VQGAN, tokens of both splits, feature classifier. The VQGAN is a shipped model's (models/DATA,
 * else models/DATA-class), else the one scripts/train-models.sh made for the shipped chain
 * (runs/models/DATA), else one trained here: the ablation and the shipped model share their first stage.
 */
function prepare(data: string): Prepared {
  const dir = join(ROOT, data);
  mkdirSync(dir, { recursive: true });
  const shared = [`models/${data}`, `models/${data}-class`, `runs/models/${data}`].map((d) => resolve(d, 'vqgan.safetensors')).find((f) => existsSync(f));
  const vqgan = shared ?? join(dir, 'vqgan.safetensors');
  if (!shared) {
    if (!existsSync(vqgan)) {
      imagebart('vqgan', 'train', '--data', data, '--out', join(dir, 'vqgan-run'), '--steps', '3000', '--disc-start', '100000');
      // the used codes are read off training images, so the held-out split stays unseen
      imagebart('vqgan', 'shrink', '--model', join(dir, 'vqgan-run', 'model.safetensors'), '--data', data, '--split', 'train', '--max-images', '10000', '--out', vqgan);
    }
  }
  const train = join(dir, 'tokens-train.safetensors'), test = join(dir, 'tokens-test.safetensors');
  if (!existsSync(train)) imagebart('vqgan', 'encode', '--model', vqgan, '--data', data, '--split', 'train', '--out', train);
  if (!existsSync(test)) imagebart('vqgan', 'encode', '--model', vqgan, '--data', data, '--split', 'test', '--out', test);
  // the feature classifier is kept in git (bench/classifiers/): retrained on another machine it scores
  // differently (MNIST: real test digits 9.43 against 9.66), and every stored row depends on it
  const classifier = resolve('bench', 'classifiers', `${data}.safetensors`);
  if (!existsSync(classifier)) imagebart('eval', 'classifier', '--data', data, '--out', classifier);
  const file = readTokenFile(train);
  file.tokens.dispose();
  file.labels?.dispose();
  return { vqgan, train, test, classifier, K: file.K! };
}

/**
 * Stage 2: one chain, its scales trained side by side (`chain train --all`: one process a scale, each
 * resuming from its checkpoint; one ATen thread each, which on two cores trains these small models
 * faster than one scale at a time on both), then its manifest.
 */
function trainChain(p: Prepared, data: string, T: number, seed: number): { manifest: string; seconds?: number } {
  const dir = join(ROOT, data, chainName(T, seed));
  const manifest = join(dir, 'chain.json');
  if (existsSync(manifest)) return { manifest };
  const started = performance.now();
  const gpt = architecture(T, T), ed = T > 1 ? architecture(T, 1) : undefined;
  const depths = ['--gpt-depth', String(gpt.type === 'gpt' ? gpt.depth : 0),
    ...(ed && ed.type !== 'gpt' ? ['--enc-depth', String(ed.encoderDepth), '--dec-depth', String(ed.decoderDepth)] : []),
    ...(isResidual(T) ? ['--residual'] : [])];
  imagebart('chain', 'train', '--tokens', p.train, '--out', dir, '--all', '--vqgan', p.vqgan, '--T', String(T), '--width', String(WIDTH), ...depths,
    '--steps', String(STEPS), '--batch-size', String(BATCH), '--lr', '6e-4', '--eval-every', '500', '--log-every', '250', '--seed', String(seed), '--autocast');
  if (!existsSync(manifest)) throw new Error(`chain train --all left no manifest in ${dir}`);
  return { manifest, seconds: (performance.now() - started) / 1000 };
}

/**
 * Stage 4: the pictures of a chain (its first seed): 32 samples, and 8 upper-half completions of the
 * first held-out example, under docs/ablation/ (made once; a stopped run leaves no partial file).
 */
function pictures(manifest: string, data: string, T: number, held: ImageDataset): void {
  const [samples, completions] = picturePaths(data, T);
  if (!existsSync(samples)) imagebart('sample', '--chain', manifest, '--count', '32', '--seed', '7', '--out', samples);
  const example = join(ROOT, data, 'example.png');
  if (!existsSync(example)) {
    writeFileSync(`${example}.tmp`, examplePng(held));
    renameSync(`${example}.tmp`, example);
  }
  if (!existsSync(completions)) imagebart('edit', '--chain', manifest, '--image', example, '--mask', 'upper-half', '--count', '8', '--seed', '7', '--out', completions);
}

/** docs/ablation/DATA-T{T}[-residual]-samples.png and -completions.png. */
function picturePaths(data: string, T: number): [string, string] {
  const dir = resolve('docs', 'ablation'), name = `${data}-${variant(T)}`;
  return [join(dir, `${name}-samples.png`), join(dir, `${name}-completions.png`)];
}

/** The first held-out image as a PNG. */
function examplePng(held: ImageDataset): Buffer {
  const R = held.resolution;
  const { width, height, rgba } = fromCHW(held.get(0).image, held.channels, R, R);
  return encodePng(rgba, width, height);
}

/** Parameters of every scale of a chain with T scales (built, not trained). */
function parameters(T: number, K: number): number {
  const schedule = makeSchedule('geometric', T);
  let n = 0;
  for (let t = 1; t <= T; t++) {
    const d = createDenoiser(t, architecture(T, t), { K, T, tokens: 64 }, schedule);
    n += d.numParameters();
  }
  return n;
}

interface Chain { T: number; seed: number; residual?: boolean; parameters: number; trainSeconds?: number; samples?: EvalRecord; completion?: EvalRecord }
type Results = Record<string, { reference?: EvalRecord[]; chains: Record<string, Chain> }>;

function load(): Results {
  return existsSync(args.out) ? (JSON.parse(readFileSync(args.out, 'utf-8')).results as Results) : {};
}

function save(results: Results): void {
  mkdirSync(resolve(args.out, '..'), { recursive: true });
  const tmp = `${args.out}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ bench: 'ablation', steps: STEPS, batchSize: BATCH, count: COUNT, width: WIDTH, results }, null, 2)}\n`);
  renameSync(tmp, args.out);
}

const results = load();
const started = performance.now();
for (const data of args.report ? [] : DATASETS) {
  const p = prepare(data);
  const r = (results[data] ??= { chains: {} });
  const classifier = loadClassifier(p.classifier);
  const held = openDataset(data, { split: 'test' });
  // the reference points, measured again each run: a classifier retrained since the stored results
  // (runs/ lost, say) must score the same, or the old and new rows would not be comparable
  const reference = evaluateReference(classifier, loadVQModel(p.vqgan), held, { count: COUNT, seed: 0 });
  if (!r.reference) {
    r.reference = reference;
    save(results);
  } else if (Math.abs(reference[0].frechet - r.reference[0].frechet) > 0.01 * r.reference[0].frechet) {
    throw new Error(`${data}: the classifier in ${p.classifier} scores the real held-out images ${reference[0].frechet.toFixed(2)}, the stored results ${r.reference[0].frechet.toFixed(2)}: ` +
      'it is not the classifier that scored them (delete the results file to start over)');
  }
  for (const T of TS) {
    for (const seed of SEEDS) {
      const key = chainName(T, seed);
      const c = (r.chains[key] ??= { T, seed, ...(isResidual(T) ? { residual: true } : {}), parameters: parameters(T, p.K) });
      const [samples, completions] = picturePaths(data, T);
      if (c.samples && c.completion && (seed !== SEEDS[0] || (existsSync(samples) && existsSync(completions)))) continue;
      const { manifest, seconds } = trainChain(p, data, T, seed);
      if (seconds !== undefined && !c.trainSeconds) c.trainSeconds = seconds; // a resumed run counts from its restart
      const { chain, firstStage } = loadSamplingChain(manifest);
      if (!c.samples) {
        c.samples = evaluateSamples(classifier, chain, firstStage, { count: COUNT, seed: 100 + seed, onProgress: (d, n) => say(`${data} ${key} samples ${d}/${n}`) });
        save(results);
      }
      if (!c.completion) {
        c.completion = evaluateCompletion(classifier, chain, firstStage, held, { count: COUNT, seed: 200 + seed, mask: 'upper-half', onProgress: (d, n) => say(`${data} ${key} completion ${d}/${n}`) });
        save(results);
      }
      if (seed === SEEDS[0]) pictures(manifest, data, T, held);
    }
  }
}

// the table (mean ± standard error over seeds), printed and written into the README between its markers
const PAPER: Record<number, [number, number]> = { 1: [12.44, 11.8], 2: [12.55, 9.25], 4: [10.69, 6.87], 8: [10.81, 6.64] };
const NAMES: Record<string, string> = { mnist: 'MNIST', 'fashion-mnist': 'Fashion-MNIST' };
function meanSe(xs: number[], digits: number): string {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return `${m.toFixed(digits)} (1 seed)`;
  const se = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1) / xs.length);
  return `${m.toFixed(digits)} ± ${se.toFixed(digits)}`;
}
const rows = ['| data | T | parameters | seeds | training, min | unconditional Fréchet | confident | upper-half completion Fréchet | completion L1 | paper FFHQ FID (uncond. / completion) |',
  '|---|---|---|---|---|---|---|---|---|---|'];
for (const [data, r] of Object.entries(results)) {
  const name = NAMES[data] ?? data;
  for (const ref of r.reference ?? []) {
    rows.push(`| ${name} | ${ref.kind === 'real' ? 'real held-out images' : 'VQGAN reconstructions'} | — | — | — | ${ref.frechet.toFixed(2)} | ${(100 * ref.confident).toFixed(0)}% | — | — | — |`);
  }
  // one row per T and encoder-decoder kind (plain before ResidualScaled), over the seeds that finished
  const groups = new Map<string, Chain[]>();
  const finished = Object.values(r.chains).filter((c) => c.samples && c.completion)
    .sort((a, b) => a.T - b.T || Number(Boolean(a.residual)) - Number(Boolean(b.residual)) || a.seed - b.seed);
  for (const c of finished) {
    const group = `${c.T}${c.residual ? '-residual' : ''}`;
    groups.set(group, [...(groups.get(group) ?? []), c]);
  }
  for (const runs of groups.values()) {
    const { T, residual } = runs[0];
    const pct = runs.reduce((a, c) => a + c.samples!.confident, 0) / runs.length;
    const timed = runs.filter((c) => c.trainSeconds).map((c) => c.trainSeconds! / 60); // wall time on two shared cores
    const minutes = timed.length ? (timed.reduce((a, b) => a + b, 0) / timed.length).toFixed(0) : '—';
    rows.push(`| ${name} | ${T}${T === 1 ? ' (GPT)' : residual ? ', ResidualScaled' : ''} | ${(runs[0].parameters / 1e6).toFixed(2)}M | ${runs.map((c) => c.seed).join(', ')} | ${minutes} | ` +
      `${meanSe(runs.map((c) => c.samples!.frechet), 1)} | ${(100 * pct).toFixed(0)}% | ${meanSe(runs.map((c) => c.completion!.frechet), 1)} | ` +
      `${meanSe(runs.map((c) => c.completion!.regionL1 as number), 3)} | ${PAPER[T] ? `${PAPER[T][0]} / ${PAPER[T][1]}` : '—'} |`);
  }
}
const table = rows.join('\n');
console.log(`\nN = ${COUNT}, ${STEPS} steps per scale at batch ${BATCH}:\n${table}`);
const readme = resolve('README.md'), open = '<!-- ablation-table -->', close = '<!-- /ablation-table -->';
const text = existsSync(readme) ? readFileSync(readme, 'utf-8') : '';
// only the default results file is the README's table (a run with another --out, say at another --steps, prints its own)
const isReadmeTable = resolve(args.out) === resolve(DEFAULT_OUT);
if (isReadmeTable && rows.length > 2 && text.includes(open) && text.includes(close)) { // never replace the table with an empty one
  writeFileSync(`${readme}.tmp`, `${text.slice(0, text.indexOf(open) + open.length)}\n${table}\n${text.slice(text.indexOf(close))}`);
  renameSync(`${readme}.tmp`, readme);
  say('README table updated');
}
say(`done in ${((performance.now() - started) / 60000).toFixed(1)} min → ${args.out}`);
