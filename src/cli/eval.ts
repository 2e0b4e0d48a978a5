/**
 * `imagebart eval`: sample quality on the project's own feature classifier (src/eval).
 *
 * classifier  trains the feature classifier of a dataset and stores it with its test accuracy and the
 *             reference feature statistics of the training split;
 * reference   real held-out images and the VQGAN's reconstructions of them: the reference points;
 * samples     N samples of a chain;
 * completion  N held-out images with a region repainted by the chain.
 * Each prints a table (or --json) and appends one JSON line per result to --log when given.
 */
import { Progress } from './progress.js';
import type { ParseArgsConfig } from 'node:util';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError, integer, number, need, parseArgs, probability, type Parsed } from './args.js';
import { OutputPlan, OutputError } from '../io/output.js';
import { openDataset, subset, type ImageDataset } from '../data/index.js';
import { loadSamplingChain, isNamedMask, NAMED_MASKS } from '../sample/index.js';
import { manifestPath } from '../pipeline/index.js';
import { loadVQModel } from '../vqgan/index.js';
import {
  trainClassifier, saveClassifier, loadClassifier, evaluateReference, evaluateSamples, evaluateCompletion,
  type ClassChoice, type EvalRecord,
} from '../eval/index.js';

const HELP = `imagebart eval <command> [options]

Sample quality measured with a feature classifier the project trains per dataset (no Inception network
exists offline): Fréchet distance of its penultimate features against its training split's statistics,
an Inception-like score exp(E KL(p(y|x) ‖ p(y))), the fraction classified with confidence > 0.9, and
accuracy for class-conditional samples and completions. Compare Fréchet distances only at equal N.

Commands:
  classifier   train the feature classifier of a dataset
  reference    real held-out images and their VQGAN reconstructions (the reference points)
  samples      N samples of a chain
  completion   N held-out images with a region repainted by the chain

Examples:
  imagebart eval classifier --data mnist --out mnist-classifier.safetensors
  imagebart eval reference --vqgan models/mnist/vqgan.safetensors --classifier bench/classifiers/mnist.safetensors --data mnist
  imagebart eval samples --chain models/mnist/chain.json --classifier bench/classifiers/mnist.safetensors --count 1000
  imagebart eval samples --chain models/mnist-seg/chain.json --classifier bench/classifiers/mnist.safetensors --data mnist-segmentation
  imagebart eval samples --chain models/emoji-text --classifier bench/classifiers/emoji.safetensors --data emoji --count 378 --guidance 2
  imagebart eval completion --chain models/mnist/chain.json --classifier bench/classifiers/mnist.safetensors --data mnist --mask upper-half

classifier options:
  --data NAME  --out FILE  --steps N (default 1500)  --batch-size N (128)  --max-images N (train on the first N)
  --force             replace an existing --out (checked, with the folder, before training starts)

Common options:
  --chain PATH        chain manifest, or a model directory holding chain.json (samples, completion; reference: its VQGAN)
  --classifier FILE   the feature classifier (eval classifier --out)
  --data NAME         held-out images: the test split of mnist, fashion-mnist, emoji-google, emoji-twitter or a folder;
                      eval samples of a segmentation chain: the held-out label maps it is conditioned
                      on (mnist-segmentation, fashion-mnist-segmentation), reported with the mean IoU
                      of each map with the label map of its sample (segmentationIoU); eval samples of a
                      text chain: the captioned images whose captions it is conditioned on (emoji),
                      accuracy = the captioned image's class (emoji: its category) is what the classifier sees
  --split test|train  which split's label maps or captions condition the samples (default test: held out)
  --count N           images scored (default 1000; Fréchet distance is biased by N)
  --batch-size N      (default 100 for reference, 50 for samples/completion)
  --seed N            which held-out images and which sampling noise (default 0)
  --class C           class-conditional chains: balanced (default: every class in turn), null (the null
                      class, caption or map: unconditional), or a class id; completions: null (default) or label (the
                      true label of each completed image)
  --guidance S        guidance scale (1 = off): autoguidance by --guide-chain or the weaker chain a model
                      ships (models/mnist: on by default at its scale; records name the guidance used),
                      else classifier-free (chains trained with --cond-dropout)
  --guide-chain PATH  the weaker chain of autoguidance (same T, K, schedule and conditioning; fewer
                      parameters or less training), any chain, unconditional ones too
  --accept-rate R     samples: classifier rejection sampling — draw count/R, keep the count most likely of
                      their class (class chains; the record has the realised rate)
  --temperature X  --top-k N  --top-p X   sampling settings of every scale
  --log FILE          append each result as a JSON line
  --json              print the results as JSON
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  data: { type: 'string' },
  out: { type: 'string' },
  steps: { type: 'string' },
  'max-images': { type: 'string' },
  classifier: { type: 'string' },
  vqgan: { type: 'string' },
  chain: { type: 'string' },
  mask: { type: 'string' },
  count: { type: 'string' },
  'batch-size': { type: 'string' },
  seed: { type: 'string' },
  class: { type: 'string' },
  split: { type: 'string' },
  guidance: { type: 'string' },
  'guide-chain': { type: 'string' },
  'accept-rate': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  log: { type: 'string' },
  json: { type: 'boolean' },
  force: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

type Values = Parsed<typeof OPTIONS>['values'];

const say = (line: string) => process.stderr.write(`${line}\n`);
/** A progress bar (plain lines off a terminal, JSON lines with --json) fed by an onProgress(done, total) callback. */
function progress(what: string, json?: boolean) {
  const bar = new Progress(what, { json });
  return (done: number, total: number) => {
    bar.update(done, total);
    if (done >= total) bar.stop();
  };
}

function heldOut(v: Values, resolution: number, channels: 1 | 3): ImageDataset {
  const name = need(v.data, 'data');
  return openDataset(name, { split: 'test', resolution, channels });
}

function classChoice(v: string | undefined): ClassChoice {
  if (v === undefined || v === 'balanced') return 'balanced';
  if (v === 'null' || v === 'label') return v;
  const n = integer(v, 'class');
  if (n === undefined) throw new UsageError('--class must be balanced, null or a class id');
  return n;
}

function settings(v: Values) {
  const s: { temperature?: number; topK?: number; topP?: number } = {};
  const t = number(v.temperature, 'temperature'), k = integer(v['top-k'], 'top-k', 1), p = number(v['top-p'], 'top-p');
  if (t !== undefined) s.temperature = t;
  if (k !== undefined) s.topK = k;
  if (p !== undefined) s.topP = p;
  return s;
}

function report(v: Values, records: EvalRecord[], context: Record<string, unknown>): void {
  const rows = records.map((r) => ({ ...context, ...r }));
  if (v.log) {
    mkdirSync(dirname(resolve(v.log)), { recursive: true });
    for (const r of rows) appendFileSync(v.log, `${JSON.stringify(r)}\n`);
  }
  if (v.json) {
    process.stdout.write(`${JSON.stringify(rows.length === 1 ? rows[0] : rows, null, 2)}\n`);
    return;
  }
  const f = (x: unknown, d = 3) => (typeof x === 'number' ? x.toFixed(d) : '—');
  const iou = rows.some((r) => r.segmentationIoU !== undefined);
  console.log(`| what | N | seed | Fréchet | IS-like | confident > 0.9 | accuracy | region L1 | region PSNR |${iou ? ' segmentation IoU |' : ''}`);
  console.log(`|---|---|---|---|---|---|---|---|---|${iou ? '---|' : ''}`);
  for (const r of rows) {
    console.log(`| ${r.kind} | ${r.n} | ${r.seed} | ${f(r.frechet)} | ${f(r.inceptionScore, 2)} | ${f(r.confident)} | ${f(r.accuracy)} | ${f(r.regionL1)} | ${f(r.regionPsnr, 2)} |${iou ? ` ${f(r.segmentationIoU)} |` : ''}`);
  }
}

async function classifierCommand(v: Values): Promise<number> {
  const name = need(v.data, 'data');
  const out = need(v.out, 'out');
  new OutputPlan({ force: v.force }).add(out, 'safetensors'); // a bad --out is reported before the minutes of training, not after
  const all = openDataset(name, { split: 'train' });
  const limit = integer(v['max-images'], 'max-images', 1);
  const train = limit && limit < all.size ? subset(all, Array.from({ length: limit }, (_, i) => i), `${all.name}[:${limit}]`) : all;
  const test = openDataset(name, { split: 'test', channels: train.channels });
  const steps = integer(v.steps, 'steps', 1) ?? 1500;
  const trained = trainClassifier(train, test, {
    steps, batchSize: integer(v['batch-size'], 'batch-size', 1) ?? 128, seed: integer(v.seed, 'seed') ?? 0,
    onProgress: (s, n, loss) => say(`classifier step ${s}/${n} loss ${loss.toFixed(4)}`),
  });
  mkdirSync(dirname(resolve(out)), { recursive: true });
  saveClassifier(out, trained);
  const { info } = trained;
  if (v.json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else console.log(`${info.dataset}: test accuracy ${(100 * info.testAccuracy).toFixed(2)}% on ${info.testImages} images, ${info.steps} steps in ${info.seconds.toFixed(0)} s → ${out}`);
  if (v.log) appendFileSync(v.log, `${JSON.stringify({ kind: 'classifier', ...info })}\n`);
  return 0;
}

async function referenceCommand(v: Values): Promise<number> {
  const classifier = loadClassifier(need(v.classifier, 'classifier'));
  const stagePath = v.vqgan ?? (v.chain ? undefined : need(v.vqgan, 'vqgan'));
  const stage = stagePath ? loadVQModel(stagePath) : loadSamplingChain(manifestPath(need(v.chain, 'chain'))).firstStage;
  const { resolution, inChannels } = stage.config.ddconfig;
  const ds = heldOut(v, resolution, inChannels as 1 | 3);
  const records = evaluateReference(classifier, stage, ds, {
    count: integer(v.count, 'count', 2), batchSize: integer(v['batch-size'], 'batch-size', 1), seed: integer(v.seed, 'seed'),
    onProgress: progress('reference', v.json),
  });
  report(v, records, { vqgan: stagePath ?? v.chain, classifier: v.classifier });
  return 0;
}

async function chainCommand(v: Values, completion: boolean): Promise<number> {
  const classifier = loadClassifier(need(v.classifier, 'classifier'));
  const chainPath = manifestPath(need(v.chain, 'chain'));
  const { chain, firstStage, mapStage } = loadSamplingChain(chainPath);
  const guidePath = v['guide-chain'] === undefined ? undefined : manifestPath(v['guide-chain']);
  if (guidePath && v.guidance === undefined) throw new UsageError('--guide-chain needs --guidance S (the autoguidance scale)');
  const weak = guidePath ? loadSamplingChain(guidePath).chain : undefined;
  const common = {
    weak,
    count: integer(v.count, 'count', 2), batchSize: integer(v['batch-size'], 'batch-size', 1), seed: integer(v.seed, 'seed'),
    classChoice: classChoice(v.class), guidance: number(v.guidance, 'guidance'), settings: settings(v),
    acceptRate: v['accept-rate'] === undefined ? undefined : probability(v['accept-rate'], 'accept-rate'),
  };
  let record: EvalRecord;
  if (completion) {
    const mask = v.mask ?? 'upper-half';
    if (!isNamedMask(mask)) throw new UsageError(`--mask ${mask}: expected one of ${NAMED_MASKS.join(', ')}`);
    const { resolution, inChannels } = firstStage.config.ddconfig;
    record = evaluateCompletion(classifier, chain, firstStage, heldOut(v, resolution, inChannels as 1 | 3), { ...common, mask, onProgress: progress('completion', v.json) });
  } else {
    const split = v.split ?? 'test';
    if (split !== 'test' && split !== 'train') throw new UsageError(`--split ${split}: expected test or train`);
    let maps: { dataset: ImageDataset; stage: typeof firstStage } | undefined, captions: ImageDataset | undefined;
    const kind = chain.conditioning?.kind ?? 'none';
    if (common.classChoice === 'null' && v.data === undefined) {
      // the null condition: nothing held out conditions the samples
    } else if (mapStage) {
      if (v.data === undefined) throw new UsageError('a segmentation chain samples from held-out label maps: give --data mnist-segmentation (or another segmentation dataset)');
      maps = { dataset: openDataset(v.data, { split, resolution: mapStage.config.ddconfig.resolution }), stage: mapStage };
    } else if (kind === 'text') {
      if (v.data === undefined) throw new UsageError('a text chain samples from the captions of a dataset: give --data emoji (its test split holds out whole names), or --class null');
      const { resolution, inChannels } = firstStage.config.ddconfig;
      captions = openDataset(v.data, { split, resolution, channels: inChannels as 1 | 3 });
    } else if (v.data !== undefined) {
      throw new UsageError('eval samples compares against the classifier\'s reference statistics: --data is not used (but for the label maps of a segmentation chain or the captions of a text chain)');
    }
    record = evaluateSamples(classifier, chain, firstStage, { ...common, maps, captions, onProgress: progress('samples', v.json) });
  }
  report(v, [record], { chain: chainPath, ...(guidePath ? { guideChain: guidePath } : {}), classifier: v.classifier });
  return 0;
}

const SUBCOMMANDS: Record<string, (v: Values) => Promise<number>> = {
  classifier: classifierCommand,
  reference: referenceCommand,
  samples: (v) => chainCommand(v, false),
  completion: (v) => chainCommand(v, true),
};

/** `imagebart eval …` (the arguments after `eval`); resolves to the exit code. */
export async function evalCommand(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const run = SUBCOMMANDS[name];
  if (!run) {
    process.stderr.write(`imagebart eval: unknown command '${name}'\n\n${HELP}`);
    return 2;
  }
  try {
    const { values } = parseArgs(args, OPTIONS);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    return await run(values);
  } catch (e) {
    process.stderr.write(`imagebart eval ${name}: ${(e as Error).message}\n`);
    return e instanceof UsageError || e instanceof OutputError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1;
  }
}
