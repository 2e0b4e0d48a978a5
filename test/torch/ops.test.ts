import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/torch/index.js';

const close = (a: number[], b: number[], tol = 1e-5) => {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= tol, `element ${i}: ${x} vs ${b[i]}`));
};

test('creation, dtypes and data round trips', () => {
  const a = T.tensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(a.shape, [2, 3]);
  assert.equal(a.dtype, 'float32');
  assert.deepEqual(a.toNumbers(), [1, 2, 3, 4, 5, 6]);
  const i = T.tensor(new Int32Array([1, -2, 3]));
  assert.equal(i.dtype, 'int32');
  const l = T.tensor(new BigInt64Array([5n, 6n]), [2, 1]);
  assert.deepEqual(l.shape, [2, 1]);
  assert.deepEqual(l.toNumbers(), [5, 6]);
  assert.deepEqual(T.arange(4).toNumbers(), [0, 1, 2, 3]);
  assert.equal(T.arange(4).dtype, 'int64');
  close(T.arange(0, 1, 0.25).toNumbers(), [0, 0.25, 0.5, 0.75]);
  close(T.linspace(0, 1, 3).toNumbers(), [0, 0.5, 1]);
  assert.deepEqual(T.full([2], 7, { dtype: 'int16' }).toNumbers(), [7, 7]);
  assert.deepEqual(T.eye(2).toNumbers(), [1, 0, 0, 1]);
  const h = T.tensor([1.5, -2]).to('float16');
  assert.equal(h.dtype, 'float16');
  close(Array.from(h.toFloat32Array()), [1.5, -2]);
  const bf = T.tensor([1.5, -2]).to('bfloat16');
  close(Array.from(bf.toFloat32Array()), [1.5, -2]);
  assert.deepEqual(T.tensor([1, 0, 2]).bool().toNumbers(), [1, 0, 1]);
  assert.throws(() => T.tensor(new Float32Array(5), [2, 3]), /needs 6 elements/);
  assert.throws(() => T.tensor([[1, 2], [3]]), /ragged|needs/);
});

test('random draws are seeded and have the right statistics', () => {
  T.manualSeed(123);
  const a = T.randn([1000]).toNumbers();
  T.manualSeed(123);
  const b = T.randn([1000]).toNumbers();
  assert.deepEqual(a, b);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  assert.ok(Math.abs(mean) < 0.15, `randn mean ${mean}`);
  const r = T.randint(3, 7, [500]).toNumbers();
  assert.ok(r.every((x) => x >= 3 && x < 7) && new Set(r).size === 4);
  const u = T.rand([500]).toNumbers();
  assert.ok(u.every((x) => x >= 0 && x < 1));
  const m = T.tensor([[0, 1, 0], [0.5, 0, 0.5]]).multinomial(1, true).toNumbers();
  assert.equal(m[0], 1);
  assert.ok(m[1] === 0 || m[1] === 2);
});

test('elementwise math broadcasts like PyTorch', () => {
  const a = T.tensor([[1, 2], [3, 4]]);
  const b = T.tensor([10, 20]);
  assert.deepEqual(a.add(b).toNumbers(), [11, 22, 13, 24]);
  assert.deepEqual(a.sub(1).toNumbers(), [0, 1, 2, 3]);
  assert.deepEqual(a.mul(b).toNumbers(), [10, 40, 30, 80]);
  close(a.div(2).toNumbers(), [0.5, 1, 1.5, 2]);
  assert.deepEqual(a.pow(2).toNumbers(), [1, 4, 9, 16]);
  assert.deepEqual(a.rsub(10).toNumbers(), [9, 8, 7, 6]);
  assert.deepEqual(T.tensor([7, -7]).div(2, 'floor').toNumbers(), [3, -4]);
  assert.deepEqual(T.tensor([7, -7]).remainder(3).toNumbers(), [1, 2]);
  assert.deepEqual(a.maximum(T.tensor([2, 2])).toNumbers(), [2, 2, 3, 4]);
  assert.deepEqual(a.clamp(2, 3).toNumbers(), [2, 2, 3, 3]);
  assert.deepEqual(a.gt(2).toNumbers(), [0, 0, 1, 1]);
  assert.deepEqual(a.eq(T.tensor([1, 0])).toNumbers(), [1, 0, 0, 0]);
  assert.deepEqual(T.where(a.gt(2), a, 0).toNumbers(), [0, 0, 3, 4]);
  assert.deepEqual(T.where(a.gt(2), 1, -1).toNumbers(), [-1, -1, 1, 1]);
  close(T.tensor([0, 1]).exp().toNumbers(), [1, Math.E]);
  close(T.tensor([-1, 0, 1]).gelu().toNumbers(), [-0.158655, 0, 0.841345]);
  close(T.tensor([-1, 0, 1]).silu().toNumbers(), [-0.268941, 0, 0.731059]);
  close(T.tensor([-1, 2]).leakyRelu(0.2).toNumbers(), [-0.2, 2]);
  close(T.tensor([0]).sigmoid().toNumbers(), [0.5]);
  close(T.tensor([0.5]).tanh().toNumbers(), [Math.tanh(0.5)]);
  assert.deepEqual(T.tensor([1, 2]).logicalNot().toNumbers(), [0, 0]);
});

test('reductions', () => {
  const a = T.tensor([[1, 5, 3], [4, 2, 6]]);
  assert.equal(a.sum().item(), 21);
  assert.deepEqual(a.sum(0).toNumbers(), [5, 7, 9]);
  assert.deepEqual(a.sum(1, true).shape, [2, 1]);
  close(a.mean(1).toNumbers(), [3, 4]);
  assert.equal(a.max().item(), 6);
  const [v, i] = a.max(1);
  assert.deepEqual(v.toNumbers(), [5, 6]);
  assert.deepEqual(i.toNumbers(), [1, 2]);
  assert.deepEqual(a.argmin(1).toNumbers(), [0, 1]);
  assert.deepEqual(a.amax(0).toNumbers(), [4, 5, 6]);
  close(a.var(1).toNumbers(), [4, 4]);
  close(a.std(1, false, 0).toNumbers(), [Math.sqrt(8 / 3), Math.sqrt(8 / 3)]);
  close(T.tensor([3, 4]).norm().toNumbers(), [5]);
  close(T.tensor([0, 0]).logsumexp(0).toNumbers(), [Math.log(2)]);
  assert.deepEqual(T.tensor([1, 2, 3]).cumsum(0).toNumbers(), [1, 3, 6]);
  assert.deepEqual(T.tensor([1, 2, 3]).cumprod(0).toNumbers(), [1, 2, 6]);
  assert.equal(a.gt(0).all().item(), 1);
  assert.equal(a.gt(5).any().item(), 1);
  const [tv, ti] = T.tensor([3, 1, 4, 1, 5]).topk(2);
  assert.deepEqual(tv.toNumbers(), [5, 4]);
  assert.deepEqual(ti.toNumbers(), [4, 2]);
  const [sv] = T.tensor([3, 1, 2]).sort();
  assert.deepEqual(sv.toNumbers(), [1, 2, 3]);
});

test('linear algebra, softmax and losses', () => {
  const a = T.tensor([[1, 2], [3, 4]]);
  assert.deepEqual(a.matmul(a).toNumbers(), [7, 10, 15, 22]);
  assert.deepEqual(a.unsqueeze(0).bmm(a.unsqueeze(0)).toNumbers(), [7, 10, 15, 22]);
  const w = T.tensor([[1, 0], [0, 1], [1, 1]]);
  assert.deepEqual(T.linear(a, w, T.tensor([0, 0, 1])).toNumbers(), [1, 2, 4, 3, 4, 8]);
  close(T.tensor([1, 1]).softmax(0).toNumbers(), [0.5, 0.5]);
  close(T.tensor([0, 0]).logSoftmax(0).toNumbers(), [Math.log(0.5), Math.log(0.5)]);
  const logits = T.tensor([[2, 0, 0], [0, 0, 0]]);
  const target = T.tensor(new BigInt64Array([0n, 1n]));
  const ce = T.crossEntropy(logits, target).item();
  const expect = (-(2 - Math.log(Math.exp(2) + 2)) + Math.log(3)) / 2;
  assert.ok(Math.abs(ce - expect) < 1e-5);
  const ign = T.crossEntropy(logits, T.tensor(new BigInt64Array([0n, -100n]))).item();
  assert.ok(Math.abs(ign - -(2 - Math.log(Math.exp(2) + 2))) < 1e-5);
  const smooth = T.crossEntropy(T.tensor([[0, 0]]), T.tensor(new BigInt64Array([0n])), { labelSmoothing: 0.1 }).item();
  assert.ok(Math.abs(smooth - Math.log(2)) < 1e-5);
  const p = T.tensor([[0.5, 0.5, 0]]);
  const kl = T.klDiv(T.tensor([[0.25, 0.25, 0.5]]).log(), p, 'sum').item();
  assert.ok(Math.abs(kl - Math.log(2)) < 1e-5, 'kl_div with 0·log 0 = 0');
  close([T.mseLoss(T.tensor([1, 2]), T.tensor([0, 0])).item()], [2.5]);
  close([T.l1Loss(T.tensor([1, -2]), T.tensor([0, 0])).item()], [1.5]);
  const att = T.attention(T.ones([1, 2, 4]), T.ones([1, 3, 4]), T.tensor([[[1], [2], [3]]]));
  close(att.toNumbers(), [2, 2]);
});

test('convolution, norms, embedding, interpolation and padding', () => {
  const x = T.arange(16, undefined, 1, { dtype: 'float32' }).view(1, 1, 4, 4);
  const k = T.ones([1, 1, 3, 3]);
  assert.deepEqual(T.conv2d(x, k).toNumbers(), [45, 54, 81, 90]);
  assert.deepEqual(T.conv2d(x, k, undefined, { stride: 2, padding: 1 }).shape, [1, 1, 2, 2]);
  const padded = T.pad(x, [0, 1, 0, 1]);
  assert.deepEqual(padded.shape, [1, 1, 5, 5]);
  assert.equal(padded.sum().item(), x.sum().item());
  // taming's Downsample: pad right/bottom by one, then a 3×3 stride-2 convolution
  assert.deepEqual(T.conv2d(padded, k, undefined, { stride: 2 }).toNumbers(), [45, 39, 66, 50]);
  assert.deepEqual(T.convTranspose2d(T.ones([1, 1, 2, 2]), T.ones([1, 1, 2, 2]), undefined, { stride: 2 }).shape, [1, 1, 4, 4]);
  const up = T.interpolate(T.tensor([[[[1, 2], [3, 4]]]]), { scale: 2 });
  assert.deepEqual(up.toNumbers(), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  assert.deepEqual(T.interpolate(up, { size: [2, 2] }).toNumbers(), [1, 2, 3, 4]);
  const g = T.groupNorm(T.tensor([[[[1]], [[3]]]]), 1, undefined, undefined, 0);
  close(g.toNumbers(), [-1, 1]);
  const ln = T.layerNorm(T.tensor([[1, 3]]), [2], T.tensor([2, 2]), T.tensor([1, 1]), 0);
  close(ln.toNumbers(), [-1, 3]);
  const rm = T.zeros([2]);
  const rv = T.ones([2]);
  T.batchNorm(T.tensor([[1, 2], [3, 4]]).view(2, 2, 1, 1), rm, rv, undefined, undefined, true, 0.5);
  close(rm.toNumbers(), [1, 1.5]);
  const e = T.embedding(T.tensor([[0, 0], [1, 1], [2, 2]]), T.tensor(new BigInt64Array([2n, 0n])));
  assert.deepEqual(e.toNumbers(), [2, 2, 0, 0]);
  close(T.cdist(T.tensor([[0, 0]]), T.tensor([[3, 4], [0, 1]])).toNumbers(), [5, 1]);
});

test('shapes, indexing, gather/scatter and selection', () => {
  const a = T.arange(6).view(2, 3);
  assert.deepEqual(a.transpose(0, 1).contiguous().toNumbers(), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(a.permute(1, 0).shape, [3, 2]);
  assert.deepEqual(a.reshape(3, 2).shape, [3, 2]);
  assert.deepEqual(a.flatten().shape, [6]);
  assert.deepEqual(a.unsqueeze(1).squeeze(1).shape, [2, 3]);
  assert.deepEqual(T.tensor([1, 2]).unsqueeze(0).expand(3, 2).sum(0).toNumbers(), [3, 6]);
  assert.deepEqual(T.tensor([1, 2]).repeat(2).toNumbers(), [1, 2, 1, 2]);
  assert.deepEqual(a.slice(1, 1).toNumbers(), [1, 2, 4, 5]);
  assert.deepEqual(a.slice(1, 0, undefined, 2).toNumbers(), [0, 2, 3, 5]);
  assert.deepEqual(a.select(0, 1).toNumbers(), [3, 4, 5]);
  assert.deepEqual(a.narrow(1, 1, 1).toNumbers(), [1, 4]);
  assert.ok(T.sameStorage(a.select(0, 1), a), 'select is a view');
  assert.deepEqual(a.index([T.tensor(new BigInt64Array([1n, 0n]))]).toNumbers(), [3, 4, 5, 0, 1, 2]);
  assert.deepEqual(a.index([null, T.tensor(new BigInt64Array([2n]))]).toNumbers(), [2, 5]);
  const idx = T.tensor(new BigInt64Array([2n, 0n, 1n, 1n]), [2, 2]);
  assert.deepEqual(a.gather(1, idx).toNumbers(), [2, 0, 4, 4]);
  assert.deepEqual(T.zeros([2, 3]).scatter(1, idx, 1).toNumbers(), [1, 0, 1, 0, 1, 0]);
  assert.deepEqual(T.zeros([2, 3]).scatterAdd(1, idx, T.ones([2, 2])).toNumbers(), [1, 0, 1, 0, 2, 0]);
  assert.deepEqual(a.indexSelect(1, T.tensor(new BigInt64Array([0n]))).toNumbers(), [0, 3]);
  assert.deepEqual(a.maskedFill(a.lt(2), -1).toNumbers(), [-1, -1, 2, 3, 4, 5]);
  assert.deepEqual(T.tensor(new BigInt64Array([1n, 0n])).oneHot(3).toNumbers(), [0, 1, 0, 1, 0, 0]);
  assert.deepEqual(T.cat([a, a], 0).shape, [4, 3]);
  assert.deepEqual(T.stack([a, a], 1).shape, [2, 2, 3]);
  assert.deepEqual(a.split(2, 1).map((t) => t.shape), [[2, 2], [2, 1]]);
  assert.deepEqual(a.split([1, 2], 1).map((t) => t.shape), [[2, 1], [2, 2]]);
  assert.deepEqual(a.chunk(3, 1).length, 3);
  assert.deepEqual(T.ones([3, 3]).tril().toNumbers(), [1, 0, 0, 1, 1, 0, 1, 1, 1]);
  assert.deepEqual(T.tensor([1, 2, 3]).flip(0).toNumbers(), [3, 2, 1]);
  assert.deepEqual(T.tensor([1, 2, 3]).roll(1, 0).toNumbers(), [3, 1, 2]);
  const t = T.zeros([3]);
  t.indexPut_([T.tensor(new BigInt64Array([0n, 0n]))], T.tensor([1, 2]), true);
  assert.deepEqual(t.toNumbers(), [3, 0, 0]);
});

test('in-place ops mutate and return the same tensor', () => {
  const a = T.tensor([1, 2]);
  assert.equal(a.add_(1), a);
  assert.deepEqual(a.toNumbers(), [2, 3]);
  a.mul_(2).sub_(T.tensor([1, 1]));
  assert.deepEqual(a.toNumbers(), [3, 5]);
  a.addcmul_(T.tensor([1, 1]), T.tensor([2, 3]), 0.5);
  assert.deepEqual(a.toNumbers(), [4, 6.5]);
  a.lerp_(T.tensor([0, 0]), 0.5);
  assert.deepEqual(a.toNumbers(), [2, 3.25]);
  a.zero_();
  assert.deepEqual(a.toNumbers(), [0, 0]);
  const v = T.zeros([2, 2]);
  v.select(0, 1).fill_(3);
  assert.deepEqual(v.toNumbers(), [0, 0, 3, 3], 'writes through a view');
  const m = T.zeros([4]);
  new Float32Array(m.mapData())[2] = 9;
  assert.deepEqual(m.toNumbers(), [0, 0, 9, 0], 'mapData aliases tensor memory');
});

test('autocast runs matmuls in bfloat16 on CPU and restores float32 after', () => {
  const a = T.randn([4, 4]);
  const inside = T.autocast(() => a.matmul(a).dtype);
  assert.equal(inside, 'bfloat16');
  assert.equal(a.matmul(a).dtype, 'float32');
});

test('thread split is applied and reported', () => {
  const before = T.getThreads();
  T.setThreads({ intraOp: 2, blas: 1 });
  const now = T.getThreads();
  assert.equal(now.intraOp, 2);
  if (now.blasLibrary === 'openblas') assert.equal(now.blas, 1);
  T.setThreads(before);
  assert.equal(T.getThreads().intraOp, before.intraOp);
});

test('the RNG state can be saved and restored to replay a random stream', () => {
  T.manualSeed(5);
  T.randn([3]);
  const state = T.getRngState();
  const a = T.randn([4]).toNumbers();
  T.randn([10]);
  T.setRngState(state);
  assert.deepEqual(T.randn([4]).toNumbers(), a);
});
