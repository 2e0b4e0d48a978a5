/**
 * Every shipped model (models/<name>/chain.json) loads through the pipeline and samples, conditioned the
 * way its manifest says (class ids, captions, or a label map read from a drawn shape), with guidance
 * where the chain can be guided (a null condition, or a weaker chain shipped with it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline, type RequestCondition } from '../../src/pipeline/index.js';
import { readLabelMap } from '../../src/sample/index.js';
import { readManifest } from '../../src/chain/index.js';
import { shippedModels } from '../../src/cli/serve.js';

const MODELS = join(process.cwd(), 'models');
const shipped = readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'chain.json')));

/** A light-on-dark ring, as a person would draw a 0. */
function ring(size: number) {
  const rgba = new Uint8Array(size * size * 4);
  for (let p = 0; p < size * size; p++) {
    const r = Math.hypot((p % size) - size / 2, Math.floor(p / size) - size / 2);
    rgba.fill(Math.abs(r - size / 4) < size / 12 ? 255 : 0, 4 * p, 4 * p + 3);
    rgba[4 * p + 3] = 255;
  }
  return { width: size, height: size, rgba };
}

test('there are shipped models', () => assert.ok(shipped.length >= 1, 'models/*/chain.json'));

for (const name of shipped) {
  test(`models/${name} loads and samples two images`, () => {
    const p = Pipeline.load(join(MODELS, name));
    const c = p.info.conditioning;
    const condition: RequestCondition[] | undefined = c.kind === 'class' ? [0, c.classes - 1] : c.kind === 'text' ? ['a red heart', 'a yellow star']
      : c.kind === 'segmentation' ? [readLabelMap(ring(40), c.resolution, c.labels), null] : undefined;
    const r = p.sample({ count: 2, seed: 1, condition, guidance: p.info.guidance ? 2 : undefined });
    assert.equal(r.images.length, 2);
    const { channels, resolution } = p.info;
    for (const img of r.images) {
      assert.equal(img.length, channels * resolution * resolution);
      assert.ok(img.every(Number.isFinite));
      const spread = Math.max(...img) - Math.min(...img);
      assert.ok(spread > 0.5, `a sample is not a blank image (range ${spread})`);
    }
    if (c.kind === 'segmentation') assert.equal(r.sidecar.segmentation?.meanIoU.length, 1, 'the map image reports its fidelity, the null one none');
  });
}

test('serve offers every shipped model, the conditional chains first (the page opens on the first)', () => {
  const order = shippedModels().map((d) => readManifest(join(d, 'chain.json')).conditioning.kind !== 'none');
  assert.equal(order.length, shipped.length);
  assert.ok(order.indexOf(false) === -1 || !order.slice(order.indexOf(false)).includes(true), `conditional first: ${order}`);
});

test('the five default models of issue 8, each with its VQGAN (and guide), stay under 80 MB together', () => {
  const bytes = (dir: string): number => readdirSync(dir, { withFileTypes: true })
    .reduce((a, e) => a + (e.isDirectory() ? bytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
  const names = ['mnist', 'mnist-class', 'fashion-mnist', 'fashion-mnist-class', 'emoji-text'].filter((n) => shipped.includes(n));
  const total = names.reduce((a, n) => a + bytes(join(MODELS, n)), 0);
  assert.ok(total < 80e6, `models/{${names.join(',')}}: ${(total / 1e6).toFixed(2)} MB`);
});
