/** Fréchet distance, the feature classifier and the sample metrics. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, randn, tensor, tidy } from '../../src/torch/index.js';
import { loadMnist, subset } from '../../src/data/index.js';
import {
  gaussianStats, frechetDistance, trainClassifier, saveClassifier, loadClassifier, FeatureSet,
  inceptionScore, confidentFraction, accuracy, classAccuracy, regionError, type GaussianStats,
} from '../../src/eval/index.js';

const stats = (mu: number[], sigma: number[][]): GaussianStats =>
  ({ mu: Float64Array.from(mu), sigma: Float64Array.from(sigma.flat()), dim: mu.length, n: 1000 });

test('the Fréchet distance of a set with itself is 0', () => {
  manualSeed(0);
  const s = tidy(() => gaussianStats(randn([500, 16]).mul(tensor([2])).add(1)));
  assert.ok(Math.abs(frechetDistance(s, s)) < 1e-8, `${frechetDistance(s, s)}`);
});

test('the Fréchet distance of two Gaussians equals the closed form', () => {
  // diagonal: ‖Δμ‖² + Σ (√a_i − √b_i)²
  const a = stats([0, 0, 0], [[4, 0, 0], [0, 1, 0], [0, 0, 9]]);
  const b = stats([1, -2, 0.5], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
  const want = 1 + 4 + 0.25 + (2 - 1) ** 2 + 0 + (3 - 1) ** 2;
  assert.ok(Math.abs(frechetDistance(a, b) - want) < 1e-9, `${frechetDistance(a, b)} vs ${want}`);
  assert.ok(Math.abs(frechetDistance(b, a) - want) < 1e-9, 'symmetric');
  // Σ_b = c·Σ_a with a full (non-diagonal) Σ_a: ‖Δμ‖² + (1 − √c)² tr Σ_a
  const S = [[2, 0.8, 0.3], [0.8, 1.5, -0.4], [0.3, -0.4, 1]];
  const c = 2.25;
  const d = frechetDistance(stats([0, 0, 0], S), stats([0, 1, 0], S.map((r) => r.map((x) => c * x))));
  const want2 = 1 + (1 - Math.sqrt(c)) ** 2 * (2 + 1.5 + 1);
  assert.ok(Math.abs(d - want2) < 1e-9, `${d} vs ${want2}`);
});

test('the Fréchet distance of samples approaches that of their Gaussians', () => {
  manualSeed(1);
  const [x, y] = tidy(() => [gaussianStats(randn([4000, 8])), gaussianStats(randn([4000, 8]).add(0.5))]);
  const want = 8 * 0.25; // Δμ only; the covariances agree
  assert.ok(Math.abs(frechetDistance(x, y) - want) < 0.15, `${frechetDistance(x, y)} vs ${want}`);
});

test('Inception-like score, confidence, accuracy and region error on known inputs', () => {
  const K = 4;
  const oneHot = new Float32Array(8 * K);
  for (let i = 0; i < 8; i++) oneHot[i * K + (i % K)] = 1;
  assert.ok(Math.abs(inceptionScore(oneHot, K) - K) < 1e-6, 'confident and balanced: K');
  assert.ok(Math.abs(inceptionScore(new Float32Array(8 * K).fill(1 / K), K) - 1) < 1e-6, 'uniform: 1');
  assert.equal(confidentFraction(oneHot, K), 1);
  assert.equal(confidentFraction(new Float32Array(8 * K).fill(1 / K), K), 0);
  assert.equal(accuracy(oneHot, K, [0, 1, 2, 3, 0, 1, 2, 0]), 7 / 8);
  assert.deepEqual(classAccuracy(oneHot, K, [0, 1, 2, 3, 0, 1, 2, 0]), { 0: 2 / 3, 1: 1, 2: 1, 3: 1 }, 'row 7 (class 3) was meant as a 0');
  const r = regionError(Float32Array.from([0, 1, -1, 0.5]), Float32Array.from([0, 0, 1, 0.5]), [0, 1, 1, 0]);
  assert.equal(r.pixels, 2);
  assert.ok(Math.abs(r.l1 - 1.5) < 1e-9);
  assert.ok(Math.abs(r.psnr - 10 * Math.log10(4 / 2.5)) < 1e-9);
});

test('the classifier trains on a small MNIST split, beats chance, and round-trips with its reference statistics', () => {
  const train = subset(loadMnist({ split: 'train' }), Array.from({ length: 1000 }, (_, i) => i), 'mnist:train[1000]');
  const test = subset(loadMnist({ split: 'test' }), Array.from({ length: 400 }, (_, i) => i), 'mnist:test[400]');
  const trained = trainClassifier(train, test, { steps: 100, batchSize: 32, seed: 0 });
  assert.ok(trained.info.testAccuracy > 0.5, `test accuracy ${trained.info.testAccuracy} (chance 0.1)`);
  assert.equal(trained.reference.n, 1000);
  const dir = mkdtempSync(join(tmpdir(), 'imagebart-eval-'));
  try {
    const path = join(dir, 'classifier.safetensors');
    saveClassifier(path, trained);
    const loaded = loadClassifier(path);
    assert.deepEqual(loaded.info, trained.info);
    assert.deepEqual(Array.from(loaded.reference.mu), Array.from(trained.reference.mu));
    // held-out real digits are close to the reference; the same digits scrambled are far from it
    const real = new FeatureSet(loaded.model);
    const noise = new FeatureSet(loaded.model);
    for (let s = 0; s < 400; s += 100) {
      const imgs = tensor(Float32Array.from({ length: 100 * 32 * 32 }, (_, i) => test.get(s + Math.floor(i / 1024)).image[i % 1024]), [100, 1, 32, 32]);
      real.add(imgs, Array.from({ length: 100 }, (_, i) => test.get(s + i).label!));
      noise.add(randn([100, 1, 32, 32]).clamp(-1, 1));
      imgs.dispose();
    }
    const mReal = real.metrics(loaded.reference), mNoise = noise.metrics(loaded.reference);
    assert.equal(mReal.n, 400);
    assert.ok(mReal.accuracy! > 0.5);
    assert.ok(mNoise.frechet > 3 * mReal.frechet, `noise ${mNoise.frechet} vs real ${mReal.frechet}`);
    real.dispose();
    noise.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
