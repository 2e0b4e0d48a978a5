/** Pictures as a user hands them in: EXIF orientation, size limits from the header, border padding, masks fitted like the picture. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import jpeg from 'jpeg-js';
import { decodeImage, encodePng, resizeTo, borderColour, jpegFrameType, type RGBAImage } from '../../src/data/index.js';
import { namedMask, fitMask, maskAtPictureSize } from '../../src/sample/index.js';

/** A 4×2 JPEG, left half red and right half blue, with an EXIF APP1 segment giving `orientation`. */
function orientedJpeg(orientation: number): Buffer {
  const rgba = new Uint8Array(4 * 2 * 4);
  for (let i = 0; i < 8; i++) rgba.set(i % 4 < 2 ? [255, 0, 0, 255] : [0, 0, 255, 255], 4 * i);
  const plain = Buffer.from(jpeg.encode({ data: rgba, width: 4, height: 2 }, 100).data);
  // "Exif\0\0", big-endian TIFF header, one IFD entry: tag 0x0112 (Orientation), SHORT, count 1
  const tiff = Buffer.from([0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0]);
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'binary'), tiff]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 255]), body]);
  return Buffer.concat([plain.subarray(0, 2), app1, plain.subarray(2)]);
}

const pixel = (img: RGBAImage, x: number, y: number) => [...img.rgba.subarray((y * img.width + x) * 4, (y * img.width + x) * 4 + 3)];
const isRed = (p: number[]) => p[0] > 200 && p[2] < 60;
const isBlue = (p: number[]) => p[2] > 200 && p[0] < 60;

test('JPEG EXIF orientation is applied: 6 turns a landscape picture clockwise, 3 turns it round', () => {
  const upright = decodeImage(orientedJpeg(1), 'o1.jpg');
  assert.deepEqual([upright.width, upright.height], [4, 2]);
  const six = decodeImage(orientedJpeg(6), 'o6.jpg');
  assert.deepEqual([six.width, six.height], [2, 4], 'rotated 90°: portrait');
  assert.ok(isRed(pixel(six, 0, 0)) && isBlue(pixel(six, 0, 3)), 'the left (red) half is now on top');
  const three = decodeImage(orientedJpeg(3), 'o3.jpg');
  assert.ok(isBlue(pixel(three, 0, 0)) && isRed(pixel(three, 3, 1)), '180°: blue on the left');
});

test('image size is checked from the header; arithmetic-coded JPEG is named, not called corrupt', () => {
  const png = Buffer.from(encodePng(new Uint8Array(4), 1, 1));
  png.writeUInt32BE(20000, 16);
  assert.throws(() => decodeImage(png, 'wide.png'), /wide\.png: 20000×1 pixels is larger than the limit \(16384 pixels a side/);
  assert.throws(() => decodeImage(encodePng(new Uint8Array(64 * 64 * 4), 64, 64), 'p.png', { maxPixels: 1000 }), /64×64 pixels is larger than the limit/);
  const j = Buffer.from(jpeg.encode({ data: new Uint8Array(64).fill(9), width: 4, height: 4 }, 80).data);
  assert.equal(jpegFrameType(j), 'baseline');
  j[j.indexOf(Buffer.from([0xff, 0xc0])) + 1] = 0xca;
  assert.throws(() => decodeImage(j, 'a.jpg'), /a\.jpg: arithmetic-coded progressive \(SOF10\) JPEG is not supported/);
});

test("a non-square picture is padded with its own border colour, so light-on-black digits get black padding", () => {
  const w = 8, h = 4, rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([0, 0, 0, 255], 4 * i);
  rgba.set([255, 255, 255, 255], (2 * w + 4) * 4); // a white stroke inside
  const img = { width: w, height: h, rgba };
  assert.deepEqual(borderColour(img), [0, 0, 0, 255]);
  const padded = resizeTo(img, 8, { fill: 'border' });
  assert.deepEqual(pixel(padded, 0, 0), [0, 0, 0], 'padding continues the black background');
  assert.deepEqual(pixel(resizeTo(img, 8), 0, 0), [255, 255, 255], 'the dataset default stays white');
});

test('masks get the picture geometry: a 64×32 "top half" mask on a square picture repaints its top half', () => {
  // the mask image is wide, the picture square: stretched to the picture, then fitted like it
  const mask = { width: 64, height: 32, rgba: new Uint8Array(64 * 32 * 4) };
  for (let y = 0; y < 32; y++) for (let x = 0; x < 64; x++) mask.rgba.fill(y < 16 ? 0 : 255, (y * 64 + x) * 4, (y * 64 + x) * 4 + 4);
  const keep = fitMask(maskAtPictureSize(mask, { width: 16, height: 16 }), 16, 16, 8);
  const rows = Array.from({ length: 8 }, (_, y) => keep[y * 8]);
  assert.deepEqual(rows, [0, 0, 0, 0, 1, 1, 1, 1], 'top half repainted, bottom half kept');
  // a wide picture: its upper half is repainted, the padding above and below is kept
  const wide = fitMask(namedMask('upper-half', 16, 8), 16, 8, 8);
  assert.deepEqual(Array.from({ length: 8 }, (_, y) => wide[y * 8]), [1, 1, 0, 0, 1, 1, 1, 1]);
});
