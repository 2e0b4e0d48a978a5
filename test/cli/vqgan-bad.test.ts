/**
 * Bad inputs to `imagebart vqgan` and `imagebart convert`, table-driven: each case asserts the exit
 * code and message, and that no model, token file or checkpoint changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '../../src/torch/index.js';
import { encodePng } from '../../src/data/index.js';
import { VQModel, makeConfig, saveVQModel } from '../../src/vqgan/index.js';
import { readTokenFile } from '../../src/chain/index.js';
import { vqganCommand } from '../../src/cli/vqgan.js';
import { convertCommand } from '../../src/cli/convert.js';
import { fixturePath } from '../io/fixtures.js';
import { checkBadInputs, run, type BadCase } from './harness.js';

const root = mkdtempSync(join(tmpdir(), 'imagebart-bad-vqgan-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const models = join(root, 'models'), images = join(root, 'images'), outs = join(root, 'outs');
for (const d of [models, images, outs]) mkdirSync(d);
for (let i = 0; i < 12; i++) writeFileSync(join(images, `img${i}.png`), encodePng(new Uint8Array(16 * 16 * 4).fill(40 + 10 * i), 16, 16));
manualSeed(0);
const model = join(models, 'vq.safetensors');
saveVQModel(model, new VQModel(makeConfig({
  ddconfig: { resolution: 16, inChannels: 3, outCh: 3, ch: 8, chMult: [1, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 4 },
  nEmbed: 16, embedDim: 8,
})));
const ckpt = join(models, 'in.ckpt');
copyFileSync(fixturePath('vqgan_tiny_legacy.ckpt'), ckpt);
const config = (name: string, c: unknown) => {
  const p = join(root, `${name}.json`);
  writeFileSync(p, JSON.stringify(c));
  return p;
};
const existing = join(outs, 'taken.safetensors');
writeFileSync(existing, 'an earlier result');
const train = (...a: string[]) => ['train', '--data', images, '--out', join(outs, 'run'), '--steps', '1', ...a];

const VQGAN_CASES: BadCase[] = [
  { name: 'train --batch-size 0', argv: train('--batch-size', '0'), message: /--batch-size must be an integer in 1\.\.1024, got '0'/ },
  { name: 'train --lr -1', argv: train('--lr', '-1'), message: /--lr must be a number > 0, got '-1'/ },
  { name: 'train --lr 0', argv: train('--lr', '0'), message: /--lr must be a number > 0, got '0'/ },
  { name: 'train --steps 1e3', argv: train('--steps', '1e3'), message: /--steps must be an integer ≥ 0, got '1e3'/ },
  { name: 'config key misspelled', argv: train('--config', config('modle', { modle: { nEmbed: 8 } })), message: /VQGAN training config .*unknown field "modle"/ },
  { name: 'config nested key misspelled', argv: train('--config', config('nembed', { model: { nembed: 8 } })), message: /unknown field "model\.nembed"/ },
  { name: 'config wrong type', argv: train('--config', config('lr-string', { lr: 'fast' })), message: /field "lr": expected number, received string/ },
  { name: 'config batchSize 0', argv: train('--config', config('bs0', { batchSize: 0 })), message: /field "batchSize": Too small: expected number to be >0/ },
  { name: 'config not JSON', argv: train('--config', config('broken', 'x').replace(/$/, '') + '.missing'), message: /VQGAN config .*cannot read it \(no such file or folder\)/ },
  { name: 'shrink --out equal to --model', argv: ['shrink', '--model', model, '--data', images, '--split', 'train', '--out', model], message: /that is the model \(--model\) of this run/ },
  { name: 'encode --out existing', argv: ['encode', '--model', model, '--data', images, '--out', existing], message: /taken\.safetensors exists: pass --force/ },
  { name: 'encode --out wrong extension', argv: ['encode', '--model', model, '--data', images, '--out', join(outs, 'tokens.bin')], message: /must end in \.safetensors \(not \.bin\)/ },
  { name: 'decode --out x.jpg', argv: ['decode', '--model', model, '--tokens', existing, '--out', join(outs, 'x.jpg')], message: /this writes PNG, so the name must end in \.png/ },
  { name: 'encode --split typo', argv: ['encode', '--model', model, '--data', images, '--split', 'tset', '--out', join(outs, 't.safetensors')], message: /--split must be train, test or all, got 'tset'/ },
];

const CONVERT_CASES: BadCase[] = [
  { name: 'convert A.ckpt A.ckpt', argv: [ckpt, ckpt], message: /OUT .*in\.ckpt: this writes SAFETENSORS, so the name must end in \.safetensors/ },
  { name: 'convert onto the input (same name)', argv: [model, model], message: /OUT .*vq\.safetensors: that is the input checkpoint \(IN\) of this run/ },
  { name: 'convert onto an existing file', argv: [ckpt, existing], message: /taken\.safetensors exists: pass --force to replace it/ },
];

test('imagebart vqgan: bad inputs are refused before any work, and no model or token file changes', async () => {
  await checkBadInputs(vqganCommand, VQGAN_CASES, [models, outs]);
});

test('imagebart convert: an output that is the input or exists is refused before reading', async () => {
  await checkBadInputs(convertCommand, CONVERT_CASES, [models, outs]);
});

test('vqgan encode --max-images N tokenizes the first N images only', async () => {
  const out = join(outs, 'first5.safetensors');
  const r = await run(vqganCommand, ['encode', '--model', model, '--data', images, '--split', 'all', '--max-images', '5', '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.equal(readTokenFile(out).tokens.size(0), 5);
});
