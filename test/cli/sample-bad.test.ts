/**
 * Bad inputs to `imagebart sample` and `imagebart edit`, table-driven: each case asserts the exit
 * code and message, and that no file of the chain, the inputs or an earlier output changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { loadSafetensors, saveSafetensors, tensor } from '../../src/torch/index.js';
import { encodePng } from '../../src/data/index.js';
import { sampleCommand, editCommand } from '../../src/cli/sample.js';
import { saveTinyChain } from '../sample/tiny.js';
import { checkBadInputs, run, type BadCase } from './harness.js';

const root = mkdtempSync(join(tmpdir(), 'imagebart-bad-sample-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const models = join(root, 'models'), inputs = join(root, 'inputs'), outs = join(root, 'outs');
for (const d of [models, inputs, outs]) mkdirSync(d);
const chain = saveTinyChain(models);
const segModels = join(root, 'seg-models');
mkdirSync(segModels);
const segChain = saveTinyChain(segModels, { segmentation: { K: 8, nullable: false } });
const manifest = JSON.parse(readFileSync(chain, 'utf8')) as Record<string, unknown>;

const photo = join(inputs, 'photo.png');
writeFileSync(photo, encodePng(Uint8Array.from({ length: 20 * 13 * 4 }, (_, i) => (i % 4 === 3 ? 255 : (i * 29) % 256)), 20, 13));
const existing = join(outs, 'existing.png');
writeFileSync(existing, 'an earlier result');
writeFileSync(join(inputs, 'file'), 'not a folder');
/** A PNG of one RGB colour per pixel. */
const colourPng = (name: string, w: number, h: number, colour: (x: number, y: number) => number[]) => {
  const rgba = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) rgba.set([...colour(p % w, Math.floor(p / w)), 255], 4 * p);
  writeFileSync(join(inputs, name), encodePng(rgba, w, h));
  return join(inputs, name);
};
const smallMap = colourPng('small-map.png', 10, 10, () => [255, 0, 0]);
const oddMap = colourPng('odd-map.png', 16, 16, (x, y) => (x === 5 && y === 2 ? [10, 200, 30] : [0, 255, 0]));
const greyShape = colourPng('shape.png', 20, 20, (x, y) => (x > 5 && x < 14 && y > 3 && y < 16 ? [255, 255, 255] : [0, 0, 0]));

/** A copy of the chain with one value of the first float tensor of `file` set to NaN. */
function poisoned(file: string): string {
  const dir = join(root, `nan-${file.replace(/\W/g, '')}`);
  cpSync(models, dir, { recursive: true });
  const { tensors, metadata } = loadSafetensors(join(dir, file));
  const [name, t] = [...tensors].find(([, x]) => x.dtype === 'float32' && x.numel > 1)!;
  const values = t.toFloat32Array();
  values[1] = NaN;
  tensors.set(name, tensor(values, t.shape));
  saveSafetensors(join(dir, file), tensors, metadata);
  return join(dir, 'chain.json');
}

/** A copy of the manifest with `change` applied. */
function badManifest(name: string, change: (m: Record<string, unknown>) => unknown): string {
  const path = join(models, `${name}.json`);
  writeFileSync(path, JSON.stringify(change({ ...manifest })));
  return path;
}

/** A baseline JPEG re-marked as arithmetic-coded (SOF0 → SOF9): the frame header the decoder cannot read. */
function arithmeticJpeg(): string {
  const bytes = Buffer.from(jpeg.encode({ data: new Uint8Array(8 * 8 * 4).fill(200), width: 8, height: 8 }, 90).data);
  const at = bytes.indexOf(Buffer.from([0xff, 0xc0]));
  bytes[at + 1] = 0xc9;
  const path = join(inputs, 'arith.jpg');
  writeFileSync(path, bytes);
  return path;
}

/** A PNG whose header declares 30000×30000 pixels (only the header: decoding must not start). */
function hugePng(): string {
  const png = Buffer.from(encodePng(new Uint8Array(4).fill(255), 1, 1));
  png.writeUInt32BE(30000, 16);
  png.writeUInt32BE(30000, 20);
  const path = join(inputs, 'huge.png');
  writeFileSync(path, png);
  return path;
}

const sampleArgs = (...a: string[]) => ['--chain', chain, '--count', '1', '--seed', '1', ...a];
const out = (n: string) => join(outs, n);

const SAMPLE_CASES: BadCase[] = [
  { name: 'sidecar would land on the manifest', argv: sampleArgs('--out', join(models, 'chain.png')), message: /sidecar .*chain\.json: that is the chain manifest or model of this run/, absent: [join(models, 'chain.png')] },
  { name: '--out is a model file', argv: sampleArgs('--out', join(models, 'scale1.safetensors')), message: /must end in \.png \(not \.safetensors\)/ },
  { name: '--out x.jpg for a PNG', argv: sampleArgs('--out', out('x.jpg')), message: /this writes PNG, so the name must end in \.png \(not \.jpg\)/, absent: [out('x.jpg')] },
  { name: 'existing output without --force', argv: sampleArgs('--out', existing), message: /existing\.png exists: pass --force to replace it/ },
  { name: 'output folder under a file', argv: sampleArgs('--out', join(inputs, 'file', 'x.png')), message: /cannot create the folder .*a part of the path is a file, not a folder/ },
  { name: '--count 0x10', argv: sampleArgs('--count', '0x10', '--out', out('a.png')), message: /--count must be an integer in 1\.\.4096, got '0x10' \(hexadecimal is not accepted\)/ },
  { name: '--count 1e12', argv: sampleArgs('--count', '1e12', '--out', out('a.png')), message: /--count must be an integer in 1\.\.4096, got '1e12' \(not a whole number in decimal digits\)/ },
  { name: '--count -1', argv: sampleArgs('--count', '-1', '--out', out('a.png')), message: /--count must be an integer in 1\.\.4096, got '-1' \(negative\)/ },
  { name: '--count 100000', argv: sampleArgs('--count', '100000', '--out', out('a.png')), message: /--count must be an integer in 1\.\.4096, got '100000'/ },
  { name: '--grid 1000x1000', argv: sampleArgs('--grid', '1000x1000', '--out', out('a.png')), message: /--grid: each side must lie in 1\.\.256 tokens/ },
  { name: '--batch-size 0', argv: sampleArgs('--batch-size', '0', '--out', out('a.png')), message: /--batch-size must be an integer in 1\.\.1024, got '0'/ },
  { name: '--seed 2^64 (would wrap to 0)', argv: sampleArgs('--seed', '18446744073709551616', '--out', out('a.png')), message: /--seed must be an integer in \[0, 2\^64\), got '18446744073709551616'/ },
  { name: '--seed in hexadecimal', argv: sampleArgs('--seed', '0x10', '--out', out('a.png')), message: /--seed must be an integer in \[0, 2\^64\), got '0x10'/ },
  { name: 'manifest K is a string', argv: ['--chain', badManifest('k-string', (m) => ({ ...m, K: '106' })), '--out', out('a.png')], message: /field "K": expected number, received string/ },
  { name: 'manifest field missing', argv: ['--chain', badManifest('no-conditioning', ({ conditioning: _, ...m }) => m), '--out', out('a.png')], message: /field "conditioning" is missing/ },
  { name: 'manifest unknown field', argv: ['--chain', badManifest('modle', (m) => ({ ...m, modle: 1 })), '--out', out('a.png')], message: /unknown field "modle"/ },
  { name: 'manifest is null', argv: ['--chain', badManifest('null', () => null), '--out', out('a.png')], message: /expected object, received null/ },
  { name: 'manifest scale checkpoint null', argv: ['--chain', badManifest('null-ckpt', (m) => ({ ...m, scales: [{ t: 1, checkpoint: null }, { t: 2, checkpoint: 'scale2.safetensors' }] })), '--out', out('a.png')], message: /field "scales\[0\]\.checkpoint": expected string, received null/ },
  { name: 'NaN in a transformer', argv: ['--chain', poisoned('scale1.safetensors'), '--out', out('nan1.png')], code: 1, message: /scale1\.safetensors: tensor '.+' holds 1 NaN or infinite value/, absent: [out('nan1.png')] },
  { name: '--segmentation on an unconditional chain', argv: sampleArgs('--segmentation', greyShape, '--out', out('a.png')), message: /--segmentation: this chain is unconditional/ },
  { name: 'segmentation chain without --segmentation', argv: ['--chain', segChain, '--count', '1', '--out', out('a.png')], message: /--segmentation is required: this chain is conditioned on segmentation \(label maps of background \/ stroke \/ outline, 8-code VQ model\)/ },
  { name: '--class on a segmentation chain', argv: ['--chain', segChain, '--class', '1', '--segmentation', greyShape, '--out', out('a.png')], message: /--class: this chain is conditioned on segmentation/ },
  { name: '--segmentation file missing', argv: ['--chain', segChain, '--segmentation', join(inputs, 'nope.png'), '--out', out('a.png')], message: /--segmentation .*nope\.png does not exist/ },
  { name: 'label map of the wrong size', argv: ['--chain', segChain, '--segmentation', smallMap, '--out', out('a.png')], message: /--segmentation .*small-map\.png: a colour-coded label map must be 16×16 pixels \(the label-map model's size\), got 10×10/, absent: [out('a.png')] },
  { name: 'label map with an unknown colour', argv: ['--chain', segChain, '--segmentation', oddMap, '--out', out('a.png')], message: /--segmentation .*odd-map\.png: unknown label colour rgb\(10, 200, 30\) at pixel \(5, 2\): a label map's pixels are background rgb\(255, 0, 0\), stroke rgb\(0, 255, 0\), outline rgb\(0, 0, 255\)/ },
  { name: '--guidance on a chain without the null map', argv: ['--chain', segChain, '--segmentation', greyShape, '--guidance', '2', '--out', out('a.png')], message: /--guidance needs a chain trained with --cond-dropout .*; this chain is conditioned on segmentation .*, without a null map/ },
  { name: '--segmentation null without the null map', argv: ['--chain', segChain, '--segmentation', 'null', '--out', out('a.png')], message: /segmentation map: this chain was trained without dropped label maps: it has no null map/ },
  { name: '--guidance on an unconditional chain', argv: sampleArgs('--guidance', '2', '--out', out('a.png')), message: /--guidance needs a chain trained with --cond-dropout .*; this chain is unconditional/ },
  { name: '--out is the label map', argv: ['--chain', segChain, '--segmentation', greyShape, '--out', greyShape, '--force'], message: /that is the label map \(--segmentation\) of this run/ },
  { name: 'NaN in the VQGAN', argv: ['--chain', poisoned('vqgan.safetensors'), '--out', out('nan2.png')], code: 1, message: /vqgan\.safetensors: tensor '.+' holds 1 NaN or infinite value/, absent: [out('nan2.png')] },
];

const editArgs = (...a: string[]) => ['--chain', chain, '--count', '1', '--seed', '1', ...a];

const EDIT_CASES: BadCase[] = [
  { name: 'edit --out equal to --image', argv: editArgs('--image', photo, '--mask', 'upper-half', '--out', photo), message: /that is the input picture \(--image\) of this run/ },
  { name: 'mask-name typo', argv: editArgs('--image', photo, '--mask', 'uper-half', '--out', out('e.png')), message: /--mask 'uper-half' is neither a mask name \(upper-half, lower-half, left-half, center, border\) nor an existing mask image/ },
  { name: 'missing --image', argv: editArgs('--image', join(inputs, 'nope.png'), '--mask', 'center', '--out', out('e.png')), message: /--image .*nope\.png does not exist/ },
  { name: 'arithmetic-coded JPEG', argv: editArgs('--image', arithmeticJpeg(), '--mask', 'center', '--out', out('e.png')), code: 1, message: /arithmetic-coded \(SOF9\) JPEG is not supported/, absent: [out('e.png')] },
  { name: '30000×30000 PNG', argv: editArgs('--image', hugePng(), '--mask', 'center', '--out', out('e.png')), code: 1, message: /30000×30000 pixels is larger than the limit/, absent: [out('e.png')] },
  { name: 'edit: label map of the wrong size', argv: ['--chain', segChain, '--image', photo, '--mask', 'center', '--segmentation', smallMap, '--out', out('e.png')], message: /--segmentation .*: a colour-coded label map must be 16×16 pixels/, absent: [out('e.png')] },
  { name: 'edit: --segmentation on an unconditional chain', argv: editArgs('--image', photo, '--mask', 'center', '--segmentation', greyShape, '--out', out('e.png')), message: /--segmentation: this chain is unconditional/ },
  { name: '--repeats 0x2', argv: editArgs('--image', photo, '--mask', 'center', '--repeats', '0x2', '--out', out('e.png')), message: /--repeats must be an integer ≥ 1, got '0x2'/ },
];

test('imagebart sample: bad inputs are refused before any work, and nothing is overwritten', async () => {
  await checkBadInputs(sampleCommand, SAMPLE_CASES, [models, segModels, inputs, outs]);
});

test('imagebart edit: bad inputs are refused, and no input is overwritten', async () => {
  await checkBadInputs(editCommand, EDIT_CASES, [models, segModels, inputs, outs]);
});

test('--force replaces an existing output (atomically: no temporary file is left)', async () => {
  const r = await run(sampleCommand, sampleArgs('--out', existing, '--force'));
  assert.equal(r.code, 0, r.err);
  assert.deepEqual([...readFileSync(existing).subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG now');
  assert.ok(existsSync(join(outs, 'existing.json')));
  const again = await run(sampleCommand, sampleArgs('--out', existing));
  assert.match(again.err, /exists: pass --force/, 'and without --force it is kept');
  assert.deepEqual(readFileSync(join(outs, 'existing.json'), 'utf8').length > 0, true);
  const leftovers = (await import('node:fs')).readdirSync(outs).filter((n) => n.includes('.tmp-') || n.includes('probe'));
  assert.deepEqual(leftovers, []);
});

test('a read-only output folder is reported as such (not as a missing file)', { skip: process.getuid?.() === 0 ? 'root writes anywhere' : false }, async () => {
  const ro = join(root, 'readonly');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  try {
    const r = await run(sampleCommand, sampleArgs('--out', join(ro, 'x.png')));
    assert.equal(r.code, 2);
    assert.match(r.err, /cannot write in the folder .*readonly \(permission denied\)/);
  } finally {
    chmodSync(ro, 0o755);
  }
});
