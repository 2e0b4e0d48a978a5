/** The pipeline the CLI and the server share, on the shipped class-conditional chain: seeds, conditions, guidance, masks, rejection. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pipeline, RequestError } from '../../src/pipeline/index.js';
import { streamSeed } from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';
import { trainClassifier } from '../../src/eval/index.js';
import { openDataset, subset } from '../../src/data/index.js';

const MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'mnist-class');
const model = Pipeline.load(MODEL);

test('what the model says of itself: its conditioning, without a text vocabulary or a path leak of its own', () => {
  assert.deepEqual(model.info.conditioning, { kind: 'class', classes: 10, nullable: true, description: 'class (10, nullable)' });
  assert.deepEqual([model.info.T, model.info.resolution, model.info.device], [3, 32, 'cpu']);
});

test('a 64-bit seed repeats its images; batch i draws from streamSeed(seed, i); neighbouring seeds differ', () => {
  const seed = 12345678901234567890n;
  const a = model.sample({ count: 3, batchSize: 2, seed, condition: 4 });
  const b = model.sample({ count: 3, batchSize: 2, seed: seed.toString(), condition: [4, 4, 4] });
  assert.deepEqual(a.images, b.images);
  assert.deepEqual(a.sidecar.batches, [{ seed: streamSeed(seed, 0).toString(), images: 2 }, { seed: streamSeed(seed, 1).toString(), images: 1 }]);
  assert.equal(a.sidecar.seed, seed.toString());
  assert.deepEqual(a.sidecar.conditions, [4, 4, 4]);
  const c = model.sample({ count: 3, batchSize: 2, seed: seed + 1n, condition: 4 });
  assert.notDeepEqual(c.images, a.images);
});

test('conditions and guidance are checked against the chain, as RequestErrors', () => {
  const bad: [Parameters<Pipeline['sample']>[0], RegExp][] = [
    [{ count: 1 }, /class is required: this chain is conditioned on class \(10, nullable\)/],
    [{ count: 1, condition: 10 }, /class: class 10: this chain takes class ids 0\.\.9/],
    [{ count: 1, condition: 'a seven' }, /this chain takes class ids/],
    [{ count: 3, condition: [1, 2] }, /class takes one value or one per image \(3\), got 2/],
    [{ count: 1, condition: 1, guidance: Number.NaN }, /guidance must be a finite number/],
    [{ count: 1, condition: 1, seed: '-1' }, /seed must be an integer in \[0, 2\^64\)/],
    [{ count: 0, condition: 1 }, /count must be a positive integer/],
  ];
  for (const [req, why] of bad) assert.throws(() => model.sample(req), (e: Error) => e instanceof RequestError && why.test(e.message), why.source);
  // guidance 1 is plain conditional sampling: the same images as none
  const plain = model.sample({ count: 2, seed: 7n, condition: 2 });
  assert.deepEqual(model.sample({ count: 2, seed: 7n, condition: 2, guidance: 1 }).images, plain.images);
  assert.notDeepEqual(model.sample({ count: 2, seed: 7n, condition: 2, guidance: 2 }).images, plain.images);
  assert.equal(model.sample({ count: 1, seed: 7n, condition: null }).sidecar.conditions![0], null, 'the null class samples unconditionally');
});

test("a mask is given at the picture's size: a non-square picture's padding is never repainted", () => {
  const width = 40, height = 20;
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) rgba.set([0, 0, 0, 255], 4 * p);
  const picture = { width, height, rgba };
  const named = model.keepMask('upper-half', picture);
  const painted = model.keepMask(Uint8Array.from({ length: width * height }, (_, p) => (Math.floor(p / width) >= height / 2 ? 1 : 0)), picture);
  assert.deepEqual(painted, named, 'a keep mask of the picture\'s size = the named mask');
  const R = model.info.resolution;
  // 40×20 is padded to 40×40, the picture in rows 10..29: rows 0..7 of the 32×32 mask are padding (kept)
  for (let y = 0; y < 7; y++) for (let x = 0; x < R; x++) assert.equal(named[y * R + x], 1, `padding row ${y} is kept`);
  assert.equal(named[12 * R + 16], 0, 'the picture\'s upper half is repainted');
  assert.equal(named[20 * R + 16], 1, 'its lower half is kept');
  assert.throws(() => model.keepMask(new Uint8Array(R * R), picture), /must have 40×20 = 800 values \(the picture's size\)/);
  const e = model.edit({ image: picture, mask: 'upper-half', count: 2, seed: 3n, condition: 7, composite: true });
  assert.equal(e.images.length, 2);
  assert.ok(e.sidecar.keptTokens > e.sidecar.tokens / 2, 'the padding and the lower half are kept');
});

test('rejection sampling through the pipeline keeps the most likely of their class and records the realised rate', () => {
  const train = subset(openDataset('mnist', { split: 'train' }), Array.from({ length: 512 }, (_, i) => i));
  const held = subset(openDataset('mnist', { split: 'test' }), Array.from({ length: 256 }, (_, i) => i));
  const { model: classifier } = trainClassifier(train, held, { steps: 60, batchSize: 64 });
  const r = model.sample({ count: 4, batchSize: 8, seed: 1n, condition: [3, 3, 8, 8], rejection: { classifier, acceptRate: 0.5 } });
  assert.equal(r.images.length, 4);
  assert.deepEqual([r.sidecar.rejection!.drawn, r.sidecar.rejection!.kept, r.sidecar.rejection!.acceptRate], [8, 4, 0.5]);
  assert.throws(() => model.sample({ count: 2, condition: null, rejection: { classifier, acceptRate: 0.5 } }), /requested classes/);
  assert.throws(() => model.sample({ count: 2, condition: 1, rejection: { classifier, acceptRate: 0 } }), /acceptance rate must lie in \(0, 1\]/);
});

test('a request frees every tensor it made: a server answers many without growing', () => {
  model.sample({ count: 1, seed: 1n, condition: 1, guidance: 2 }); // first calls may cache (e.g. the null condition's shape)
  const live = native.liveTensors();
  model.sample({ count: 3, batchSize: 2, seed: 2n, condition: [1, null, 3], guidance: 1.5, intermediates: true });
  const picture = { width: 32, height: 32, rgba: new Uint8Array(32 * 32 * 4).fill(255) };
  model.edit({ image: picture, mask: 'center', count: 2, seed: 3n, condition: 5, guidance: 2 }, { onProgress: () => {} });
  assert.equal(native.liveTensors(), live);
});
