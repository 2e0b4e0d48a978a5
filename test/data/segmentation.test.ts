/** Label maps of light-on-dark images: background / stroke / outline, one-hot round trip, IoU. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labelMap, oneHot, labelsOf, meanIoU, openDataset } from '../../src/data/index.js';

test('a filled square: outline on its edge, stroke inside, background around', () => {
  const R = 6;
  const img = new Float32Array(R * R).fill(-1);
  for (let y = 1; y <= 4; y++) for (let x = 1; x <= 4; x++) img[y * R + x] = 1;
  const m = labelMap(img, R);
  const row = (y: number) => Array.from(m.subarray(y * R, (y + 1) * R));
  assert.deepEqual(row(0), [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(row(1), [0, 2, 2, 2, 2, 0]);
  assert.deepEqual(row(2), [0, 2, 1, 1, 2, 0]);
  assert.deepEqual(labelsOf(oneHot(m, R), R), m);
  assert.equal(meanIoU(m, m), 1);
  const shifted = new Uint8Array(R * R); // everything background
  assert.ok(meanIoU(m, shifted) < 0.5);
  assert.throws(() => labelMap(new Float32Array(10), R), /36 values/);
});

test('mnist-segmentation: one-hot maps of the digits, labels kept', () => {
  const seg = openDataset('mnist-segmentation', { split: 'test' });
  const digits = openDataset('mnist', { split: 'test' });
  assert.equal(seg.size, digits.size);
  assert.equal(seg.channels, 3);
  const s = seg.get(0);
  assert.equal(s.label, digits.get(0).label);
  const labels = labelsOf(s.image, 32);
  const counts = [0, 1, 2].map((c) => labels.filter((l) => l === c).length);
  assert.ok(counts.every((n) => n > 0), `every label appears in a digit: ${counts}`);
  assert.ok(counts[0] > counts[1] + counts[2], 'mostly background');
});
