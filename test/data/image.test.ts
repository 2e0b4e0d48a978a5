import { test } from 'node:test';
import assert from 'node:assert/strict';
import jpeg from 'jpeg-js';
import {
  compositeOnWhite, decodeImage, detectFormat, encodePng, fromCHW, makeGrid, resizeTo, toCHW, type RGBAImage,
} from '../../src/data/image.js';

function randomImage(width: number, height: number, seed = 1): RGBAImage {
  const rgba = new Uint8Array(width * height * 4);
  let s = seed;
  for (let i = 0; i < rgba.length; i++) { s = (s * 1103515245 + 12345) >>> 0; rgba[i] = s >>> 24; }
  return { width, height, rgba };
}

test('PNG encode → decode is exact, alpha included', () => {
  const img = randomImage(13, 7);
  const png = encodePng(img.rgba, 13, 7);
  assert.equal(detectFormat(png), 'png');
  const back = decodeImage(png, 'mem.png');
  assert.equal(back.width, 13);
  assert.equal(back.height, 7);
  assert.deepEqual(Array.from(back.rgba), Array.from(img.rgba));
});

test('JPEG encoded by jpeg-js decodes to the same picture (lossy, small error)', () => {
  const w = 32, h = 24;
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const p = (y * w + x) * 4;
    rgba[p] = x * 8; rgba[p + 1] = y * 10; rgba[p + 2] = 128; rgba[p + 3] = 255;
  }
  const jpg = jpeg.encode({ width: w, height: h, data: rgba }, 95).data;
  assert.equal(detectFormat(jpg), 'jpeg');
  const back = decodeImage(jpg, 'mem.png'); // the extension is deliberately wrong: magic bytes decide
  assert.equal(back.width, w);
  assert.equal(back.height, h);
  let err = 0;
  for (let i = 0; i < rgba.length; i++) err += Math.abs(back.rgba[i] - rgba[i]);
  assert.ok(err / rgba.length < 3, `mean abs error ${err / rgba.length}`);
});

test('corrupt inputs give errors naming the path and the problem', () => {
  const png = encodePng(randomImage(16, 16).rgba, 16, 16);
  assert.throws(() => decodeImage(png.subarray(0, png.length - 30), '/data/cut.png'), /\/data\/cut\.png: corrupt PNG: truncated/);
  const junk = new Uint8Array(100).map((_, i) => (i * 37 + 11) & 255);
  assert.throws(() => decodeImage(junk, '/data/junk.png'), /\/data\/junk\.png: not a PNG or JPEG/);
  assert.throws(() => decodeImage(new Uint8Array(0), '/data/empty.jpg'), /\/data\/empty\.jpg: empty file/);
  const jpg = jpeg.encode({ width: 16, height: 16, data: new Uint8Array(16 * 16 * 4).fill(200) }, 90).data;
  assert.throws(() => decodeImage(jpg.subarray(0, jpg.length >> 1), '/data/cut.jpg'), /\/data\/cut\.jpg: corrupt JPEG: truncated/);
  const badJpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0x00, 0x01, 0x02, 0x03]);
  assert.throws(() => decodeImage(badJpeg, '/data/bad.jpg'), /\/data\/bad\.jpg: corrupt JPEG/);
});

test('alpha compositing on white: transparent → +1, opaque unchanged, half → mix', () => {
  const img: RGBAImage = { width: 3, height: 1, rgba: Uint8Array.from([0, 0, 0, 0, 10, 20, 30, 255, 0, 0, 0, 128]) };
  const chw = toCHW(img, 3);
  const n = 3;
  for (let c = 0; c < 3; c++) assert.equal(chw[c * n], 1);
  assert.ok(Math.abs(chw[1] - (10 / 127.5 - 1)) < 1e-6);
  assert.ok(Math.abs(chw[2] - (127 / 127.5 - 1)) < 1e-2);
  const flat = compositeOnWhite(img).rgba;
  assert.deepEqual(Array.from(flat.subarray(0, 8)), [255, 255, 255, 255, 10, 20, 30, 255]);
  assert.equal(flat[11], 255);
  const grey = toCHW(img, 1);
  assert.equal(grey.length, 3);
  assert.ok(Math.abs(grey[0] - 1) < 1e-6);
});

test('resizeTo pads to square with white and reaches the requested size', () => {
  const black: RGBAImage = { width: 40, height: 20, rgba: new Uint8Array(40 * 20 * 4) };
  for (let p = 3; p < black.rgba.length; p += 4) black.rgba[p] = 255;
  for (const size of [8, 20, 32, 64]) {
    const r = resizeTo(black, size);
    assert.equal(r.width, size);
    assert.equal(r.height, size);
    assert.equal(r.rgba.length, size * size * 4);
  }
  const r = resizeTo(black, 20); // 40x40 padded → 20: rows 0..4 white, 5..14 black, 15..19 white
  const at = (x: number, y: number) => r.rgba[(y * 20 + x) * 4];
  assert.equal(at(10, 0), 255);
  assert.equal(at(10, 10), 0);
  assert.equal(at(10, 19), 255);
  assert.equal(at(10, 4), 255);
  assert.equal(at(10, 5), 0);
  // Area downscale of a uniform image stays uniform; upscale too.
  const grey: RGBAImage = { width: 10, height: 10, rgba: new Uint8Array(400).fill(100) };
  for (let p = 3; p < 400; p += 4) grey.rgba[p] = 255;
  assert.ok(resizeTo(grey, 3).rgba.every((v, i) => v === (i % 4 === 3 ? 255 : 100)));
  assert.ok(resizeTo(grey, 17).rgba.every((v, i) => v === (i % 4 === 3 ? 255 : 100)));
});

test('nearest resize keeps masks binary', () => {
  const m: RGBAImage = { width: 7, height: 7, rgba: new Uint8Array(7 * 7 * 4) };
  for (let i = 0; i < 49; i++) if (i % 3 === 0) m.rgba.fill(255, i * 4, i * 4 + 4);
  const r = resizeTo(m, 16, { mode: 'nearest', fill: [0, 0, 0, 0] });
  assert.equal(r.width, 16);
  assert.ok(r.rgba.every((v) => v === 0 || v === 255));
  assert.ok(r.rgba.some((v) => v === 255));
});

test('toCHW ↔ fromCHW round trip on opaque images, fromCHW clips', () => {
  const img = randomImage(5, 4, 7);
  for (let p = 3; p < img.rgba.length; p += 4) img.rgba[p] = 255;
  const chw = toCHW(img, 3);
  assert.ok(chw.every((v) => v >= -1 && v <= 1));
  assert.deepEqual(Array.from(fromCHW(chw, 3, 4, 5).rgba), Array.from(img.rgba));
  const clipped = fromCHW(Float32Array.from([-3, 3]), 1, 1, 2).rgba;
  assert.deepEqual(Array.from(clipped), [0, 0, 0, 255, 255, 255, 255, 255]);
});

test('makeGrid tiles images with borders', () => {
  const a = new Float32Array(3 * 4 * 4).fill(1);
  const b = new Float32Array(3 * 4 * 4).fill(-1);
  const g = makeGrid([a, b, a], { channels: 3, height: 4, width: 4 }, { nrow: 2, pad: 1 });
  assert.equal(g.width, 2 * 5 + 1);
  assert.equal(g.height, 2 * 5 + 1);
  assert.equal(g.rgba[(1 * g.width + 1) * 4], 255); // first tile white
  assert.equal(g.rgba[(1 * g.width + 6) * 4], 0); // second tile black
  assert.equal(g.rgba[0], 128); // border
  const batch = new Float32Array(5 * 16).fill(0);
  const g2 = makeGrid(batch, { channels: 1, height: 4, width: 4 });
  assert.equal(g2.width, 5 * 6 + 2);
  assert.equal(g2.height, 6 + 2);
  decodeImage(encodePng(g2.rgba, g2.width, g2.height), 'grid.png');
});
