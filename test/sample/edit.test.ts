/** Masked editing: kept tokens, repeats, conditioning, masks of every kind, pictures in and out. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pngjs from 'pngjs';
import { type Tensor, randint, rand, ones, zeros, noGrad, tidy, manualSeed, native } from '../../src/torch/index.js';
import { makeSchedule } from '../../src/diffusion/index.js';
import { VQModel, makeConfig } from '../../src/vqgan/index.js';
import { decodeImage, type RGBAImage } from '../../src/data/index.js';
import {
  maskedEdit, editImage, defaultRepeats, namedMask, maskFromImage, invertMask, tokenMask, decodeTokens, NAMED_MASKS,
} from '../../src/sample/index.js';
import { tinyChain, patchStage, ids } from './tiny.js';

const { PNG } = pngjs;
const dir = mkdtempSync(join(tmpdir(), 'imagebart-edit-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const count = (t: Tensor) => t.long().sum().item();

test('kept tokens are exactly x0; repainted ones change; nothing leaks', () => {
  const chain = tinyChain({ T: 3 });
  const x0 = randint(0, 16, [3, 4, 4]);
  const keep = rand([3, 4, 4]).lt(0.5); // a different mask per image
  const r = maskedEdit(chain, x0, keep, { seed: 4, repeats: 2 });
  assert.deepEqual(r.tokens.shape, [3, 4, 4]);
  assert.equal(count(r.tokens.eq(x0).logicalOr(keep.logicalNot()).logicalNot()), 0, 'every kept token equals x0');
  assert.ok(count(r.tokens.ne(x0).logicalAnd(keep.logicalNot())) > 0, 'repainted tokens are redrawn');
  assert.deepEqual(r.repeats, { 1: 2, 2: 2, 3: 2 });
  assert.equal(count(maskedEdit(chain, x0, keep, { seed: 4, repeats: 2 }).tokens.ne(r.tokens)), 0, 'reproducible');
  const live = native.liveTensors();
  maskedEdit(chain, x0, keep, { seed: 5 }).tokens.dispose();
  assert.equal(native.liveTensors(), live, 'editing frees everything but its result');
});

test('all-keep returns x0 without running a model; all-repaint samples afresh; defaults follow the official script', () => {
  const chain = tinyChain({ T: 3 });
  const x0 = randint(0, 16, [2, 4, 4]);
  let calls = 0;
  for (const d of chain.denoisers) {
    const m = d.transformer as unknown as Record<'forward' | 'encode', (...a: unknown[]) => unknown>;
    for (const k of ['forward', 'encode'] as const) if (m[k]) m[k] = ((f) => (...a: unknown[]) => (calls++, f.apply(m, a)))(m[k]);
  }
  const kept = maskedEdit(chain, x0, ones([1, 4, 4], { dtype: 'bool' }), { seed: 1 });
  assert.ok(kept.tokens.eq(x0).all().item() === 1);
  assert.equal(calls, 0, 'no model runs');
  const repainted = maskedEdit(chain, x0, zeros([1, 4, 4], { dtype: 'bool' }), { seed: 1, repeats: 1 });
  assert.ok(repainted.tokens.ne(x0).any().item() === 1);
  assert.ok(calls > 0, 'the spy sees model runs');
  assert.deepEqual(kept.repeats, { 1: 3, 2: 3, 3: 1 }, 'geometric: 3 per scale, 1 at T');
  assert.equal(defaultRepeats(makeSchedule('alphacum:1,0.8,0.3,0', 3), 1), 5);
  assert.equal(defaultRepeats(makeSchedule('alphacum:1,0.8,0.3,0', 3), 3), 1);
  assert.throws(() => maskedEdit(chain, x0, ones([1, 4, 4])), /keep must be a bool mask \[1 or 2, 4, 4\], got float32/);
  assert.throws(() => maskedEdit(chain, x0, ones([1, 4, 5], { dtype: 'bool' })), /keep must be a bool mask/);
  assert.throws(() => maskedEdit(chain, x0.add(16), ones([1, 4, 4], { dtype: 'bool' })), /ids outside \[0, 16\)/);
  assert.throws(() => maskedEdit(chain, x0, ones([1, 4, 4], { dtype: 'bool' }), { repeats: 0 }), /repeats of scale 1 must be a positive integer/);
});

test('conditional chains edit with their conditioning tokens', () => {
  const chain = tinyChain({ T: 2, classes: 3 });
  const x0 = randint(0, 16, [2, 4, 4]);
  const keep = tokenMask(namedMask('upper-half', 16), 16, [4, 4]);
  const r = maskedEdit(chain, x0, keep, { seed: 2, cond: ids([2, 0], [2, 1]) });
  assert.ok(r.tokens.narrow(1, 2, 2).eq(x0.narrow(1, 2, 2)).all().item() === 1, 'lower half kept');
  assert.throws(() => maskedEdit(chain, x0, keep), /this chain is conditional/);
});

test('named masks, mask images of odd sizes and any channel layout, inversion, token grids', () => {
  const m = namedMask('upper-half', 8);
  assert.deepEqual(Array.from(m.subarray(0, 8)), new Array(8).fill(0), 'upper half repainted');
  assert.deepEqual(Array.from(m.subarray(56)), new Array(8).fill(1), 'lower half kept');
  const sums = Object.fromEntries(NAMED_MASKS.map((n) => [n, namedMask(n, 8).reduce((a, b) => a + b, 0)]));
  assert.deepEqual(sums, { 'upper-half': 32, 'lower-half': 32, 'left-half': 32, center: 48, border: 16 });
  assert.deepEqual(invertMask(m).reduce((a, b) => a + b, 0), 32);
  assert.throws(() => namedMask('middle' as 'center', 8), /unknown mask 'middle'/);
  tidy(() => {
    assert.deepEqual(tokenMask(namedMask('border', 32), 32, [4, 4]).long().view(16).toNumbers(), [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    assert.deepEqual(tokenMask(namedMask('upper-half', 21), 21, [3, 3]).long().view(9).toNumbers(), [0, 0, 0, 0, 0, 0, 1, 1, 1], 'odd sizes: PyTorch nearest reads pixel rows 0, 7, 14');
  });

  // A 37×23 mask, white on the right 2/3 of each row: written as grey, grey+alpha, RGB and RGBA PNGs.
  const W = 37, H = 23;
  const white = (x: number) => x >= 13;
  for (const colorType of [0, 2, 4, 6] as const) {
    const png = new PNG({ width: W, height: H, colorType, inputColorType: 6 });
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) png.data.set(white(x) ? [255, 255, 255, 255] : [0, 0, 0, 255], (y * W + x) * 4);
    const file = join(dir, `mask-${colorType}.png`);
    writeFileSync(file, PNG.sync.write(png, { colorType, inputColorType: 6 }));
    const keep = maskFromImage(decodeImage(readFileSync(file), file), 37);
    // padded to 37×37 with "keep" rows above and below (7 each), then the stripes at full width
    assert.equal(keep[0], 1, `colour type ${colorType}: padding keeps`);
    assert.equal(keep[20 * 37 + 5], 0, `colour type ${colorType}: black repaints`);
    assert.equal(keep[20 * 37 + 30], 1, `colour type ${colorType}: white keeps`);
  }
  // transparency repaints
  const clear: RGBAImage = { width: 2, height: 1, rgba: new Uint8Array([255, 255, 255, 0, 255, 255, 255, 255]) };
  assert.deepEqual(Array.from(maskFromImage(clear, 2)), [0, 1, 1, 1], 'row 0: the image, row 1: padding');
  // non-image files are named in the error
  const text = join(dir, 'notes.png');
  writeFileSync(text, 'not an image at all');
  assert.throws(() => decodeImage(readFileSync(text), text), /notes.png: not a PNG or JPEG image/);
});

/** An 16×16 grey picture whose 4×4 patches sit exactly on the patch stage's levels. */
function patchPicture(K: number): { image: RGBAImage; tokens: number[] } {
  const tokens = Array.from({ length: 16 }, (_, i) => (i * 5) % K);
  const rgba = new Uint8Array(16 * 16 * 4);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
    const level = Math.round((tokens[(y >> 2) * 4 + (x >> 2)] / (K - 1)) * 255);
    rgba.set([level, level, level, 255], (y * 16 + x) * 4);
  }
  return { image: { width: 16, height: 16, rgba }, tokens };
}

test('editImage: kept pixels equal the reconstruction, and with compositing the input itself', () => {
  const K = 16, chain = tinyChain({ K, T: 2 });
  const stage = patchStage(K, [4, 4]);
  const { image, tokens } = patchPicture(K);
  const keep = namedMask('upper-half', 16);
  const r = editImage(chain, stage, image, keep, { seed: 3, count: 2 });
  assert.deepEqual(r.x0.view(16).toNumbers(), tokens, 'the picture tokenizes to its own patches');
  for (let b = 0; b < 2; b++) {
    for (let p = 0; p < 256; p++) {
      if (keep[p]) assert.equal(r.images[b * 256 + p], r.reconstruction[p], `edit ${b}, kept pixel ${p}`);
    }
  }
  assert.ok(r.images.some((v, i) => !keep[i % 256] && v !== r.reconstruction[i % 256]), 'the upper half is repainted');

  // a real (random) VQGAN: with compositing every kept pixel is the input's, bit for bit
  manualSeed(0);
  const vq = new VQModel(makeConfig({
    ddconfig: { resolution: 16, inChannels: 1, outCh: 1, ch: 8, chMult: [1, 2, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 4 },
    nEmbed: K, embedDim: 8,
  })).eval();
  const photo: RGBAImage = { width: 30, height: 19, rgba: Uint8Array.from({ length: 30 * 19 * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 37) % 256)) };
  const composited = editImage(chain, vq, photo, keep, { seed: 3, composite: true });
  for (let p = 0; p < 256; p++) if (keep[p]) assert.equal(composited.images[p], composited.input[p], `kept pixel ${p}`);
  const all = editImage(chain, vq, photo, new Uint8Array(256).fill(1), { seed: 3 });
  assert.deepEqual(all.images, all.reconstruction, 'an all-keep edit is the reconstruction');
  assert.deepEqual(decodeTokens(vq, all.tokens).data, all.reconstruction);
  assert.throws(() => editImage(chain, vq, photo, new Uint8Array(10)), /10 values is not 16×16/);
});
