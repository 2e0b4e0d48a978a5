import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { emojiCatalogue, loadEmoji } from '../../src/data/emoji.js';

for (const style of ['google', 'twitter'] as const) {
  test(`emoji-${style}: one entry per PNG in the package, captioned, categorised, sorted`, () => {
    const cat = emojiCatalogue(style);
    const pngs = readdirSync(cat.imageDir).filter((f) => f.endsWith('.png'));
    const ds = loadEmoji({ style });
    assert.equal(ds.size, pngs.length);
    assert.equal(ds.size, 3786); // what emoji-datasource-* 16.0.0 ships
    assert.deepEqual(new Set(ds.entries.map((e) => e.file)), new Set(pngs));
    assert.ok(ds.entries.every((e) => e.caption.length > 0 && e.caption === e.caption.toLowerCase()));
    assert.ok(ds.entries.every((e) => e.category >= 0 && e.category < ds.classes.length));
    assert.equal(ds.classes.length, 10);
    const wave = ds.entries.find((e) => e.unified === '1F44B-1F3FB');
    assert.equal(wave?.label, 'waving hand: light skin tone');
    assert.ok(wave!.caption.startsWith(`waving hand: light skin tone, ${style === 'google' ? 'noto' : 'twemoji'} style, people & body`), wave!.caption);
    assert.equal(ds.classes[wave!.category], 'People & Body');
    const hex = ds.entries.map((e) => e.unified);
    assert.equal(new Set(hex).size, hex.length);
    assert.equal(hex[0], '0023-FE0F-20E3');
  });
}

test('emoji images: 3×32×32 in [-1, 1], white background, cached', () => {
  const ds = loadEmoji({ style: 'google' });
  const i = ds.entries.findIndex((e) => e.unified === '1F600');
  const s = ds.get(i);
  assert.equal(s.caption, 'grinning face, noto style, smileys & emotion, cheerful, cheery, grin, happy');
  assert.equal(s.image.length, 3 * 32 * 32);
  assert.ok(s.image.every((v) => v >= -1 && v <= 1));
  assert.equal(s.image[0], 1); // corner of a round face is transparent → white
  assert.ok(s.image.some((v) => v < 0.5)); // but the face itself is not white
  assert.deepEqual(ds.get(i).image, s.image);
  const grey = loadEmoji({ style: 'twitter', resolution: 16, channels: 1 });
  assert.equal(grey.get(0).image.length, 16 * 16);
});

test('emoji (both styles): the test split holds out whole names, in both styles', async () => {
  const { openDataset } = await import('../../src/data/index.js');
  const train = openDataset('emoji', { split: 'train' }), test = openDataset('emoji', { split: 'test' });
  assert.equal(train.size + test.size, 2 * 3786);
  const names = (ds: typeof train) => new Set(Array.from({ length: ds.size }, (_, i) => ds.get(i).caption!.split(/, (noto|twemoji) style/)[0]));
  const seen = names(train), held = names(test);
  assert.ok(held.size > 50, `${held.size} held-out names`);
  for (const n of held) assert.ok(!seen.has(n), `held-out name '${n}' also in training`);
  const styles = new Set(Array.from({ length: test.size }, (_, i) => /(noto|twemoji) style/.exec(test.get(i).caption!)![1]));
  assert.deepEqual([...styles].sort(), ['noto', 'twemoji']);
});
