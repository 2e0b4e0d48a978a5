/** Codebook shrinking on held-out data, saving/loading shrunk models, and token files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, tidy, noGrad, manualSeed } from '../../src/torch/index.js';
import { loadMnist, subset, collate, type ImageDataset } from '../../src/data/index.js';
import { makeConfig } from '../../src/vqgan/config.js';
import { VQModel, saveVQModel, loadVQModel } from '../../src/vqgan/model.js';
import { shrinkOn, shrinkCodebook } from '../../src/vqgan/shrink.js';
import { tokenizeDataset } from '../../src/vqgan/tokens.js';
import { readTokenFile } from '../../src/chain/index.js';
import { readSafetensorsHeader } from '../../src/torch/index.js';

test('shrinking on held-out images: tokens live in [0, K_eff), decode exactly as before, and survive save/load and token files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqgan-shrink-'));
  try {
    manualSeed(0);
    const model = new VQModel(makeConfig({
      ddconfig: { resolution: 16, inChannels: 1, outCh: 1, ch: 16, chMult: [1, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 8 },
      nEmbed: 32, embedDim: 8, unknownIndex: 'extra',
    })).eval();
    const heldOut = subset(loadMnist({ split: 'test', resolution: 16 }), Array.from({ length: 48 }, (_, i) => i));
    const { model: shrunk, used, evaluation } = shrinkOn(model, heldOut, { batchSize: 16 });
    assert.equal(used.length, evaluation.usedCodes);
    assert.ok(used.length > 0 && used.length <= 32);
    assert.equal(shrunk.numTokens, used.length + 1); // 'extra' adds one id
    assert.equal(model.numTokens, 32, 'the original model is unchanged');

    const x = tensor(collate(heldOut, Array.from({ length: 16 }, (_, i) => i)).images, [16, 1, 16, 16]);
    noGrad(() => tidy(() => {
      const tok = shrunk.encodeToIndices(x);
      assert.ok(tok.max().item() < used.length && tok.min().item() >= 0, 'held-out tokens need no unknown id');
      assert.deepEqual(shrunk.quantize.unmapToAll(tok).toNumbers(), model.encode(x).codes.toNumbers());
      // forward decodes the straight-through z + (e − z), which can differ from e by an ulp.
      const d = shrunk.decodeIndices(tok).sub(model.forward(x).rec).abs().max().item();
      assert.ok(d < 1e-5, `decode from shrunk tokens differs by ${d}`);
    }));

    const path = join(dir, 'shrunk.safetensors');
    saveVQModel(path, shrunk);
    const loaded = loadVQModel(path);
    assert.equal(loaded.numTokens, shrunk.numTokens);
    assert.deepEqual(loaded.quantize.used!.toNumbers(), used);
    noGrad(() => tidy(() => assert.deepEqual(loaded.encodeToIndices(x).toNumbers(), shrunk.encodeToIndices(x).toNumbers())));
    // A model with a used list of another length takes the checkpoint's (Module.resizeBuffer).
    const other = shrinkCodebook(model, [0, 1]);
    other.loadStateDict(loaded.stateDict());
    assert.equal(other.numTokens, shrunk.numTokens);

    const tokPath = join(dir, 'tokens.safetensors');
    assert.deepEqual(tokenizeDataset(loaded, heldOut, tokPath, { batchSize: 20 }), { count: 48, numTokens: used.length + 1 });
    const file = readTokenFile(tokPath);
    assert.equal(readSafetensorsHeader(tokPath).tensors.get('tokens')!.dtype, 'int16', 'stored as int16 (K fits)');
    assert.deepEqual(file.tokens.shape, [48, 8, 8]);
    assert.equal(file.K, used.length + 1);
    assert.deepEqual(file.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.deepEqual(file.labels!.toNumbers(), Array.from({ length: 48 }, (_, i) => heldOut.get(i).label));
    assert.equal(file.captions, undefined);
    noGrad(() => tidy(() => assert.deepEqual(file.tokens.slice(0, 0, 16).toNumbers(), loaded.encodeToIndices(x).toNumbers())));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token files keep captions and unlabelled samples', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqgan-tokens-'));
  try {
    const ds: ImageDataset = {
      name: 'captioned', size: 3, channels: 1, resolution: 16,
      get: (i) => ({ image: new Float32Array(256).fill(i / 3 - 0.5), caption: `image ${i} 😀` }),
    };
    const model = new VQModel(makeConfig({
      ddconfig: { resolution: 16, inChannels: 1, outCh: 1, ch: 8, chMult: [1, 1], numResBlocks: 1, attnResolutions: [], zChannels: 4, doubleZ: false, dropout: 0, normGroups: 4 },
      nEmbed: 16, embedDim: 4,
    }));
    const path = join(dir, 't.safetensors');
    tokenizeDataset(model, ds, path);
    const file = readTokenFile(path);
    assert.deepEqual(file.captions, ['image 0 😀', 'image 1 😀', 'image 2 😀']);
    assert.equal(file.labels, undefined);
    assert.equal(file.dataset, 'captioned');
    assert.throws(() => readTokenFile(join(dir, 'missing.safetensors')), /cannot read token file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
