import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZipReader, ZipError, crc32 } from '../../src/io/zip.js';
import { zipBytes } from './builders.js';
import { tempDir } from './fixtures.js';

const dir = tempDir();
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
const write = (name: string, data: Uint8Array): string => { const p = join(dir, name); writeFileSync(p, data); return p; };

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
});

for (const zip64 of [false, true]) {
  test(`reads stored and deflated entries${zip64 ? ' through zip64 records and extra fields' : ''}`, () => {
    const a = bytes(1000, 1), b = new Uint8Array(5000).fill(7), empty = new Uint8Array();
    const path = write(`ok${zip64 ? '64' : ''}.zip`, zipBytes([
      { name: 'arc/data.pkl', data: a }, { name: 'arc/data/0', data: b, deflate: true }, { name: 'arc/empty', data: empty },
    ], { zip64 }));
    using z = ZipReader.open(path);
    assert.deepEqual([...z.entries.keys()], ['arc/data.pkl', 'arc/data/0', 'arc/empty']);
    assert.deepEqual(z.read('arc/data.pkl'), a);
    assert.deepEqual(z.read('arc/data/0'), b);
    assert.equal(z.entry('arc/data/0').method, 8);
    assert.equal(z.read('arc/empty').length, 0);
    const into = new Uint8Array(1000);
    z.readInto('arc/data.pkl', into);
    assert.deepEqual(into, a);
    assert.throws(() => z.readInto('arc/data.pkl', new Uint8Array(3)), /holds 1000 bytes, the destination 3/);
    assert.throws(() => z.entry('arc/nope'), /zip archive .*ok.*\.zip: has no entry 'arc\/nope'/);
  });
}

test('truncated, corrupt and foreign files give errors naming the file', () => {
  const good = zipBytes([{ name: 'a/data.pkl', data: bytes(3000, 2) }, { name: 'a/version', data: bytes(2, 3) }]);
  const cut = write('cut.zip', good.subarray(0, 2000));
  assert.throws(() => ZipReader.open(cut), (e: Error) => e instanceof ZipError && e.message.includes(cut) && /end-of-central-directory.*truncated/.test(e.message));
  // Lose bytes in the middle: the directory's offsets now point past where the entries are.
  const holed = write('holed.zip', new Uint8Array([...good.subarray(0, 1000), ...good.subarray(1500)]));
  assert.throws(() => ZipReader.open(holed), (e: Error) => e instanceof ZipError && e.message.includes(holed));
  const flipped = good.slice();
  flipped[100]! ^= 0xff;
  const bad = write('bad-crc.zip', flipped);
  using z = ZipReader.open(bad);
  assert.throws(() => z.read('a/data.pkl'), /zip archive .*bad-crc\.zip: entry 'a\/data\.pkl' fails its CRC-32 check/);
  assert.deepEqual(z.read('a/data.pkl', { verifyCrc: false }).length, 3000);
  const text = write('text.zip', new TextEncoder().encode('not a zip at all, just some words that run on for a while'));
  assert.throws(() => ZipReader.open(text), /text\.zip: has no end-of-central-directory record/);
  assert.throws(() => ZipReader.open(join(dir, 'missing.zip')), /missing\.zip: cannot open/);
});
