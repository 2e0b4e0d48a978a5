/** The evaluations end to end on a tiny chain, and the CLI's refusal of mismatched image sizes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { manualSeed, type Tensor } from '../../src/torch/index.js';
import { loadMnist, segmentationDataset, subset } from '../../src/data/index.js';
import { makeConfig, VQModel, saveVQModel } from '../../src/vqgan/index.js';
import { trainClassifier, saveClassifier, evaluateReference, evaluateSamples, evaluateCompletion } from '../../src/eval/index.js';
import { tinyChain, patchStage } from '../sample/tiny.js';

const dir = mkdtempSync(join(tmpdir(), 'imagebart-evaluate-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const first = (n: number, split: 'train' | 'test') => subset(loadMnist({ split }), Array.from({ length: n }, (_, i) => i), `mnist:${split}[:${n}]`);
const classifier = trainClassifier(first(300, 'train'), first(100, 'test'), { steps: 15, batchSize: 32 });
const CLI = join(process.cwd(), 'dist/src/cli/main.js');

test('reference, samples and completion records on a tiny chain (8×8 tokens → 32×32 images)', () => {
  const K = 16;
  const stage = patchStage(K, [8, 8]);
  const heldOut = first(60, 'test');
  const [real, rec] = evaluateReference(classifier, stage, heldOut, { count: 40, batchSize: 20, seed: 1 });
  assert.equal(real.kind, 'real');
  assert.equal(rec.kind, 'reconstruction');
  assert.equal(real.n, 40);
  assert.ok(real.frechet >= 0 && rec.frechet > real.frechet, `coarse 8×8 grey patches are further from digits than the digits (${rec.frechet} vs ${real.frechet})`);
  const chain = tinyChain({ K, T: 2, shape: [8, 8], classes: 10, nullable: true, seed: 1 });
  const balanced = evaluateSamples(classifier, chain, stage, { count: 20, batchSize: 10, seed: 2 });
  assert.equal(balanced.n, 20);
  assert.ok(balanced.accuracy !== undefined && balanced.accuracy >= 0 && balanced.accuracy <= 1);
  const uncond = evaluateSamples(classifier, chain, stage, { count: 10, batchSize: 10, seed: 2, classChoice: 'null' });
  assert.equal(uncond.accuracy, undefined, 'unconditional samples have no intended label');
  const guided = evaluateSamples(classifier, chain, stage, { count: 10, batchSize: 10, seed: 2, guidance: 2 });
  assert.equal(guided.guidance, 2);
  const withLabel = evaluateCompletion(classifier, chain, stage, heldOut, { count: 5, batchSize: 5, seed: 3, classChoice: 'label', guidance: 2 });
  assert.equal(withLabel.n, 5);
  const c = evaluateCompletion(classifier, chain, stage, heldOut, { count: 10, batchSize: 5, seed: 3, mask: 'upper-half' });
  assert.equal(c.kind, 'completion');
  assert.ok((c.regionL1 as number) > 0 && Number.isFinite(c.regionPsnr as number));
  assert.ok(c.labelKept !== undefined);
  manualSeed(0);
  const plain = tinyChain({ K, T: 2, shape: [8, 8], classes: 10, seed: 1 });
  assert.throws(() => evaluateSamples(classifier, plain, stage, { count: 4, classChoice: 'null' }), /null class/);
  assert.throws(() => evaluateReference(classifier, patchStage(K, [4, 4]), heldOut, { count: 4 }), /32×32.*16×16|16×16/);
});

test('samples of a segmentation chain are conditioned on held-out label maps and scored with their IoU', () => {
  const K = 16;
  const stage = patchStage(K, [8, 8]);
  const chain = tinyChain({ K, T: 2, shape: [8, 8], segmentation: { K: 8, nullable: true }, seed: 2 });
  // a label-map model: each 4×4 patch's most frequent label is its token
  const mapStage = {
    config: { ddconfig: { resolution: 32, inChannels: 3, outCh: 3 } },
    decodeIndices: (x: Tensor) => x,
    encodeToIndices: (x: Tensor) => x.view(x.size(0), 3, 8, 4, 8, 4).mean([3, 5]).argmax(1),
  };
  const maps = segmentationDataset(first(30, 'test'));
  const rec = evaluateSamples(classifier, chain, stage, { count: 12, batchSize: 6, seed: 4, maps: { dataset: maps, stage: mapStage }, guidance: 2 });
  assert.equal(rec.n, 12);
  const iou = rec.segmentationIoU as number;
  assert.ok(iou >= 0 && iou <= 1, `IoU ${iou}`);
  assert.ok(rec.accuracy !== undefined, 'the maps carry their digit labels');
  assert.match(String(rec.conditions), /label maps of mnist:test\[:30\]:segmentation/);
  assert.throws(() => evaluateSamples(classifier, chain, stage, { count: 4 }), /give a segmentation dataset/);
  assert.throws(() => evaluateSamples(classifier, chain, stage, { count: 4, maps: { dataset: first(30, 'test'), stage: mapStage } }), /1-channel 32×32 maps; the chain's label-map model reads 3-channel 32×32/);
});

test('samples of a text chain are conditioned on the captions of a dataset and scored against their images\' labels', () => {
  const K = 16;
  const stage = patchStage(K, [8, 8]);
  const digits = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
  const chain = tinyChain({ K, T: 2, shape: [8, 8], captions: digits.map((d) => `a handwritten ${d}`), seed: 3 });
  const plain = first(30, 'test');
  const captioned = { ...plain, name: 'captioned digits', get: (i: number) => { const s = plain.get(i); return { ...s, caption: `a handwritten ${digits[s.label!]}` }; } };
  const rec = evaluateSamples(classifier, chain, stage, { count: 12, batchSize: 6, seed: 4, captions: captioned, guidance: 2 });
  assert.equal(rec.n, 12);
  assert.ok(rec.accuracy !== undefined && rec.accuracy >= 0 && rec.accuracy <= 1, 'the captioned images carry labels');
  assert.equal(rec.conditions, 'captions of captioned digits');
  const uncond = evaluateSamples(classifier, chain, stage, { count: 6, batchSize: 6, seed: 4, classChoice: 'null' });
  assert.equal(uncond.accuracy, undefined, 'the null caption has no intended label');
  assert.throws(() => evaluateSamples(classifier, chain, stage, { count: 4 }), /give a captioned dataset/);
  assert.throws(() => evaluateSamples(classifier, chain, stage, { count: 4, captions: plain }), /has no captions/);
  assert.throws(() => evaluateSamples(classifier, chain, stage, { count: 40, captions: captioned }), /30 images, fewer than the 40/);
});

test('imagebart eval refuses a dataset whose images differ from the model\'s, naming both sizes', () => {
  const path = join(dir, 'classifier.safetensors');
  saveClassifier(path, classifier);
  manualSeed(0);
  const vq = new VQModel(makeConfig({
    ddconfig: { resolution: 16, inChannels: 1, outCh: 1, ch: 16, chMult: [1, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 8 },
    nEmbed: 16, embedDim: 8,
  }));
  const vqPath = join(dir, 'vq16.safetensors');
  saveVQModel(vqPath, vq);
  const r = spawnSync(process.execPath, [CLI, 'eval', 'reference', '--vqgan', vqPath, '--classifier', path, '--data', 'mnist', '--count', '8'], { encoding: 'utf-8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /16×16 images but the classifier .* reads 1-channel 32×32/);
  const rgb = spawnSync(process.execPath, [CLI, 'eval', 'reference', '--vqgan', vqPath, '--classifier', path, '--data', 'emoji-google', '--count', '8'], { encoding: 'utf-8' });
  assert.equal(rgb.status, 1);
  assert.match(rgb.stderr, /3-channel|channel/);
  const out = join(dir, 'again.safetensors');
  const exists = spawnSync(process.execPath, [CLI, 'eval', 'classifier', '--data', 'mnist', '--out', path], { encoding: 'utf-8' });
  assert.equal(exists.status, 2);
  assert.match(exists.stderr, /exists/);
  assert.ok(!existsSync(out));
});

test('rejection sampling keeps the most probable samples of each class and reports the rate it kept', async () => {
  const { rejectionSample } = await import('../../src/eval/index.js');
  const K = 16;
  const stage = patchStage(K, [8, 8]);
  const chain = tinyChain({ K, T: 2, shape: [8, 8], classes: 10, seed: 4 });
  const labels = [3, 3, 7];
  const all = rejectionSample(classifier.model, chain, stage, { labels, acceptRate: 1, batchSize: 4, seed: 5 });
  assert.equal(all.drawn, 3);
  assert.equal(all.acceptRate, 1);
  const r = rejectionSample(classifier.model, chain, stage, { labels, acceptRate: 0.25, batchSize: 4, seed: 5 });
  assert.equal(r.drawn, 8 + 4, '⌈2 / 0.25⌉ threes and ⌈1 / 0.25⌉ sevens');
  assert.equal(r.kept, 3);
  assert.equal(r.acceptRate, 3 / 12);
  assert.equal(r.images.length, 3);
  assert.ok(r.scores[0] >= r.thresholds[3] && r.scores[1] >= r.thresholds[3] && r.scores[2] === r.thresholds[7]);
  assert.throws(() => rejectionSample(classifier.model, tinyChain({ K, T: 2, shape: [8, 8] }), stage, { labels, acceptRate: 0.5 }), /class-conditional/);
  assert.throws(() => rejectionSample(classifier.model, chain, stage, { labels, acceptRate: 0 }), /acceptance rate/);
  // the evaluation of rejection samples: the same draws, scored, with the realised rate recorded
  const { evaluateSamples } = await import('../../src/eval/index.js');
  const rec = evaluateSamples(classifier, chain, stage, { count: 4, batchSize: 4, seed: 5, classChoice: 3, acceptRate: 0.5 });
  assert.deepEqual([rec.n, rec.drawn, rec.acceptRate, rec.requestedAcceptRate], [4, 8, 0.5, 0.5]);
  const plain = evaluateSamples(classifier, chain, stage, { count: 4, batchSize: 4, seed: 5, classChoice: 3 });
  assert.ok((rec.accuracy as number) >= (plain.accuracy as number), `keeping the most likely threes cannot lower their accuracy (${rec.accuracy} vs ${plain.accuracy})`);
  assert.throws(() => evaluateSamples(classifier, chain, stage, { count: 4, classChoice: 'null', acceptRate: 0.5 }), /requested classes/);
});
