import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/torch/index.js';
import { Module, ModuleList, Linear, Conv2d, GroupNorm, LayerNorm, BatchNorm2d, Embedding, Dropout, StateDictError } from '../../src/nn/index.js';

class Block extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  constructor(ch: number) {
    super();
    this.norm1 = this.module('norm1', new GroupNorm(2, ch, 1e-6));
    this.conv1 = this.module('conv1', new Conv2d(ch, ch, 3, { padding: 1 }));
  }
  forward(x: T.Tensor): T.Tensor { return x.add(this.conv1.forward(this.norm1.forward(x).silu())); }
}

class Net extends Module {
  readonly down: ModuleList<Block>;
  readonly bn: BatchNorm2d;
  readonly emb: Embedding;
  readonly head: Linear;
  constructor() {
    super();
    this.down = this.module('down', new ModuleList([new Block(4), new Block(4)]));
    this.bn = this.module('bn', new BatchNorm2d(4));
    this.emb = this.module('emb', new Embedding(10, 4));
    this.head = this.module('head', new Linear(4, 3, false));
    this.module('drop', new Dropout(0.5));
  }
}

test('state-dict keys follow PyTorch naming, buffers included', () => {
  const net = new Net();
  const keys = [...net.stateDict().keys()];
  assert.ok(keys.includes('down.0.norm1.weight'));
  assert.ok(keys.includes('down.1.conv1.bias'));
  assert.ok(keys.includes('bn.running_mean') && keys.includes('bn.num_batches_tracked'));
  assert.ok(keys.includes('emb.weight') && keys.includes('head.weight'));
  assert.ok(!keys.includes('head.bias'));
  assert.equal(net.numParameters(), 2 * (4 + 4 + 4 * 4 * 9 + 4) + 8 + 40 + 12);
  assert.equal(net.parameters().every((p) => p.requiresGrad), true);
});

test('train/eval propagate to every submodule', () => {
  const net = new Net().eval();
  assert.equal([...net.namedModules()].every(([, m]) => !m.training), true);
  net.train();
  assert.equal(net.bn.training, true);
});

test('load strict: missing, unexpected and mis-shaped keys are clear errors; a good dict round-trips through safetensors', () => {
  const a = new Net();
  const b = new Net();
  const path = join(mkdtempSync(join(tmpdir(), 'ib-nn-')), 'net.safetensors');
  T.saveSafetensors(path, a.stateDict());
  b.loadStateDict(T.loadSafetensors(path).tensors);
  for (const [k, v] of a.stateDict()) assert.deepEqual(b.stateDict().get(k)!.toNumbers(), v.toNumbers(), k);

  const sd = new Map(a.stateDict());
  sd.delete('head.weight');
  sd.set('loss.logvar', T.zeros([]));
  assert.throws(() => b.loadStateDict(sd), (e: Error) => e instanceof StateDictError && /missing keys: head\.weight/.test(e.message) && /unexpected keys: loss\.logvar/.test(e.message));
  const r = b.loadStateDict(sd, { strict: false });
  assert.deepEqual(r.missing, ['head.weight']);
  assert.deepEqual(r.unexpected, ['loss.logvar']);
  const wrong = new Map(a.stateDict());
  wrong.set('emb.weight', T.zeros([11, 4]));
  assert.throws(() => b.loadStateDict(wrong), /shape mismatch for emb\.weight: checkpoint \[11, 4\] vs model \[10, 4\]/);
});

test('default initialisation matches PyTorch bounds', () => {
  const l = new Linear(100, 50);
  const bound = 1 / Math.sqrt(100);
  assert.ok(l.weight.abs().max().item() <= bound);
  assert.ok(l.weight.abs().max().item() > bound * 0.9);
  const n = new LayerNorm(8);
  assert.deepEqual(n.weight.toNumbers(), new Array(8).fill(1));
  const e = new Embedding(1000, 8);
  assert.ok(Math.abs(e.weight.std().item() - 1) < 0.05);
});

test('module.to casts parameters in place, keeping their identity for optimisers', () => {
  const l = new Linear(3, 2);
  const w = l.weight;
  const before = w.toNumbers();
  l.to('float64');
  assert.equal(l.weight, w);
  assert.equal(w.dtype, 'float64');
  assert.equal(w.requiresGrad, true);
  w.toNumbers().forEach((x, i) => assert.ok(Math.abs(x - before[i]!) < 1e-7));
  const bn = new BatchNorm2d(2).to('float64');
  assert.equal(bn.numBatchesTracked.dtype, 'int64', 'integer buffers are not cast');
  assert.equal(bn.runningMean.dtype, 'float64');
  l.to('cpu');
  assert.equal(w.device, 'cpu');
});
