import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { encodePng } from '../../src/data/image.js';
import { loadFolder } from '../../src/data/folder.js';
import { openDataset } from '../../src/data/index.js';

function solid(w: number, h: number, rgb: [number, number, number], alpha = 255): Uint8Array {
  const out = new Uint8Array(w * h * 4);
  for (let p = 0; p < out.length; p += 4) { out[p] = rgb[0]; out[p + 1] = rgb[1]; out[p + 2] = rgb[2]; out[p + 3] = alpha; }
  return out;
}

function makeFolder(): string {
  const root = mkdtempSync(join(tmpdir(), 'imagebart-folder-'));
  mkdirSync(join(root, 'cats'));
  mkdirSync(join(root, 'dogs', 'big'), { recursive: true });
  writeFileSync(join(root, 'cats', 'a.png'), encodePng(solid(20, 10, [255, 0, 0]), 20, 10));
  writeFileSync(join(root, 'cats', 'b.png'), encodePng(solid(8, 8, [0, 0, 0], 0), 8, 8));
  writeFileSync(join(root, 'dogs', 'big', 'c.JPG'), jpeg.encode({ width: 16, height: 16, data: solid(16, 16, [0, 0, 255]) }, 90).data);
  const good = encodePng(solid(16, 16, [0, 255, 0]), 16, 16);
  writeFileSync(join(root, 'dogs', 'truncated.png'), good.subarray(0, good.length - 20));
  writeFileSync(join(root, 'dogs', 'noise.png'), Buffer.from('definitely not an image'));
  writeFileSync(join(root, 'dogs', 'notes.txt'), 'ignored');
  return root;
}

test('folder dataset: recursive, sorted, skips corrupt files and reports them by path', () => {
  const root = makeFolder();
  try {
    writeFileSync(join(root, 'captions.txt'), 'cats/a.png\ta red square\ndogs/big/c.JPG\ta blue square\n\nmissing.png\tnothing\n');
    const warnings: string[] = [];
    const ds = loadFolder(root, { resolution: 8, onWarn: (m) => warnings.push(m) });
    assert.deepEqual(ds.files, ['cats/a.png', 'cats/b.png', 'dogs/big/c.JPG']);
    assert.equal(ds.size, 3);
    assert.deepEqual(ds.skipped.map((s) => s.path).sort(), [join(root, 'dogs', 'noise.png'), join(root, 'dogs', 'truncated.png')]);
    assert.match(ds.skipped.find((s) => s.path.endsWith('truncated.png'))!.error, /truncated/);
    assert.match(ds.skipped.find((s) => s.path.endsWith('noise.png'))!.error, /not a PNG or JPEG/);
    assert.ok(warnings.some((w) => w.includes('truncated.png')));
    assert.ok(warnings.some((w) => w.includes('missing.png')));
    assert.deepEqual(ds.classes, ['cats', 'dogs']);
    const a = ds.get(0);
    assert.equal(a.caption, 'a red square');
    assert.equal(a.label, 0);
    assert.equal(a.image.length, 3 * 8 * 8);
    assert.equal(a.image[0], 1); // padded (20x10 → 20x20) top rows are white
    assert.equal(a.image[4 * 8 + 4], 1); // red channel inside
    assert.equal(a.image[64 + 4 * 8 + 4], -1); // green channel inside
    assert.ok(ds.get(1).image.every((v) => v === 1)); // fully transparent → white
    assert.equal(ds.get(1).caption, undefined);
    assert.equal(ds.get(2).label, 1);
    assert.equal(ds.get(2).caption, 'a blue square');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('captions.json, flat folders have no labels, openDataset splits folders', () => {
  const root = mkdtempSync(join(tmpdir(), 'imagebart-flat-'));
  try {
    const caps: Record<string, string> = {};
    for (let i = 0; i < 20; i++) {
      writeFileSync(join(root, `img${String(i).padStart(2, '0')}.png`), encodePng(solid(4, 4, [i * 10, 0, 0]), 4, 4));
      caps[`img${String(i).padStart(2, '0')}.png`] = `image ${i}`;
    }
    writeFileSync(join(root, 'captions.json'), JSON.stringify(caps));
    const ds = loadFolder(root, { resolution: 4, channels: 1 });
    assert.equal(ds.size, 20);
    assert.equal(ds.classes, undefined);
    assert.equal(ds.get(3).label, undefined);
    assert.equal(ds.get(3).caption, 'image 3');
    assert.equal(ds.get(3).image.length, 16);
    const train = openDataset(root, { resolution: 4, split: 'train' });
    const testSplit = openDataset(root, { resolution: 4, split: 'test' });
    assert.equal(train.size + testSplit.size, 20);
    assert.equal(testSplit.size, 2);
    assert.equal(openDataset(root, { resolution: 4, split: 'all' }).size, 20);
    writeFileSync(join(root, 'captions.json'), '{oops');
    assert.throws(() => loadFolder(root), /captions\.json: invalid JSON/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('openDataset knows the built-in names and rejects unknown ones', () => {
  const m = openDataset('mnist', { split: 'test', resolution: 32 });
  assert.equal(m.size, 10000);
  assert.equal(openDataset('emoji-twitter', { split: 'all' }).size, 3786);
  assert.throws(() => openDataset('cifar10'), /unknown dataset 'cifar10'.*mnist, fashion-mnist, mnist-segmentation, .*emoji, emoji-google, emoji-twitter/);
});
