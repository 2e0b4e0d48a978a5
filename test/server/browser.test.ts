/**
 * The editor in a real browser (Debian's chromium, driven by playwright-core) against a real server on
 * the shipped models: sample, paint a mask with the mouse, edit, check the result, cancel; and on a tiny
 * segmentation chain: paint a label map, sample with it, see each image's fidelity. Screenshots
 * go to dist/test-artifacts/ (skipped, saying so, where /usr/bin/chromium is not installed).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { decodeImage } from '../../src/data/index.js';
import { Pipeline, useLatencyBoundThreads } from '../../src/pipeline/index.js';
import { readLabelMap } from '../../src/sample/index.js';
import { readManifest } from '../../src/chain/index.js';
import { SHIPPED, pngOf, serve, tinyModels, untilIdle } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium)`;
const ARTIFACTS = join('dist', 'test-artifacts');

let server: Awaited<ReturnType<typeof serve>>;
let browser: BrowserContext;
let page: Page;
const profile = mkdtempSync(join(tmpdir(), 'imagebart-chromium-'));
const tiny = skip ? undefined : tinyModels();

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await serve({ models: [SHIPPED, join(SHIPPED, '..', 'mnist-class'), tiny!.seg], workers: 1 });
  // a fresh profile (--user-data-dir) per run
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(server.url);
  await page.waitForSelector('#examples img.on');
  assert.deepEqual(errors, []);
});

after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(profile, { recursive: true, force: true });
});

/** A data: URL PNG → its pixels (RGBA). */
const pixels = (url: string) => decodeImage(Buffer.from(url.split(',')[1], 'base64'), 'page image');

test('sample: four images and one intermediate per scale', { skip }, async () => {
  // models/mnist ships a guide: the guidance control starts at its default, and says what it pushes against
  const guide = readManifest(join(SHIPPED, 'chain.json')).guide;
  assert.equal(await page.isVisible('#guidance-label'), !!guide);
  if (guide) {
    assert.equal(Number(await page.inputValue('#guidance')), guide.scale);
    assert.match(await page.locator('#guidance-hint').textContent() ?? '', /weaker model/);
  }
  await page.fill('#seed', '42');
  await page.click('#sample');
  await page.waitForFunction(`document.querySelectorAll('#results img[data-role=result]').length === 4 && /done in/.test(document.getElementById('progress-text').textContent)`, undefined, { timeout: 180_000 });
  assert.equal(await page.locator('#steps img').count(), readManifest(join(SHIPPED, 'chain.json')).T);
  assert.equal(await page.isVisible('#download-image'), true);
});

test('edit: paint the upper part with the mouse; the result differs inside the mask and equals the input outside', { skip }, async () => {
  await page.fill('#count', '2');
  const box = (await page.locator('#mask-canvas').boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.1, box.y + box.height * 0.2);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.width * (0.1 + 0.08 * i), box.y + box.height * 0.2, { steps: 2 });
  for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.width * (0.9 - 0.08 * i), box.y + box.height * 0.35, { steps: 2 });
  await page.mouse.up();
  await page.click('#edit');
  await page.waitForFunction(`document.querySelectorAll('#results img[data-role=result]').length === 2 && /done in/.test(document.getElementById('progress-text').textContent)`, undefined, { timeout: 180_000 });
  await page.screenshot({ path: join(ARTIFACTS, 'editor.png') });
  const src = (alt: string) => page.getAttribute(`#compare img[alt="${alt}"]`, 'src') as Promise<string>;
  const input = pixels(await src('input')), mask = pixels(await src('mask (white = kept)')), result = pixels(await src('result 1'));
  assert.deepEqual([result.width, result.height], [32, 32]);
  let repainted = 0, changed = 0;
  for (let p = 0; p < 32 * 32; p++) {
    const kept = mask.rgba[4 * p] > 127;
    const diff = Math.abs(result.rgba[4 * p] - input.rgba[4 * p]);
    if (kept) assert.equal(diff, 0, `kept pixel ${p} equals the input`);
    else {
      repainted++;
      if (diff > 0) changed++;
    }
  }
  assert.ok(repainted > 100 && repainted < 900, `the painted stroke covers part of the picture (${repainted} pixels)`);
  assert.ok(changed > 0, 'the repainted part is new');
});

test('cancel: a running edit stops and the server is free again', { skip }, async () => {
  await page.fill('#count', '16');
  await page.fill('#repeats', '10');
  await page.click('#edit');
  await page.waitForFunction(`/scale \\d of/.test(document.getElementById('progress-text').textContent)`, undefined, { timeout: 180_000 });
  await page.click('#cancel');
  await page.waitForFunction(`document.getElementById('progress-text').textContent === 'cancelled'`, undefined, { timeout: 60_000 });
  await untilIdle(server.url, 10000);
  assert.equal(await page.isEnabled('#edit'), true);
  await page.screenshot({ path: join(ARTIFACTS, 'editor-cancelled.png') });
});

test('an error from the server is shown to the person', { skip }, async () => {
  await page.fill('#count', '1');
  await page.fill('#seed', '99999999999999999999999');
  await page.click('#sample');
  await page.waitForSelector('#error:not([hidden])');
  assert.match((await page.textContent('#error-text'))!, /seed must be an integer in \[0, 2\^64\)/);
  await page.fill('#seed', '');
});

test('choose the class-conditional model: a class and guidance reach the samples', { skip }, async () => {
  await page.selectOption('#model', 'mnist-class');
  await page.waitForSelector('#class-label:not([hidden])');
  assert.equal(await page.isVisible('#guidance-label'), true, 'the chain has a null class: guidance is offered');
  assert.equal(await page.locator('#class option').count(), 11, 'ten digits and the null class');
  await page.selectOption('#class', '3');
  await page.fill('#count', '2');
  await page.fill('#seed', '7');
  const result = page.waitForResponse((r) => r.url().endsWith('/api/sample'));
  await page.click('#sample');
  assert.equal((await result).status(), 200);
  await page.waitForFunction(`document.querySelectorAll('#results img[data-role=result]').length === 2 && /done in/.test(document.getElementById('progress-text').textContent)`, undefined, { timeout: 180_000 });
  const sidecar: any = await page.evaluate(`fetch(document.getElementById('download-settings').href).then((r) => r.json())`);
  assert.deepEqual([sidecar.conditions, sidecar.guidance, sidecar.request.model], [[3, 3], 1.5, 'mnist-class']);
  await page.screenshot({ path: join(ARTIFACTS, 'editor-class.png') });
});

test('touch: a finger paints the mask on a touch screen', { skip }, async () => {
  const phone = await browser.browser()!.newContext({ hasTouch: true, isMobile: true, viewport: { width: 412, height: 915 }, deviceScaleFactor: 2 });
  const p = await phone.newPage();
  await p.goto(server.url);
  await p.waitForSelector('#examples img.on');
  await p.locator('#mask-canvas').scrollIntoViewIfNeeded();
  const box = (await p.locator('#mask-canvas').boundingBox())!;
  const painted = () => p.evaluate(`(() => { const c = document.getElementById('mask-canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`) as Promise<number>;
  assert.equal(await painted(), 0);
  await p.touchscreen.tap(box.x + box.width / 2, box.y + box.height / 3);
  assert.ok((await painted()) > 100, 'a tap leaves a brush dot on the mask');
  await p.screenshot({ path: join(ARTIFACTS, 'editor-touch.png') });
  await phone.close();
});

/** The label map on the page's canvas: the RGB channel that is on, per pixel (-1 for any other colour). */
const pageLabels = () => page.evaluate(`(() => {
  const c = document.getElementById('map-canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, out = [];
  for (let i = 0; i < d.length; i += 4) {
    const on = [0, 1, 2].filter((k) => d[i + k] === 255), off = [0, 1, 2].filter((k) => d[i + k] === 0);
    out.push(on.length === 1 && off.length === 2 ? on[0] : -1);
  }
  return out;
})()`) as Promise<number[]>;

test('segmentation: paint a label map, sample with it, and each image\'s fidelity to it is shown', { skip }, async () => {
  await page.selectOption('#model', 'seg');
  await page.waitForSelector('#map-panel:not([hidden])');
  assert.equal(await page.isVisible('#class-label'), false);
  assert.equal(await page.isVisible('#map-none-label'), false, 'the chain has no null map: no unconditional choice');
  assert.equal(await page.isVisible('#guidance-label'), false);
  assert.deepEqual(await page.locator('#palette button').allTextContents(), ['background', 'stroke', 'outline']);
  const blank = await pageLabels();
  assert.deepEqual([blank.length, new Set(blank).size, blank[0]], [256, 1, 0], 'a fresh 16×16 map, all background');
  await page.click('#palette button[data-label="1"]');
  const box = (await page.locator('#map-canvas').boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.width * (0.2 + 0.06 * i), box.y + box.height * 0.5, { steps: 2 });
  await page.mouse.up();
  const painted = await pageLabels();
  assert.ok(!painted.includes(-1), 'every pixel is a pure label colour');
  const strokes = painted.filter((l) => l === 1).length;
  assert.ok(strokes >= 10 && strokes < 100, `the stroke painted ${strokes} pixels of the map`);
  assert.deepEqual(painted.slice(0, 16), new Array(16).fill(0), 'the top row is untouched');
  await page.fill('#count', '2');
  await page.fill('#seed', '3');
  const response = page.waitForResponse((r) => r.url().endsWith('/api/sample'));
  await page.click('#sample');
  assert.equal((await response).status(), 200);
  await page.waitForSelector('#fidelity:not([hidden])', { timeout: 60_000 }); // only a segmentation result shows it
  assert.equal(await page.locator('#results img[data-role=result]').count(), 2);
  await page.screenshot({ path: join(ARTIFACTS, 'editor-segmentation.png') });
  assert.match((await page.textContent('#fidelity'))!, /^mean IoU with the label map: \d\.\d{3} \(2 images;/);
  assert.match((await page.locator('#results figcaption').allTextContents()).join(' | '), /^sample 1 · IoU \d\.\d\d \| sample 2 · IoU \d\.\d\d$/);
  const sidecar: any = await page.evaluate(`fetch(document.getElementById('download-settings').href).then((r) => r.json())`);
  assert.equal(sidecar.request.segmentation, 'painted');
  // the server sampled with the map as painted: the library gives the same fidelity for it
  useLatencyBoundThreads();
  const alone = Pipeline.load(tiny!.seg).sample({ count: 2, seed: '3', condition: { labels: Uint8Array.from(painted), width: 16, height: 16 } });
  assert.deepEqual(sidecar.segmentation, alone.sidecar.segmentation);
  assert.equal((await page.textContent('#fidelity'))!.slice(29, 34), alone.sidecar.segmentation!.mean.toFixed(3));
});

test('segmentation: the map can be laid over the picture, follows a new picture, and stays pure label colours', { skip }, async () => {
  const before = await pageLabels();
  const overlay = () => page.evaluate(`(() => {
    const wrap = document.getElementById('map-canvas').parentElement;
    return { over: wrap.classList.contains('over'), background: wrap.style.backgroundImage, picture: document.getElementById('image-canvas').toDataURL() };
  })()`) as Promise<{ over: boolean; background: string; picture: string }>;
  assert.deepEqual(await overlay().then((o) => [o.over, o.background]), [false, ''], 'off by default');
  await page.check('#map-over-picture');
  const on = await overlay();
  assert.ok(on.over, 'the map is shown half transparent');
  assert.equal(on.background, `url("${on.picture}")`, 'the picture shows under the map');
  const dot = pngOf(24, 24, (x, y) => (Math.hypot(x - 12, y - 12) < 6 ? [250, 250, 250] : [0, 0, 0]));
  await page.setInputFiles('#upload', { name: 'dot.png', mimeType: 'image/png', buffer: Buffer.from(dot) });
  await page.waitForFunction(`document.getElementById('map-canvas').parentElement.style.backgroundImage !== ${JSON.stringify(on.background)}`, undefined, { timeout: 10_000 });
  const next = await overlay();
  assert.equal(next.background, `url("${next.picture}")`, 'a new picture replaces the one under the map');
  assert.deepEqual(await pageLabels(), before, 'the overlay is only how the map is shown: its pixels are the labels as painted');
  await page.uncheck('#map-over-picture');
  assert.deepEqual(await overlay().then((o) => [o.over, o.background]), [false, '']);
});

test('segmentation: an uploaded grey shape becomes the map the server reads in it; a bad one says why', { skip }, async () => {
  const shape = pngOf(40, 40, (x, y) => (Math.hypot(x - 20, y - 20) < 12 ? [240, 240, 240] : [0, 0, 0]));
  await page.setInputFiles('#map-upload', { name: 'shape.png', mimeType: 'image/png', buffer: Buffer.from(shape) });
  const expected = Array.from(readLabelMap(decodeImage(shape, 'shape'), 16, ['background', 'stroke', 'outline']).labels);
  await page.waitForFunction(`document.getElementById('map-canvas').getContext('2d').getImageData(8, 8, 1, 1).data[1] === 255`, undefined, { timeout: 10_000 });
  assert.deepEqual(await pageLabels(), expected);
  const odd = pngOf(16, 16, (x) => (x === 3 ? [10, 200, 30] : [255, 0, 0]));
  await page.setInputFiles('#map-upload', { name: 'odd.png', mimeType: 'image/png', buffer: Buffer.from(odd) });
  await page.waitForSelector('#error:not([hidden])');
  assert.match((await page.textContent('#error-text'))!, /segmentation: unknown label colour rgb\(10, 200, 30\) at pixel \(3, 0\)/);
  assert.deepEqual(await pageLabels(), expected, 'a refused upload leaves the map as it was');
  await page.click('#error-close');
});
