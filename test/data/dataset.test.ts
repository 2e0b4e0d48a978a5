import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batches, concat, mulberry32, permutation, split, subset, type ImageDataset } from '../../src/data/dataset.js';

/** A synthetic dataset whose pixel values encode the index, so batches can be checked. */
function fake(size: number, channels: 1 | 3 = 3, resolution = 4, withCaptions = true): ImageDataset {
  return {
    name: 'fake', size, channels, resolution, classes: ['even', 'odd'],
    get(i) {
      const s = { image: new Float32Array(channels * resolution * resolution).fill(i / size), label: i % 2 } as { image: Float32Array; label: number; caption?: string };
      if (withCaptions) s.caption = `item ${i}`;
      return s;
    },
  };
}

test('mulberry32 is deterministic and in [0, 1)', () => {
  const a = mulberry32(42), b = mulberry32(42);
  for (let i = 0; i < 1000; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});

test('shuffling: same seed → same order, different seed → different order, always a permutation', () => {
  const p1 = permutation(1000, 7), p2 = permutation(1000, 7), p3 = permutation(1000, 8);
  assert.deepEqual(p1, p2);
  assert.notDeepEqual(p1, p3);
  assert.deepEqual(Array.from(p1).sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  const ds = fake(50);
  const order = (seed: number) => [...batches(ds, 8, { seed })].flatMap((b) => Array.from(b.indices));
  assert.deepEqual(order(1), order(1));
  assert.notDeepEqual(order(1), order(2));
  assert.deepEqual([...batches(ds, 8, { shuffle: false })].flatMap((b) => Array.from(b.indices)), Array.from({ length: 50 }, (_, i) => i));
});

test('batches have B*C*H*W images, labels, captions and indices that match', () => {
  const ds = fake(10, 3, 4);
  const all = [...batches(ds, 4, { seed: 3 })];
  assert.deepEqual(all.map((b) => b.indices.length), [4, 4, 2]);
  for (const b of all) {
    const B = b.indices.length;
    assert.equal(b.images.length, B * 3 * 4 * 4);
    assert.ok(b.labels instanceof Int32Array);
    assert.equal(b.captions?.length, B);
    for (let k = 0; k < B; k++) {
      const i = b.indices[k];
      assert.equal(b.images[k * 48], Math.fround(i / 10));
      assert.equal(b.images[k * 48 + 47], Math.fround(i / 10));
      assert.equal(b.labels[k], i % 2);
      assert.equal(b.captions?.[k], `item ${i}`);
    }
  }
  assert.deepEqual([...batches(ds, 4, { seed: 3, dropLast: true })].map((b) => b.indices.length), [4, 4]);
  const bare = [...batches(fake(3, 1, 2, false), 3)][0];
  assert.equal(bare.captions, undefined);
  assert.equal(bare.images.length, 3 * 4);
  assert.throws(() => batches(ds, 0).next(), /batchSize/);
});

test('split and subset are deterministic, disjoint views', () => {
  const ds = fake(100);
  const { train, val } = split(ds, { holdout: 0.2, seed: 5 });
  assert.equal(train.size, 80);
  assert.equal(val.size, 20);
  const ti = Array.from({ length: train.size }, (_, i) => Math.round(train.get(i).image[0] * 100));
  const vi = Array.from({ length: val.size }, (_, i) => Math.round(val.get(i).image[0] * 100));
  assert.equal(new Set([...ti, ...vi]).size, 100);
  assert.deepEqual(split(ds, { holdout: 0.2, seed: 5 }).val.get(0), val.get(0));
  assert.equal(split(ds, { holdout: 7 }).val.size, 7);
  assert.throws(() => split(ds, { holdout: 101 }), /cannot hold out/);
  const sub = subset(ds, [5, 3]);
  assert.equal(sub.size, 2);
  assert.equal(sub.get(1).caption, 'item 3');
  assert.deepEqual(sub.classes, ['even', 'odd']);
  assert.throws(() => subset(ds, [100]), /out of range/);
  assert.throws(() => sub.get(2), /out of range/);
  const both = concat([fake(3), fake(4)]);
  assert.equal(both.size, 7);
  assert.equal(both.get(5).caption, 'item 2');
});
