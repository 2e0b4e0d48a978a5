/** Sampling and editing with a label map: cached = uncached, guidance, edits, the sliding window's crop, reading maps, fidelity. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, randint, manualSeed, tensor, type Tensor } from '../../src/torch/index.js';
import { encodeConditions, nullCondition } from '../../src/chain/index.js';
import {
  LabelMapError, labelsOfImage, maskedEdit, openDecoder, openWindow, readLabelMap, sample, segmentationFidelity, windowOf,
} from '../../src/sample/index.js';
import { labelMap, meanIoU, oneHot } from '../../src/data/index.js';
import { tinyChain, assertClose } from './tiny.js';

const Ks = 6;
const chain = tinyChain({ segmentation: { K: Ks, nullable: true }, K: 16, T: 3, seed: 4 });
manualSeed(11);
const maps = randint(0, Ks, [3, 16]);
const nullCond = nullCondition(chain.conditioning!);
const same = (a: Tensor, b: Tensor, what: string) => assert.deepEqual(a.toNumbers(), b.toNumbers(), what);

test('with a map, cached and uncached decoding give the same logits at every scale, and the same samples', () => {
  const xt = randint(0, 16, [3, 16]), xtm1 = randint(0, 16, [3, 16]);
  for (const d of chain.denoisers) {
    noGrad(() => {
      const cached = openDecoder(d, xt, { cond: maps, decoding: 'cached' });
      const uncached = openDecoder(d, xt, { cond: maps, decoding: 'uncached' });
      const teacher = d.logits(xt, xtm1, maps); // [B, N, K]
      for (let n = 0; n < 16; n++) {
        const a = cached.logitsAt(xtm1, n), b = uncached.logitsAt(xtm1, n);
        assertClose(a, b, 1e-5, `scale ${d.t} position ${n}: cached vs uncached`);
        assertClose(a, teacher.select(1, n), 1e-5, `scale ${d.t} position ${n}: cached vs teacher-forced`);
      }
      cached.dispose();
      uncached.dispose();
    });
  }
  same(sample(chain, { batch: 3, seed: 2, cond: maps }).tokens, sample(chain, { batch: 3, seed: 2, cond: maps, decoding: 'uncached' }).tokens, 'samples');
  assert.throws(() => sample(chain, { batch: 3, seed: 2 }), /conditional: pass 16 label-map token\(s\)/);
  assert.throws(() => sample(chain, { batch: 3, seed: 2, cond: maps.narrow(1, 0, 8) }), /\[3, 16\] tokens/);
  assert.throws(() => sample(chain, { batch: 3, seed: 2, cond: maps.add(Ks + 1) }), /label-map tokens must lie in \[0, 7\)/);
});

test('guidance with the null map: s = 1 is conditional sampling, s = 0 samples with the null map; guided cached = uncached', () => {
  const cond = sample(chain, { batch: 3, seed: 5, cond: maps });
  same(sample(chain, { batch: 3, seed: 5, cond: maps, guidance: { scale: 1, nullCond } }).tokens, cond.tokens, 's = 1');
  const none = encodeConditions(chain.conditioning!, [null, null, null], { tokens: 16 })!;
  same(sample(chain, { batch: 3, seed: 5, cond: maps, guidance: { scale: 0, nullCond } }).tokens, sample(chain, { batch: 3, seed: 5, cond: none }).tokens, 's = 0');
  const guided = sample(chain, { batch: 3, seed: 5, cond: maps, guidance: { scale: 3, nullCond } });
  assert.notDeepEqual(guided.tokens.toNumbers(), cond.tokens.toNumbers(), 's = 3 changes the samples');
  same(guided.tokens, sample(chain, { batch: 3, seed: 5, cond: maps, guidance: { scale: 3, nullCond }, decoding: 'uncached' }).tokens, 'guided, cached vs uncached');
  const plain = tinyChain({ segmentation: { K: Ks, nullable: false }, K: 16, T: 3, seed: 4 });
  assert.throws(() => nullCondition(plain.conditioning!), /dropped conditions/);
});

test('guided edits with a map keep the kept tokens bit-exact', () => {
  const x0 = randint(0, 16, [3, 4, 4]);
  const keep = tensor(Uint8Array.from({ length: 16 }, (_, i) => (i < 8 ? 1 : 0)), [1, 4, 4]).bool();
  const r = maskedEdit(chain, x0, keep, { seed: 3, cond: maps, guidance: { scale: 2, nullCond } });
  const out = r.tokens.toNumbers(), inp = x0.toNumbers();
  for (let b = 0; b < 3; b++) for (let i = 0; i < 8; i++) assert.equal(out[b * 16 + i], inp[b * 16 + i], `image ${b} token ${i}`);
  assert.notDeepEqual(out, inp, 'the repainted half changed');
});

test('the sliding window crops the map with the same window as x_t', () => {
  const [H, W] = [6, 5];
  const xt = randint(0, 16, [2, H, W]), xtm1 = randint(0, 16, [2, H * W]), big = randint(0, Ks, [2, H * W]);
  const crop = (x: Tensor, r0: number, c0: number) => x.view(2, H, W).narrow(1, r0, 4).narrow(2, c0, 4).reshape(2, 16);
  for (const d of chain.denoisers) {
    noGrad(() => {
      const win = openWindow(d, xt, { cond: big, tokenShape: [4, 4] });
      for (const n of [0, 7, 13, 29]) {
        const { r0, c0, local } = windowOf(Math.floor(n / W), n % W, [H, W], [4, 4]);
        const alone = openDecoder(d, crop(xt.reshape(2, H * W), r0, c0), { cond: crop(big, r0, c0), decoding: 'uncached' });
        assertClose(win.logitsAt(xtm1, n), alone.logitsAt(crop(xtm1, r0, c0), local), 1e-5, `scale ${d.t} position ${n}`);
        alone.dispose();
      }
      win.dispose();
    });
  }
  const r = sample(chain, { batch: 2, seed: 1, grid: [H, W], cond: big });
  assert.deepEqual(r.tokens.shape, [2, H, W]);
  assert.throws(() => sample(chain, { batch: 2, seed: 1, grid: [H, W], cond: maps.narrow(0, 0, 2) }), /\[2, 30\] tokens .* 6×5 grid/);
});

/** An RGBA picture from one RGB colour per pixel. */
const picture = (w: number, h: number, colour: (x: number, y: number) => [number, number, number]) => {
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgba.set([...colour(x, y), 255], (y * w + x) * 4);
  return { width: w, height: h, rgba };
};
const LABELS = ['background', 'stroke', 'outline'];

test('label maps from pictures: one-hot colours at the model size, or a grey shape of any size; unknown colours refused', () => {
  const R = 8;
  const labels = Uint8Array.from({ length: R * R }, (_, p) => (p * 7) % 3);
  const colour = (l: number): [number, number, number] => [l === 0 ? 255 : 0, l === 1 ? 255 : 0, l === 2 ? 255 : 0];
  const coded = readLabelMap(picture(R, R, (x, y) => colour(labels[y * R + x])), R, LABELS);
  assert.deepEqual([...coded.labels], [...labels]);
  // a grey square of side 4 in the middle of a 16×16 picture → at 8×8 a 2×2 block: all outline (every pixel touches background)
  const grey = readLabelMap(picture(16, 16, (x, y) => (x >= 6 && x < 10 && y >= 6 && y < 10 ? [255, 255, 255] : [0, 0, 0])), R, LABELS);
  const expected = labelMap(Float32Array.from({ length: R * R }, (_, p) => (Math.floor(p / R) >= 3 && Math.floor(p / R) < 5 && p % R >= 3 && p % R < 5 ? 1 : -1)), R);
  assert.deepEqual([...grey.labels], [...expected]);
  assert.equal(grey.labels.filter((l) => l === 2).length, 4);
  assert.throws(() => readLabelMap(picture(R, R, (x) => (x === 3 ? [10, 200, 30] : [255, 0, 0])), R, LABELS), (e: Error) =>
    e instanceof LabelMapError && /unknown label colour rgb\(10, 200, 30\) at pixel \(3, 0\).*background rgb\(255, 0, 0\), stroke rgb\(0, 255, 0\), outline rgb\(0, 0, 255\)/.test(e.message));
  assert.throws(() => readLabelMap(picture(10, 8, () => [0, 0, 255]), R, LABELS), /must be 8×8 pixels .* got 10×8/);
});

test('segmentation fidelity: the mean IoU of the requested map with the decoded image\'s labels', () => {
  const R = 8;
  // a 4×4 bright square: its label map is a 2×2 stroke core inside a ring of outline
  const image = Float32Array.from({ length: R * R }, (_, p) => (Math.floor(p / R) >= 2 && Math.floor(p / R) < 6 && p % R >= 2 && p % R < 6 ? 0.8 : -1));
  const own = { labels: labelMap(image, R), width: R, height: R };
  assert.equal(own.labels.filter((l) => l === 1).length, 4);
  assert.equal(segmentationFidelity(own, image, 1, 3), 1);
  // as 3 equal channels the grey is the same
  const rgb = new Float32Array(3 * R * R);
  for (let c = 0; c < 3; c++) rgb.set(image, c * R * R);
  assert.deepEqual([...labelsOfImage(rgb, 3, R)], [...own.labels]);
  // shifted one pixel right: IoU by hand per label
  const shifted = { labels: Uint8Array.from({ length: R * R }, (_, p) => (p % R === 0 ? 0 : own.labels[p - 1])), width: R, height: R };
  const iou = segmentationFidelity(shifted, image, 1, 3);
  assert.equal(iou, meanIoU(shifted.labels, own.labels, 3));
  assert.ok(iou > 0.3 && iou < 0.9, `a shifted map overlaps partly (IoU ${iou})`);
  assert.deepEqual(oneHot(own.labels, R).length, 3 * R * R);
});
