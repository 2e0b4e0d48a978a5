/** `imagebart sample` and `imagebart edit` end to end on a tiny saved chain with a tiny VQGAN. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, noGrad, streamSeed } from '../../src/torch/index.js';
import { EMA } from '../../src/optim/index.js';
import { saveScaleCheckpoint, chainManifest, writeManifest } from '../../src/chain/index.js';
import { VQModel, makeConfig, saveVQModel } from '../../src/vqgan/index.js';
import { encodePng, decodeImage } from '../../src/data/index.js';
import { loadSamplingChain } from '../../src/sample/index.js';
import { sampleCommand, editCommand } from '../../src/cli/sample.js';
import { saveTinyChain } from './tiny.js';
import { run } from '../cli/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'imagebart-sample-cli-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const K = 16, T = 2;

const chainFile = saveTinyChain(dir, { K, T });

test('loadSamplingChain: EMA weights by default, training weights on request', () => {
  const withEma = loadSamplingChain(chainFile).chain.denoisers[0].parameters()[0];
  const without = loadSamplingChain(chainFile, { ema: false }).chain.denoisers[0].parameters()[0];
  assert.ok(Math.abs(withEma.sub(without).mean().item() - 0.5) < 1e-6);
});

test('imagebart sample: PNG grid, coarse-to-fine steps and a sidecar that reproduces the run', async () => {
  const help = await run(sampleCommand, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /--temperature X\[,…\]/);
  assert.match((await run(sampleCommand, [])).err, /--chain is required/);
  const out = join(dir, 'a', 'samples.png');
  const args = ['--chain', chainFile, '--count', '3', '--batch-size', '2', '--seed', '5', '--temperature', '1,0.9', '--top-k', '8', '--intermediates'];
  assert.equal((await run(sampleCommand, [...args, '--out', out])).code, 0);
  const side = JSON.parse(readFileSync(join(dir, 'a', 'samples.json'), 'utf8'));
  assert.equal(side.command, 'sample');
  assert.equal(side.seed, '5', 'seeds are written as decimal strings (64-bit)');
  assert.deepEqual(side.batches, [{ seed: streamSeed(5n, 0).toString(), images: 2 }, { seed: streamSeed(5n, 1).toString(), images: 1 }]);
  assert.deepEqual(side.settings, { 1: { temperature: 0.9, topK: 8, topP: 1 }, 2: { temperature: 1, topK: 8, topP: 1 } });
  assert.equal(side.chain.ema, true);
  assert.equal(side.decoding, 'cached');
  const png = decodeImage(readFileSync(out), out);
  assert.deepEqual([png.width, png.height], [3 * 18 + 2, 18 + 2], 'three 16×16 images in a row, 2-pixel borders');
  const steps = decodeImage(readFileSync(join(dir, 'a', 'samples-steps.png')), 'steps');
  assert.deepEqual([steps.width, steps.height], [3 * 18 + 2, 3 * 18 + 2], 'x_2, x_1, x_0 of each image');
  const again = join(dir, 'b', 'samples.png');
  assert.equal((await run(sampleCommand, [...args, '--out', again])).code, 0);
  assert.deepEqual(readFileSync(again), readFileSync(out), 'the same seed writes the same PNG');

  const big = join(dir, 'big.png');
  assert.equal((await run(sampleCommand, ['--chain', chainFile, '--count', '1', '--grid', '8x6', '--out', big])).code, 0);
  const b = decodeImage(readFileSync(big), big);
  assert.deepEqual([b.width, b.height], [24 + 4, 32 + 4], 'an 8×6-token sample decodes to 32×24 pixels');
  assert.match(JSON.parse(readFileSync(join(dir, 'big.json'), 'utf8')).seed, /^\d+$/, 'a drawn seed is recorded');

  for (const [bad, why] of [
    [['--temperature', '1,2,3'], /--temperature takes one value or 2/],
    [['--decoding', 'fast'], /--decoding must be one of cached, uncached, official/],
    [['--class', '1'], /this chain is unconditional/],
    [['--grid', 'big'], /--grid must be HxW/],
    [['--top-p', '0'], /top-p must be in \(0, 1\]/],
    [['--seed', '18446744073709551616'], /--seed must be an integer in \[0, 2\^64\)/],
  ] as const) {
    const r = await run(sampleCommand, ['--chain', chainFile, '--count', '1', '--out', join(dir, 'bad.png'), ...bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, why);
  }
});

test('imagebart edit: named and image masks, compositing, clear errors for files that are not images', async () => {
  const help = await run(editCommand, ['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /upper-half, lower-half, left-half, center, border/);
  const image = join(dir, 'photo.png');
  const rgba = Uint8Array.from({ length: 20 * 13 * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 29) % 256));
  writeFileSync(image, encodePng(rgba, 20, 13));
  const out = join(dir, 'edit.png');
  const r = await run(editCommand, ['--chain', chainFile, '--image', image, '--mask', 'upper-half', '--composite', '--count', '2', '--seed', '3', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const side = JSON.parse(readFileSync(join(dir, 'edit.json'), 'utf8'));
  // 20×13 is padded to 20×20 (rows 3..15 the picture): its upper half is one row of the 4×4 tokens, the padding is kept
  assert.deepEqual([side.keptTokens, side.tokens, side.seed, side.composite], [12, 16, '3', true]);
  assert.deepEqual(side.repeats, { 1: 3, 2: 1 });
  const png = decodeImage(readFileSync(out), out);
  assert.deepEqual([png.width, png.height], [5 * 18 + 2, 18 + 2], 'input, masked input, reconstruction and two edits');

  const mask = join(dir, 'mask.png');
  const m = new Uint8Array(7 * 5 * 4).map((_, i) => (i % 4 === 3 ? 255 : Math.floor(i / 4) % 7 < 3 ? 0 : 255));
  writeFileSync(mask, encodePng(m, 7, 5));
  assert.equal((await run(editCommand, ['--chain', chainFile, '--image', image, '--mask', mask, '--invert', '--repeats', '2', '--out', join(dir, 'edit2.png')])).code, 0);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'edit2.json'), 'utf8')).repeats, { 1: 2, 2: 2 });

  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'hello');
  const notImage = await run(editCommand, ['--chain', chainFile, '--image', text, '--mask', 'center', '--out', join(dir, 'x.png')]);
  assert.equal(notImage.code, 1);
  assert.match(notImage.err, /notes.txt: not a PNG or JPEG image/);
  const notMask = await run(editCommand, ['--chain', chainFile, '--image', image, '--mask', text, '--out', join(dir, 'x.png')]);
  assert.match(notMask.err, /notes.txt: not a PNG or JPEG image/);
  assert.match((await run(editCommand, ['--chain', chainFile, '--image', image])).err, /--mask is required/);
  assert.match((await run(editCommand, ['--chain', join(dir, 'missing.json'), '--image', image, '--mask', 'border'])).err, /missing.json/);
  assert.ok(!existsSync(join(dir, 'x.png')));
});
