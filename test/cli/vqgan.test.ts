/** `imagebart vqgan …` end to end on a folder of generated PNGs: train → eval → shrink → encode → decode. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng } from '../../src/data/index.js';
import { vqganCommand } from '../../src/cli/vqgan.js';
import { TOKENS_FORMAT } from '../../src/vqgan/tokens.js';
import { readTokenFile } from '../../src/chain/index.js';
import { saveSafetensors, zeros } from '../../src/torch/index.js';
import { loadVQModel } from '../../src/vqgan/model.js';

/** 40 16×16 images: a bright square at a position that depends on the index. */
function makeFolder(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 40; i++) {
    const rgba = new Uint8Array(16 * 16 * 4).fill(255);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
      if (Math.abs(x - (i % 12) - 2) < 3 && Math.abs(y - ((i * 5) % 12) - 2) < 3) rgba.set([200, 30, 30, 255], (y * 16 + x) * 4);
    }
    writeFileSync(join(dir, `img${String(i).padStart(2, '0')}.png`), encodePng(rgba, 16, 16));
  }
}

test('vqgan CLI: help, usage errors, and the train → eval → shrink → encode → decode pipeline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqgan-cli-'));
  try {
    assert.equal(await vqganCommand(['--help']), 0);
    assert.equal(await vqganCommand(['frobnicate']), 2);
    assert.equal(await vqganCommand(['eval']), 2); // --model missing
    assert.equal(await vqganCommand(['train', '--steps', 'many']), 2);

    const images = join(dir, 'images');
    makeFolder(images);
    const config = join(dir, 'tiny.json');
    writeFileSync(config, JSON.stringify({
      model: { ddconfig: { resolution: 16, ch: 16, chMult: [1, 2], attnResolutions: [8], zChannels: 8, normGroups: 8 }, nEmbed: 16, embedDim: 8 },
      loss: { discNumLayers: 2, discNdf: 8, discStart: 2 },
      batchSize: 8, logEvery: 2, sampleEvery: 4, valEvery: 4, checkpointEvery: 2, valImages: 4,
    }));
    const run = join(dir, 'run');
    assert.equal(await vqganCommand(['train', '--data', images, '--config', config, '--steps', '4', '--out', run]), 0);
    const model = join(run, 'model.safetensors');
    assert.ok(existsSync(model) && existsSync(join(run, 'samples', 'step_000004.png')));
    assert.equal(loadVQModel(model).config.ddconfig.inChannels, 3);
    // Resuming with more steps continues from the checkpoint and its config.
    assert.equal(await vqganCommand(['train', '--data', images, '--steps', '6', '--out', run]), 0);

    assert.equal(await vqganCommand(['eval', '--model', model, '--data', images, '--json']), 0);
    const shrunk = join(dir, 'shrunk.safetensors');
    assert.equal(await vqganCommand(['shrink', '--model', model, '--data', images, '--split', 'all', '--unknown-index', 'extra', '--out', shrunk]), 0);
    const tokens = join(dir, 'tokens.safetensors');
    assert.equal(await vqganCommand(['encode', '--model', shrunk, '--data', images, '--split', 'all', '--out', tokens]), 0);
    const file = readTokenFile(tokens);
    assert.deepEqual(file.tokens.shape, [40, 8, 8]);
    assert.equal(file.K, loadVQModel(shrunk).numTokens);
    const png = join(dir, 'decoded.png');
    assert.equal(await vqganCommand(['decode', '--model', shrunk, '--tokens', tokens, '--count', '8', '--out', png]), 0);
    assert.ok(existsSync(png));
    const foreign = join(dir, 'foreign.safetensors');
    saveSafetensors(foreign, { tokens: zeros([1, 8, 8], { dtype: 'int16' }) }, { format: TOKENS_FORMAT, num_tokens: '99' });
    assert.equal(await vqganCommand(['decode', '--model', model, '--tokens', foreign, '--out', png]), 2, 'token ids of another model');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
