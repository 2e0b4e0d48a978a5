/** VectorQuantizer2: straight-through gradients, β placement, index layouts and remap round trips. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/torch/index.js';
import { tensor, randn, tidy, manualSeed } from '../../src/torch/index.js';
import { VectorQuantizer } from '../../src/vqgan/quantizer.js';

const ids = (xs: number[]) => tensor(BigInt64Array.from(xs, BigInt));

test('remap: used codes round trip; unknown codes follow unknownIndex; the extra id decodes to used[0]', () => {
  const used = [2, 3, 5, 7];
  const codes = ids([2, 3, 5, 7, 0, 1, 4, 6]).view(1, 8);
  const quantizer = (u: 'random' | 'extra' | number) => {
    const q = new VectorQuantizer(8, 4, 0.25, u, true);
    q.setUsed(ids(used));
    return q;
  };
  tidy(() => {
    const fixed = quantizer(1);
    assert.equal(fixed.reEmbed, 4);
    assert.deepEqual(fixed.remapToUsed(codes).toNumbers(), [0, 1, 2, 3, 1, 1, 1, 1]);
    assert.deepEqual(fixed.unmapToAll(fixed.remapToUsed(codes)).toNumbers(), [2, 3, 5, 7, 3, 3, 3, 3]);

    const extra = quantizer('extra');
    assert.equal(extra.reEmbed, 5);
    const e = extra.remapToUsed(codes);
    assert.deepEqual(e.toNumbers(), [0, 1, 2, 3, 4, 4, 4, 4]);
    assert.deepEqual(extra.unmapToAll(e).toNumbers(), [2, 3, 5, 7, 2, 2, 2, 2]);
    assert.deepEqual(e.toNumbers(), [0, 1, 2, 3, 4, 4, 4, 4], 'unmapToAll leaves its input alone');

    manualSeed(3);
    const random = quantizer('random').remapToUsed(codes).toNumbers();
    assert.deepEqual(random.slice(0, 4), [0, 1, 2, 3]);
    assert.ok(random.slice(4).every((i) => i >= 0 && i < 4));

    // Decoding through the remap gives the codebook rows of the original codes.
    const q = quantizer('extra');
    const rows = q.getCodebookEntry(ids([0, 3, 4, 1]).view(1, 2, 2)); // [1, 4, 2, 2]
    const want = q.embedding.weight.index([ids([2, 7, 2, 3])]).view(1, 2, 2, 4).permute(0, 3, 1, 2);
    assert.equal(rows.sub(want).abs().max().item(), 0);
  });
});

test('straight-through gradients and the legacy / corrected β placement', () => {
  const grads = (legacy: boolean) => tidy(() => {
    manualSeed(5);
    const q = new VectorQuantizer(8, 4, 0.25, 'random', true, legacy);
    const z = randn([2, 4, 3, 3], { requiresGrad: true });
    const { zq, loss } = q.forward(z);
    loss.backward();
    const gz = z.grad!.clone().keep();
    const ge = q.embedding.weight.grad!.clone().keep();
    z.grad = undefined;
    zq.sum().backward();
    const st = z.grad!.sub(1).abs().max().item();
    return { gz, ge, st, loss: loss.item() };
  });
  const legacy = grads(true), corrected = grads(false);
  assert.equal(legacy.st, 0, 'd z_q / d z is the identity');
  assert.ok(Math.abs(legacy.loss - corrected.loss) < 1e-7, 'same value, different gradients');
  tidy(() => {
    // legacy: commitment weight 1, codebook weight β; corrected: the other way round.
    assert.ok(legacy.gz.sub(corrected.gz.mul(4)).abs().max().item() < 1e-6);
    assert.ok(legacy.ge.mul(4).sub(corrected.ge).abs().max().item() < 1e-6);
  });
});

test('index layouts: [B, h, w] with saneIndexShape, else taming\'s [N] (no remap) or [N, 1] (remap)', () => {
  tidy(() => {
    const z = randn([2, 4, 3, 3]);
    assert.deepEqual(new VectorQuantizer(8, 4, 0.25, 0, true).forward(z).indices.shape, [2, 3, 3]);
    const flat = new VectorQuantizer(8, 4, 0.25, 0, false);
    assert.deepEqual(flat.forward(z).indices.shape, [18]);
    flat.setUsed(ids([0, 1, 2, 3, 4, 5, 6, 7]));
    assert.deepEqual(flat.forward(z).indices.shape, [18, 1]);
  });
});

test('under bf16 autocast the quantizer still picks codes in float32; autocast can be switched off inside autocast', () => {
  T.manualSeed(3);
  const q = new VectorQuantizer(64, 8, 0.25, undefined, true, true);
  const z = T.randn([2, 8, 4, 4]);
  const plain = q.forward(z).indices.toNumbers();
  const mixed = T.autocast(() => q.forward(z));
  assert.deepEqual(mixed.indices.toNumbers(), plain);
  assert.equal(mixed.zq.dtype, 'float32');
  const a = T.randn([4, 4]);
  assert.equal(T.autocast(() => a.mm(a)).dtype, 'bfloat16');
  assert.equal(T.autocast(() => T.autocast(() => a.mm(a), { enabled: false })).dtype, 'float32');
});
