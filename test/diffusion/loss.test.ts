import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tidy, randn, randint } from '../../src/torch/index.js';
import { makeSchedule, posterior, denoisingLoss, softLoss } from '../../src/diffusion/index.js';
import { loadFixture, assertClose } from './fixtures.js';

const fx = loadFixture('diffusion.safetensors');
const K = 7;
const EXAMPLES: [string, string, number][] = [['example0', 'geometric', 4], ['example1', 'geometric', 4], ['example2', 'bernoulli_PSIM', 5]];

const rel = (got: number, want: number) => Math.abs(got - want) / Math.abs(want);

test('loss equals the official compute_loss for hard, soft and α = 0, 0.5, 1 (rtol 1e-5)', () => {
  noGrad(() => tidy(() => {
    for (const [name, spec, T] of EXAMPLES) {
      const s = makeSchedule(spec, T);
      const t = fx.get(`${name}.scale`).toNumbers()[0];
      const x0 = fx.get(`${name}.x0`).flatten(1);
      const xt = fx.get(`${name}.x_t`);
      const target = fx.get(`${name}.x_tm1`);
      const logits = fx.get(`${name}.logits`);
      const post = posterior(x0, xt, t, s, K);
      assertClose(post, fx.get(`${name}.posterior`).flatten(2).transpose(1, 2), 1e-6, `${name} posterior`);
      const want = (k: string) => fx.get(`${name}.${k}`).item();
      for (const [alpha, key] of [[0, 'loss_a0'], [0.5, 'loss_a05'], [1, 'loss_a1']] as const) {
        const l = denoisingLoss(logits, target, post, alpha);
        assert.ok(rel(l.loss.item(), want(key)) < 1e-5, `${name} ${key}: ${l.loss.item()} vs ${want(key)}`);
        assert.ok(rel(l.hard.item(), want('loss_hard')) < 1e-5, `${name} hard`);
        assert.ok(rel(l.soft!.item(), want('loss_soft')) < 1e-5, `${name} soft`);
      }
      assert.ok(rel(denoisingLoss(logits, target, undefined, 0).loss.item(), want('loss_a0')) < 1e-5);
    }
    // t = 1: the posterior is one-hot, so soft = hard
    assert.ok(rel(fx.get('example0.loss_soft').item(), fx.get('example0.loss_hard').item()) < 1e-6);
  }));
});

test('loss arguments are checked; the soft loss is differentiable and zero at the posterior', () => {
  const logits = randn([2, 5, 3], { requiresGrad: true });
  const target = randint(0, 3, [2, 5]);
  assert.throws(() => denoisingLoss(logits, target, undefined, 0.5), /posterior is needed/);
  assert.throws(() => denoisingLoss(logits, target, undefined, 2), /alphaMix/);
  const p = randn([2, 5, 3]).softmax(-1);
  const l = softLoss(logits, p);
  l.backward();
  assert.deepEqual(logits.grad!.shape, [2, 5, 3]);
  assert.ok(noGrad(() => softLoss(p.log(), p).abs().item()) < 1e-6);
});
