/**
 * Segmentation chains through the command line: `chain train --segmentation-tokens` builds one whose
 * manifest names its label-map model; `sample` and `edit --segmentation` run with a grey shape or a
 * colour-coded map and record the segmentation fidelity in the sidecar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randint, readSafetensorsHeader } from '../../src/torch/index.js';
import { encodePng } from '../../src/data/index.js';
import { writeTokenFile, type ScaleSpec } from '../../src/chain/index.js';
import { sampleCommand, editCommand } from '../../src/cli/sample.js';
import { chainCommand } from '../../src/cli/chain.js';
import { Pipeline } from '../../src/pipeline/index.js';
import { saveTinyChain } from '../sample/tiny.js';
import { run } from './harness.js';

const root = mkdtempSync(join(tmpdir(), 'imagebart-seg-cli-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const models = join(root, 'models');
mkdirSync(models);
const chain = saveTinyChain(models, { segmentation: { K: 8, nullable: true } });

const png = (name: string, w: number, h: number, colour: (x: number, y: number) => number[]) => {
  const rgba = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) rgba.set([...colour(p % w, Math.floor(p / w)), 255], 4 * p);
  writeFileSync(join(root, name), encodePng(rgba, w, h));
  return join(root, name);
};
const shape = png('shape.png', 40, 40, (x, y) => (Math.hypot(x - 20, y - 20) < 12 ? [240, 240, 240] : [0, 0, 0]));
const coded = png('coded.png', 16, 16, (x, y) => (x > 4 && x < 11 && y > 4 && y < 11 ? (x === 5 || x === 10 || y === 5 || y === 10 ? [0, 0, 255] : [0, 255, 0]) : [255, 0, 0]));

test('sample --segmentation: a grey shape, guided, with each image\'s fidelity in the sidecar', async () => {
  const out = join(root, 'shaped.png');
  const r = await run(sampleCommand, ['--chain', chain, '--segmentation', shape, '--count', '3', '--seed', '4', '--guidance', '2', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const side = JSON.parse(readFileSync(join(root, 'shaped.json'), 'utf8'));
  assert.equal(side.segmentationMap, shape);
  assert.equal(side.conditions.length, 3);
  assert.equal(side.conditions[0].mapTokens.length, 16, 'the map as 4×4 tokens of the label-map model');
  assert.ok(side.conditions[0].mapTokens.every((v: number) => Number.isInteger(v) && v >= 0 && v < 8));
  assert.equal(side.segmentation.meanIoU.length, 3);
  assert.ok(side.segmentation.meanIoU.every((x: number) => x >= 0 && x <= 1));
  assert.equal(side.segmentation.mean, side.segmentation.meanIoU.reduce((a: number, b: number) => a + b, 0) / 3);
  assert.match(side.chain.conditioning.description, /segmentation/);
  // the same run through the library gives the same images and fidelity
  const again = await run(sampleCommand, ['--chain', chain, '--segmentation', shape, '--count', '3', '--seed', '4', '--guidance', '2', '--out', join(root, 'again.png')]);
  assert.equal(again.code, 0, again.err);
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'again.json'), 'utf8')).segmentation, side.segmentation);
  assert.deepEqual(readFileSync(join(root, 'again.png')), readFileSync(out));
});

test('edit --segmentation: a colour-coded map guides the repainted region; kept tokens stay the picture\'s', async () => {
  const picture = png('picture.png', 16, 16, (x, y) => [(x * 16) % 256, (y * 16) % 256, 128]);
  const out = join(root, 'edit.png');
  const r = await run(editCommand, ['--chain', chain, '--image', picture, '--mask', 'upper-half', '--segmentation', coded, '--count', '2', '--seed', '1', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const side = JSON.parse(readFileSync(join(root, 'edit.json'), 'utf8'));
  assert.equal(side.segmentation.meanIoU.length, 2);
  assert.equal(side.keptTokens, 8);
  // the pipeline's edit: tokens outside the repainted half are the picture's own, bit for bit
  const model = Pipeline.load(chain);
  const map = { labels: new Uint8Array(256).fill(1), width: 16, height: 16 };
  const e = model.edit({ image: { width: 16, height: 16, rgba: new Uint8Array(16 * 16 * 4).fill(90) }, mask: 'upper-half', condition: map, count: 2, seed: 3 });
  assert.equal(e.sidecar.segmentation!.meanIoU.length, 2);
  assert.throws(() => model.sample({ count: 1, condition: map, grid: [6, 6] }), /does not combine with a larger grid/);
  assert.throws(() => model.sample({ count: 1, condition: { labels: new Uint8Array(64), width: 8, height: 8 } }), /must be 16×16/);
  assert.throws(() => model.sample({ count: 1, condition: 3 }), /takes label maps, got 3/);
});

test('chain train --segmentation-tokens: the scale fuses the maps and the manifest names the label-map model', async () => {
  const images = join(root, 'images.safetensors'), maps = join(root, 'maps.safetensors'), short = join(root, 'short.safetensors');
  writeTokenFile(images, randint(0, 16, [300, 4, 4]), { K: 16 });
  writeTokenFile(maps, randint(0, 8, [300, 4, 4]), { K: 8 });
  writeTokenFile(short, randint(0, 8, [299, 4, 4]), { K: 8 });
  const out = join(root, 'seg-chain');
  const base = ['train', '--tokens', images, '--segmentation-vqgan', join(models, 'seg-vqgan.safetensors'), '--out', out, '--T', '2', '--width', '32',
    '--enc-depth', '1', '--dec-depth', '1', '--gpt-depth', '1', '--steps', '3', '--batch-size', '8', '--val-size', '16', '--eval-every', '3', '--cond-dropout', '0.1'];
  const bad = await run(chainCommand, [...base, '--scale', '1', '--segmentation-tokens', short]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--segmentation-tokens: .*short\.safetensors holds 299 label maps but .*images\.safetensors 300 grids/);
  const noVq = await run(chainCommand, ['train', '--tokens', images, '--segmentation-tokens', maps, '--out', out, '--scale', '1']);
  assert.match(noVq.err, /--segmentation-vqgan/);
  const both = await run(chainCommand, [...base, '--scale', '1', '--segmentation-tokens', maps, '--classes', '3']);
  assert.match(both.err, /give one of --classes, --caption-length and --segmentation-tokens/);
  const r = await run(chainCommand, [...base, '--all', '--segmentation-tokens', maps, '--vqgan', join(models, 'vqgan.safetensors')]);
  assert.equal(r.code, 0, r.err);
  for (const t of [1, 2]) {
    const spec = JSON.parse(readSafetensorsHeader(join(out, `scale${t}`, 'checkpoint.safetensors')).metadata.scale) as ScaleSpec;
    assert.equal(spec.shape.mapVocab, 9, 'K_s + the null map');
  }
  const manifest = JSON.parse(readFileSync(join(out, 'chain.json'), 'utf8'));
  assert.deepEqual(manifest.conditioning, { kind: 'segmentation', vqgan: '../models/seg-vqgan.safetensors', K: 8, labels: ['background', 'stroke', 'outline'], nullable: true });
  // and the trained chain samples with a map, end to end
  const s = await run(sampleCommand, ['--chain', join(out, 'chain.json'), '--segmentation', shape, '--count', '2', '--seed', '1', '--guidance', '1.5', '--out', join(root, 'trained.png')]);
  assert.equal(s.code, 0, s.err);
  // a release copy carries the label-map model and samples the same images
  const release = join(root, 'release');
  const e = await run(chainCommand, ['export', '--manifest', join(out, 'chain.json'), '--out', release]);
  assert.equal(e.code, 0, e.err);
  assert.equal(JSON.parse(readFileSync(join(release, 'chain.json'), 'utf8')).conditioning.vqgan, 'seg-vqgan.safetensors');
  const s2 = await run(sampleCommand, ['--chain', join(release, 'chain.json'), '--segmentation', shape, '--count', '2', '--seed', '1', '--guidance', '1.5', '--out', join(root, 'released.png')]);
  assert.equal(s2.code, 0, s2.err);
  assert.deepEqual(readFileSync(join(root, 'released.png')), readFileSync(join(root, 'trained.png')));
  // --half stores every float weight as float16, the VQ models' too, and the copy still samples
  const half = join(root, 'release-half');
  const h = await run(chainCommand, ['export', '--manifest', join(out, 'chain.json'), '--out', half, '--half']);
  assert.equal(h.code, 0, h.err);
  for (const f of ['vqgan.safetensors', 'seg-vqgan.safetensors']) {
    const dtypes = new Set([...readSafetensorsHeader(join(half, f)).tensors.values()].map((t) => t.dtype));
    assert.ok(dtypes.has('float16') && !dtypes.has('float32'), `${f}: ${[...dtypes]}`);
  }
  const s3 = await run(sampleCommand, ['--chain', join(half, 'chain.json'), '--segmentation', shape, '--count', '2', '--seed', '1', '--guidance', '1.5', '--out', join(root, 'half.png')]);
  assert.equal(s3.code, 0, s3.err);
});
