import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { FASHION_MNIST_DIR, loadFashionMnist, loadMnist, parseIdx } from '../../src/data/mnist.js';

test('parseIdx reads headers, gunzips, and rejects bad magic / sizes', () => {
  const raw = Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
  for (const bytes of [raw, gzipSync(raw)]) {
    const { dims, data } = parseIdx(bytes, 'x.idx');
    assert.deepEqual(dims, [2, 3]);
    assert.deepEqual(Array.from(data), [1, 2, 3, 4, 5, 6]);
  }
  assert.throws(() => parseIdx(Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 0]), 'a.idx'), /a\.idx: not an IDX file/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 0]), 'b.idx'), /b\.idx: IDX element type 0xd unsupported/);
  assert.throws(() => parseIdx(raw.subarray(0, 15), 'c.idx'), /c\.idx: IDX dims 2x3 need 6 bytes/);
});

test('MNIST train: 60000 images, labels 0..9, mean intensity ≈ 0.1307', () => {
  const ds = loadMnist({ split: 'train' });
  assert.equal(ds.size, 60000);
  assert.equal(ds.channels, 1);
  assert.equal(ds.resolution, 32);
  assert.equal(ds.pixels.length, 60000 * 784);
  const counts = new Array(10).fill(0);
  for (const l of ds.labels) counts[l]++;
  assert.ok(counts.every((c) => c > 5000), `class counts ${counts}`);
  let sum = 0;
  for (const v of ds.pixels) sum += v;
  const mean = sum / ds.pixels.length / 255;
  assert.ok(Math.abs(mean - 0.1307) < 0.001, `mean ${mean}`);
  assert.deepEqual(ds.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
});

test('MNIST test split and padding to 32 (black border → -1) / shrinking to 16', () => {
  const ds = loadMnist({ split: 'test' });
  assert.equal(ds.size, 10000);
  const { image, label } = ds.get(0);
  assert.equal(label, ds.labels[0]);
  assert.equal(image.length, 32 * 32);
  for (let i = 0; i < 32; i++) {
    for (const [x, y] of [[i, 0], [i, 1], [i, 30], [i, 31], [0, i], [1, i], [30, i], [31, i]]) assert.equal(image[y * 32 + x], -1);
  }
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
    assert.equal(image[(y + 2) * 32 + x + 2], Math.fround(ds.pixels[y * 28 + x] / 127.5 - 1));
  }
  assert.ok(image.some((v) => v > 0.9));
  const small = loadMnist({ split: 'test', resolution: 16 }).get(0).image;
  assert.equal(small.length, 256);
  assert.ok(small.every((v) => v >= -1 && v <= 1));
  assert.equal(small[0], -1);
  // Area averaging preserves mean intensity.
  const m32 = image.reduce((a, b) => a + b, 0) / 1024, m16 = small.reduce((a, b) => a + b, 0) / 256;
  assert.ok(Math.abs(m32 - m16) < 1e-4);
  assert.equal(loadMnist({ split: 'test', resolution: 28 }).get(0).image.length, 784);
  assert.throws(() => ds.get(10000), /out of range/);
});

const haveFashion = existsSync(`${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz`) || existsSync(`${FASHION_MNIST_DIR}/train-images-idx3-ubyte`);

test('Fashion-MNIST: 60000/10000 images, 10 named classes', { skip: haveFashion ? false : `Fashion-MNIST absent at ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)` }, () => {
  const train = loadFashionMnist({ split: 'train' });
  assert.equal(train.size, 60000);
  assert.equal(loadFashionMnist({ split: 'test' }).size, 10000);
  assert.equal(train.classes.length, 10);
  assert.equal(train.classes[9], 'Ankle boot');
  assert.ok(train.labels.every((l) => l < 10));
  assert.equal(train.get(0).image.length, 32 * 32);
});

test('Fashion-MNIST missing files give an install hint', () => {
  assert.throws(() => loadFashionMnist({ dir: '/nonexistent/fashion' }), /apt-get install dataset-fashion-mnist/);
});
