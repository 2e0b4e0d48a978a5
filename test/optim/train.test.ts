import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/torch/index.js';
import { Module, Linear, LayerNorm, Conv2d } from '../../src/nn/index.js';
import { AdamW, clipGradNorm, warmupCosine, weightDecayGroups, EMA } from '../../src/optim/index.js';

class MLP extends Module {
  readonly fc1: Linear;
  readonly ln: LayerNorm;
  readonly fc2: Linear;
  constructor(inp: number, hidden: number, out: number) {
    super();
    this.fc1 = this.module('fc1', new Linear(inp, hidden));
    this.ln = this.module('ln', new LayerNorm(hidden));
    this.fc2 = this.module('fc2', new Linear(hidden, out));
  }
  forward(x: T.Tensor): T.Tensor { return this.fc2.forward(this.ln.forward(this.fc1.forward(x)).gelu()); }
}

test('an MLP learns two interleaved spirals with AdamW (loss falls at least 10×)', () => {
  T.manualSeed(0);
  const n = 256;
  const t = T.linspace(0, 3 * Math.PI, n / 2);
  const arm = (sign: number) => T.stack([t.mul(t.cos()).mul(sign), t.mul(t.sin()).mul(sign)], 1).div(10);
  const x = T.cat([arm(1), arm(-1)]);
  const y = T.cat([T.zeros([n / 2], { dtype: 'int64' }), T.ones([n / 2], { dtype: 'int64' })]);
  const model = new MLP(2, 64, 2);
  const groups = weightDecayGroups(model, 0.01, (name, owner) => owner instanceof Linear && name.endsWith('weight'));
  assert.equal(groups[0]!.params.length, 2);
  assert.equal(groups[1]!.params.length, 4);
  const opt = new AdamW(groups, { lr: 1e-2 });
  const lossAt = () => T.noGrad(() => T.crossEntropy(model.forward(x), y).item());
  const first = lossAt();
  for (let step = 0; step < 400; step++) {
    T.tidy(() => {
      opt.zeroGrad();
      T.crossEntropy(model.forward(x), y).backward();
      opt.stepUpdate();
    });
  }
  const last = lossAt();
  assert.ok(last < first / 10, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
  const acc = T.noGrad(() => model.forward(x).argmax(1).eq(y).float().mean().item());
  assert.ok(acc > 0.95, `accuracy ${acc}`);
});

test('AdamW matches the update rule step by step (hand-computed)', () => {
  const p = T.tensor([1.0, -2.0], { dtype: 'float64', requiresGrad: true });
  const opt = new AdamW([p], { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
  let m = [0, 0];
  let v = [0, 0];
  let w = [1.0, -2.0];
  for (let s = 1; s <= 3; s++) {
    opt.zeroGrad();
    p.pow(2).sum().backward(); // g = 2p
    opt.stepUpdate();
    const g = w.map((x) => 2 * x);
    w = w.map((x) => x * (1 - 0.1 * 0.1));
    m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]!);
    v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i]! ** 2);
    w = w.map((x, i) => x - (0.1 / (1 - 0.9 ** s)) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** s) + 1e-8));
  }
  p.toNumbers().forEach((x, i) => assert.ok(Math.abs(x - w[i]!) < 1e-12, `${x} vs ${w[i]}`));
});

test('optimizer state round-trips so a resumed run continues identically', () => {
  T.manualSeed(1);
  const make = () => { T.manualSeed(2); return new MLP(3, 8, 2); };
  const x = T.randn([16, 3]);
  const y = T.randint(0, 2, [16]);
  const step = (m: MLP, o: AdamW) => T.tidy(() => { o.zeroGrad(); T.crossEntropy(m.forward(x), y).backward(); o.stepUpdate(); });
  const a = make();
  const oa = new AdamW(a.parameters(), { lr: 1e-2 });
  for (let i = 0; i < 3; i++) step(a, oa);
  const b = make();
  b.loadStateDict(a.stateDict());
  const ob = new AdamW(b.parameters(), { lr: 1e-2 });
  ob.loadStateDict(oa.stateDict());
  step(a, oa);
  step(b, ob);
  for (const [k, v] of a.stateDict()) assert.deepEqual(b.stateDict().get(k)!.toNumbers(), v.toNumbers(), k);
  assert.equal(ob.step, 4);
});

test('a small conv net trains on a toy task (loss falls at least 5×)', () => {
  T.manualSeed(3);
  const conv = new Conv2d(1, 4, 3, { padding: 1 });
  const head = new Linear(4, 2);
  // class 0: bright top half; class 1: bright bottom half
  const x = T.randn([32, 1, 8, 8]).mul(0.3);
  const y = T.randint(0, 2, [32]);
  const top = y.eq(0).float().view(32, 1, 1, 1);
  const rows = T.arange(8).lt(4).float().view(1, 1, 8, 1);
  const data = x.add(top.mul(rows).add(top.rsub(1).mul(rows.rsub(1))));
  const opt = new AdamW([...conv.parameters(), ...head.parameters()], { lr: 3e-2, weightDecay: 0 });
  const loss = () => T.crossEntropy(head.forward(conv.forward(data).relu().slice(2, 0, 4).mean([2, 3]).sub(conv.forward(data).relu().slice(2, 4).mean([2, 3]))), y);
  const first = T.noGrad(loss).item();
  for (let i = 0; i < 100; i++) T.tidy(() => { opt.zeroGrad(); loss().backward(); opt.stepUpdate(); });
  const last = T.noGrad(loss).item();
  assert.ok(last < first / 5, `loss ${first.toFixed(3)} → ${last.toFixed(3)}`);
});

test('clipGradNorm scales the global norm down to the limit', () => {
  const a = T.tensor([3, 0], { requiresGrad: true });
  const b = T.tensor([0, 4], { requiresGrad: true });
  a.mul(a).div(2).sum().add(b.mul(b).div(2).sum()).backward();
  const norm = clipGradNorm([a, b], 1);
  assert.ok(Math.abs(norm - 5) < 1e-6);
  const after = Math.hypot(...a.grad!.toNumbers(), ...b.grad!.toNumbers());
  assert.ok(Math.abs(after - 1) < 1e-4, `norm after clipping ${after}`);
});

test('warm-up + cosine schedule', () => {
  const lr = warmupCosine({ base: 1, warmup: 10, total: 110, min: 0.1 });
  assert.ok(Math.abs(lr(0) - 0.1) < 1e-12);
  assert.equal(lr(9), 1);
  assert.equal(lr(10), 1);
  assert.ok(Math.abs(lr(60) - 0.55) < 1e-12);
  assert.ok(Math.abs(lr(110) - 0.1) < 1e-12);
  assert.ok(Math.abs(lr(500) - 0.1) < 1e-12);
});

test('EMA follows the official LitEma decay warm-up and swaps weights in and out', () => {
  const m = new Linear(1, 1, false);
  T.noGrad(() => m.weight.fill_(0));
  const ema = new EMA(m, 0.9);
  T.noGrad(() => m.weight.fill_(1));
  ema.update(); // decay = min(0.9, 2/11)
  const expect1 = 1 - 2 / 11;
  assert.ok(Math.abs(ema.shadow.get('weight')!.item() - expect1) < 1e-6);
  ema.with(() => assert.ok(Math.abs(m.weight.item() - expect1) < 1e-6));
  assert.equal(m.weight.item(), 1);
});
