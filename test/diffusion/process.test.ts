import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arange, manualSeed, randint, rand, stack, tidy, noGrad, type Tensor } from '../../src/torch/index.js';
import { makeSchedule, forwardChain, forwardStep, qSample, posterior, priorKL, type Schedule } from '../../src/diffusion/index.js';
import { loadFixture, assertClose } from './fixtures.js';

const fx = loadFixture('diffusion.safetensors');
const K = 7;

test('posterior q(x_{t-1} | x_t, x_0) equals the official tables (atol 1e-6); rows sum to 1; one-hot at t = 1', () => {
  const specs: [string, string | number, number][] = [
    ['geometric.T2', 'geometric', 2], ['geometric.T3', 'geometric', 3], ['geometric.T4', 'geometric', 4], ['geometric.T5', 'geometric', 5],
    ['bernoulli_PSIM.T3', 'bernoulli_PSIM', 3], ['bernoulli_PSIM.T5', 'bernoulli_PSIM', 5], ['ffhq_bernoulli_PSIM.T2', 'ffhq_bernoulli_PSIM', 2],
  ];
  noGrad(() => tidy(() => {
    const x0 = arange(K).view(K, 1).expand(K, K); // [x0, xt]
    const xt = arange(K).view(1, K).expand(K, K);
    for (const [name, spec, T] of specs) {
      const s = makeSchedule(spec, T);
      const table = fx.get(`posterior.${name}.table`); // [T, x0, xt, x_{t-1}]
      for (let t = 1; t <= T; t++) {
        const p = posterior(x0, xt, t, s, K);
        assertClose(p, table.select(0, t - 1), 1e-6, `${name} t=${t}`);
        assertClose(p.sum(-1), p.sum(-1).mul(0).add(1), 1e-6, `${name} t=${t} row sums`);
        if (t === 1) assert.ok(p.sub(x0.oneHot(K).float()).abs().max().item() === 0, 'exactly one-hot at t = 1');
      }
    }
  }));
});

/** Fraction of positions where a and b agree. */
const agree = (a: Tensor, b: Tensor) => a.eq(b).float().mean().item();
/** 5 standard errors of a proportion p over n draws. */
const tol = (p: number, n: number) => 5 * Math.sqrt((p * (1 - p)) / n) + 1e-9;

test('forward chain: fraction unchanged after t steps ≈ ᾱ_t + (1-ᾱ_t)/K, per step ≈ α_t + β_t/K, same as the closed form', () => {
  manualSeed(1);
  noGrad(() => tidy(() => {
    const Kc = 8;
    const x0 = randint(0, Kc, [8, 64, 64]);
    const n = x0.numel;
    for (const s of [makeSchedule('geometric', 4), makeSchedule('bernoulli_PSIM', 5), makeSchedule(0.2, 3)] as Schedule[]) {
      const xs = forwardChain(x0, s, Kc);
      assert.equal(xs.length, s.T + 1);
      for (let t = 1; t <= s.T; t++) {
        const want = s.alphacum[t] + (1 - s.alphacum[t]) / Kc;
        const got = agree(xs[t], x0);
        assert.ok(Math.abs(got - want) < tol(want, n), `${s.spec} t=${t}: unchanged ${got}, expected ${want}`);
        const closed = agree(qSample(x0, t, s, Kc), x0);
        assert.ok(Math.abs(closed - want) < tol(want, n), `${s.spec} t=${t}: closed form ${closed}, expected ${want}`);
        const step = s.alpha[t] + s.beta[t] / Kc;
        assert.ok(Math.abs(agree(xs[t], xs[t - 1]) - step) < tol(step, n), `${s.spec} step ${t}`);
      }
      // x_T with β_T = 1 is uniform: every code about 1/K of the time
      if (s.beta[s.T] === 1) {
        const counts = xs[s.T].flatten().oneHot(Kc).float().mean(0).toNumbers();
        for (const c of counts) assert.ok(Math.abs(c - 1 / Kc) < tol(1 / Kc, n));
      }
    }
    assert.equal(forwardChain(x0, makeSchedule('geometric', 4), Kc, { steps: 2 }).length, 3);
  }));
});

test('masked forward process: kept tokens never change, the others diffuse', () => {
  manualSeed(2);
  noGrad(() => tidy(() => {
    const x0 = randint(0, 16, [4, 32, 32]);
    const keep = rand([4, 32, 32]).lt(0.5);
    const s = makeSchedule('geometric', 3);
    for (const x of [...forwardChain(x0, s, 16, { keep }), qSample(x0, 3, s, 16, { keep }), forwardStep(x0, 1, 16, { keep })]) {
      assert.equal(x.eq(x0).logicalOr(keep.logicalNot()).all().item(), 1, 'kept tokens equal x0');
    }
    const free = keep.logicalNot();
    const xT = forwardChain(x0, s, 16, { keep })[3];
    const changed = xT.ne(x0).logicalAnd(free).float().sum().item() / free.float().sum().item();
    assert.ok(Math.abs(changed - 15 / 16) < 0.03, `free tokens redrawn uniformly (changed ${changed})`);
    // a keep mask broadcast over the batch
    const rowKeep = stack([arange(32).lt(16)]).view(1, 1, 32).expand(4, 32, 32);
    const x1 = forwardStep(x0, 1, 16, { keep: rowKeep });
    assert.equal(x1.slice(2, 0, 16).eq(x0.slice(2, 0, 16)).all().item(), 1);
  }));
});

test('prior term KL(q(x_T | x_0) ‖ uniform): 0 when β_T = 1, closed form otherwise', () => {
  assert.equal(priorKL(makeSchedule('geometric', 3), 16), 0);
  const s = makeSchedule(0.5, 1); // ᾱ_1 = 0.5, K = 2: q = (0.75, 0.25)
  const want = 0.75 * Math.log(1.5) + 0.25 * Math.log(0.5);
  assert.ok(Math.abs(priorKL(s, 2) - want) < 1e-9);
  assert.throws(() => posterior(randint(0, 2, [2]), randint(0, 2, [2]), 0, s, 2), /outside 1\.\.1/);
});
