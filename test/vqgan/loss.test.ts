/** PatchGAN discriminator, LPIPS module and the VQGAN objective. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, randn, tidy, noGrad, manualSeed, saveSafetensors } from '../../src/torch/index.js';
import { NLayerDiscriminator, hingeDLoss } from '../../src/vqgan/discriminator.js';
import { LPIPS, loadLPIPS } from '../../src/vqgan/perceptual.js';
import { VQGANLoss, DEFAULT_LOSS, adaptiveWeight } from '../../src/vqgan/loss.js';

test('NLayerDiscriminator has taming keys and 2×2 patch logits for 32×32 inputs', () => {
  const d = new NLayerDiscriminator({ inputNc: 3, ndf: 64, nLayers: 3 });
  const bn = (i: number) => ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `main.${i}.${k}`);
  assert.deepEqual([...d.stateDict().keys()].sort(), [
    'main.0.weight', 'main.0.bias', 'main.2.weight', ...bn(3), 'main.5.weight', ...bn(6), 'main.8.weight', ...bn(9), 'main.11.weight', 'main.11.bias',
  ].sort());
  assert.deepEqual(d.stateDict().get('main.8.weight')!.shape, [512, 256, 4, 4]);
  noGrad(() => tidy(() => assert.deepEqual(d.forward(randn([2, 3, 32, 32])).shape, [2, 1, 2, 2])));
  tidy(() => {
    // hinge: ½(mean relu(1 − r) + mean relu(1 + f))
    const v = hingeDLoss(tensor([2, 0.5]), tensor([-2, 0])).item();
    assert.ok(Math.abs(v - 0.5 * (0.25 + 0.5)) < 1e-7);
  });
});

test('adaptive weight is ‖∇nll‖ / (‖∇g‖ + 1e-4) at the given layer, clamped to [0, 1e4]', () => {
  tidy(() => {
    const w = tensor([1, 2, 3], { requiresGrad: true });
    const nll = w.mul(tensor([3, 0, 4])).sum(); // ∇ = (3, 0, 4), norm 5
    const g = w.mul(tensor([0, 2, 0])).sum(); // ∇ = (0, 2, 0), norm 2
    assert.ok(Math.abs(adaptiveWeight(nll, g, w) - 5 / 2.0001) < 1e-6);
    const flat = w.mul(0).sum();
    assert.equal(adaptiveWeight(nll, flat, w), 1e4);
  });
});

test('generator loss adds λ·g_loss only once the discriminator has started', () => {
  manualSeed(1);
  const loss = new VQGANLoss({ ...DEFAULT_LOSS, discStart: 5, discNumLayers: 2, discNdf: 8 }, 1);
  tidy(() => {
    const last = randn([4, 1, 3, 3], { requiresGrad: true });
    const x = randn([2, 1, 16, 16]);
    const rec = x.mul(0.5).add(last.sum().mul(0.01)); // depends on `last`
    const q = tensor(0.25);
    const before = loss.generatorLoss(x, rec, q, 4, last);
    assert.equal(before.log.dWeight, 0);
    assert.ok(Math.abs(before.loss.item() - (before.log.rec + 0.25)) < 1e-6);
    const after = loss.generatorLoss(x, rec, q, 5, last);
    assert.ok(after.log.dWeight > 0);
    assert.ok(Math.abs(after.loss.item() - (after.log.nll + 0.25 + after.log.dWeight * after.log.g)) < 1e-5);
    const d = loss.discriminatorLoss(x, rec);
    assert.ok(Number.isFinite(d.log.d) && d.log.d >= 0);
  });
  assert.throws(() => new VQGANLoss({ ...DEFAULT_LOSS, perceptualWeight: 1 }, 3), /LPIPS weights/);
});

test('LPIPS loads taming or torchvision key layouts and is 0 for identical images', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lpips-'));
  try {
    manualSeed(2);
    const ref = new LPIPS();
    const keys = [...ref.stateDict().keys()];
    for (const k of ['scaling_layer.shift', 'net.slice1.0.weight', 'net.slice2.5.weight', 'net.slice5.28.bias', 'lin0.model.1.weight', 'lin4.model.1.weight']) {
      assert.ok(keys.includes(k), k);
    }
    // torchvision VGG16 names for the trunk, LPIPS names for the linear heads, as a user would have them.
    const tv = new Map([...ref.stateDict()].filter(([k]) => !k.startsWith('scaling_layer')).map(([k, t]) => [k.replace(/^net\.slice\d\./, 'features.'), t]));
    saveSafetensors(join(dir, 'vgg.safetensors'), tv);
    const lp = loadLPIPS(join(dir, 'vgg.safetensors'));
    noGrad(() => tidy(() => {
      const x = randn([2, 3, 32, 32]).clamp(-1, 1);
      const y = randn([2, 3, 32, 32]).clamp(-1, 1);
      assert.deepEqual(lp.forward(x, y).shape, [2, 1, 1, 1]);
      assert.equal(lp.forward(x, x).abs().max().item(), 0);
      assert.ok(lp.forward(x, y).sub(ref.forward(x, y)).abs().max().item() < 1e-6);
    }));
    saveSafetensors(join(dir, 'bad.safetensors'), { 'lin0.model.1.weight': ref.stateDict().get('lin0.model.1.weight')! });
    assert.throws(() => loadLPIPS(join(dir, 'bad.safetensors')), /not an LPIPS\/VGG16 weights file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
