// Every differentiable operation's gradient against central finite differences, in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/torch/index.js';

const f64 = { dtype: 'float64' as const };
const r = (...shape: number[]) => T.randn(shape, f64);
const pos = (...shape: number[]) => T.rand(shape, f64).add(0.5);
const ids = (n: number, k: number) => T.randint(0, k, [n]);

type Case = [name: string, fn: (...xs: T.Tensor[]) => T.Tensor, inputs: () => T.Tensor[]];

const cases: Case[] = [
  ['add (broadcast)', (a, b) => a.add(b, 2), () => [r(2, 3), r(3)]],
  ['sub', (a, b) => a.sub(b), () => [r(2, 3), r(2, 1)]],
  ['mul', (a, b) => a.mul(b), () => [r(2, 3), r(1, 3)]],
  ['div', (a, b) => a.div(b), () => [r(2, 3), pos(2, 3)]],
  ['pow tensor', (a, b) => a.pow(b), () => [pos(3), r(3)]],
  ['pow scalar', (a) => a.pow(3), () => [r(4)]],
  ['maximum', (a, b) => a.maximum(b), () => [r(5), r(5)]],
  ['clamp', (a) => a.clamp(-0.5, 0.5), () => [r(6)]],
  ['neg/exp/log', (a) => a.neg().exp().add(a.log()), () => [pos(4)]],
  ['log1p/sqrt/rsqrt', (a) => a.log1p().add(a.sqrt()).add(a.rsqrt()), () => [pos(4)]],
  ['abs/sin/cos', (a) => a.abs().add(a.sin()).mul(a.cos()), () => [r(4)]],
  ['tanh/sigmoid', (a) => a.tanh().mul(a.sigmoid()), () => [r(5)]],
  ['relu', (a) => a.relu(), () => [r(6)]],
  ['gelu exact', (a) => a.gelu(), () => [r(6)]],
  ['gelu tanh', (a) => a.gelu('tanh'), () => [r(6)]],
  ['silu', (a) => a.silu(), () => [r(6)]],
  ['leaky_relu', (a) => a.leakyRelu(0.2), () => [r(6)]],
  ['softplus', (a) => a.softplus(), () => [r(6)]],
  ['square/reciprocal', (a) => a.square().add(a.reciprocal()), () => [pos(4)]],
  ['erf', (a) => a.erf(), () => [r(4)]],
  ['sum dims', (a) => a.sum([0, 2], true), () => [r(2, 3, 4)]],
  ['mean', (a) => a.mean(1), () => [r(3, 4)]],
  ['prod', (a) => a.prod(1), () => [r(3, 4)]],
  ['max dim', (a) => a.max(1)[0], () => [r(3, 4)]],
  ['amax', (a) => a.amax(0), () => [r(3, 4)]],
  ['var/std', (a) => a.var(1).add(a.std(1)), () => [r(3, 5)]],
  ['norm', (a) => a.norm(2, 1), () => [r(3, 4)]],
  ['logsumexp', (a) => a.logsumexp(1), () => [r(3, 4)]],
  ['cumsum/cumprod', (a) => a.cumsum(1).add(a.cumprod(1)), () => [r(2, 4)]],
  ['matmul', (a, b) => a.matmul(b), () => [r(2, 3, 4), r(4, 5)]],
  ['mm', (a, b) => a.mm(b), () => [r(3, 4), r(4, 2)]],
  ['bmm', (a, b) => a.bmm(b), () => [r(2, 3, 4), r(2, 4, 2)]],
  ['baddbmm', (i, a, b) => T.baddbmm(i, a, b, 0.5, 2), () => [r(2, 3, 2), r(2, 3, 4), r(2, 4, 2)]],
  ['linear', (x, w, b) => T.linear(x, w, b), () => [r(3, 4), r(5, 4), r(5)]],
  ['softmax', (a) => a.softmax(-1), () => [r(3, 5)]],
  ['log_softmax', (a) => a.logSoftmax(0), () => [r(3, 5)]],
  ['attention', (q, k, v) => T.attention(q, k, v), () => [r(2, 3, 4), r(2, 5, 4), r(2, 5, 3)]],
  ['conv2d stride/pad', (x, w, b) => T.conv2d(x, w, b, { stride: 2, padding: 1 }), () => [r(2, 3, 5, 5), r(4, 3, 3, 3), r(4)]],
  ['conv2d groups', (x, w) => T.conv2d(x, w, undefined, { groups: 2 }), () => [r(1, 4, 4, 4), r(2, 2, 3, 3)]],
  ['conv_transpose2d', (x, w, b) => T.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }), () => [r(1, 2, 3, 3), r(2, 3, 3, 3), r(3)]],
  ['pad asymmetric + conv', (x, w) => T.conv2d(T.pad(x, [0, 1, 0, 1]), w, undefined, { stride: 2 }), () => [r(1, 2, 4, 4), r(2, 2, 3, 3)]],
  ['pad reflect', (x) => T.pad(x, [1, 1, 2, 0], 'reflect'), () => [r(1, 1, 3, 3)]],
  ['group_norm', (x, w, b) => T.groupNorm(x, 2, w, b, 1e-6), () => [r(2, 4, 3, 3), r(4), r(4)]],
  ['layer_norm', (x, w, b) => T.layerNorm(x, [5], w, b), () => [r(3, 5), r(5), r(5)]],
  ['batch_norm train', (x, w, b) => T.batchNorm(x, undefined, undefined, w, b, true), () => [r(4, 3, 2, 2), r(3), r(3)]],
  ['embedding', (w) => T.embedding(w, T.tensor(new BigInt64Array([1n, 3n, 1n]))), () => [r(5, 3)]],
  ['cross_entropy + smoothing', (l) => T.crossEntropy(l, T.tensor(new BigInt64Array([0n, 2n, 1n])), { labelSmoothing: 0.1 }), () => [r(3, 4)]],
  ['cross_entropy [N,C,L]', (l) => T.crossEntropy(l, T.tensor(new BigInt64Array([0n, 2n, 1n, 1n]), [2, 2])), () => [r(2, 3, 2)]],
  ['cross_entropy soft targets', (l, p) => T.crossEntropy(l, p.softmax(1)), () => [r(3, 4), r(3, 4)]],
  ['kl_div', (l, p) => T.klDiv(l.logSoftmax(-1), p.softmax(-1), 'sum'), () => [r(3, 4), r(3, 4)]],
  ['mse/l1', (a, b) => T.mseLoss(a, b).add(T.l1Loss(a, b)), () => [r(6), r(6)]],
  ['bce with logits', (a) => T.bceWithLogits(a, T.tensor([0, 1, 1, 0], f64)), () => [r(4)]],
  ['interpolate nearest', (x) => T.interpolate(x, { scale: 2 }), () => [r(1, 2, 3, 3)]],
  ['interpolate bilinear', (x) => T.interpolate(x, { size: [5, 4], mode: 'bilinear' }), () => [r(1, 1, 3, 3)]],
  ['avg_pool2d', (x) => T.avgPool2d(x, 2), () => [r(1, 2, 4, 4)]],
  ['cdist', (a, b) => T.cdist(a, b), () => [r(3, 4), r(5, 4)]],
  ['cat/stack', (a, b) => T.cat([a, b], 1).add(T.stack([a, a], 0).sum(0).repeat(1, 2)), () => [r(2, 3), r(2, 3)]],
  ['view/permute/transpose/contiguous', (a) => a.view(2, 3, 2).permute(2, 0, 1).transpose(0, 2).contiguous().flatten(), () => [r(3, 4)]],
  ['expand/repeat/flip/roll', (a) => a.unsqueeze(0).expand(3, 4).repeat(1, 2).flip(1).roll(1, 0), () => [r(4)]],
  ['slice/select/narrow', (a) => a.slice(1, 1, 4, 2).add(a.select(1, 0).unsqueeze(1)).add(a.narrow(1, 0, 2)), () => [r(3, 5)]],
  ['index (advanced)', (a) => a.index([T.tensor(new BigInt64Array([2n, 0n, 2n]))]), () => [r(3, 4)]],
  ['index_put accumulate', (a, v) => a.indexPut([T.tensor(new BigInt64Array([1n, 1n]))], v, true), () => [r(3, 2), r(2, 2)]],
  ['gather', (a) => a.gather(1, T.tensor(new BigInt64Array([0n, 0n, 3n, 1n]), [2, 2])), () => [r(2, 4)]],
  ['scatter/scatter_add', (a, s) => a.scatter(1, T.tensor(new BigInt64Array([1n, 0n]), [2, 1]), s).scatterAdd(1, T.tensor(new BigInt64Array([2n, 2n]), [2, 1]), s),
    () => [r(2, 3), r(2, 1)]],
  ['index_select', (a) => a.indexSelect(0, T.tensor(new BigInt64Array([1n, 1n, 0n]))), () => [r(2, 3)]],
  ['masked_fill/where', (a, b) => T.where(a.gt(0), a, b).maskedFill(b.lt(-1), 0), () => [r(3, 3), r(3, 3)]],
  ['split/chunk/unbind', (a) => T.cat([...a.split(2, 1), ...a.chunk(2, 0), ...a.unbind(0)].map((t) => t.flatten())), () => [r(2, 3)]],
  ['tril/triu', (a) => a.tril().add(a.triu(1).mul(2)), () => [r(3, 3)]],
  ['to(copy)', (a) => a.to('float64', { copy: true }).mul(a), () => [r(4)]],
  ['dropout p=0 (identity)', (a) => T.dropout(a, 0, true), () => [r(4)]],
];

for (const [name, fn, inputs] of cases) {
  test(`gradient of ${name} matches finite differences`, () => {
    T.manualSeed(7);
    const xs = inputs();
    const res = T.gradcheck(fn, xs);
    assert.ok(res.ok, `${name}: max abs error ${res.maxAbsErr} (${res.worst})`);
  });
}

test('gradcheck detects a wrong gradient', () => {
  // detach() hides part of the function from autograd: the check must fail.
  const res = T.gradcheck((a) => a.mul(a.detach()), [r(4)]);
  assert.equal(res.ok, false);
});

test('backward accumulates into .grad and autograd.grad leaves .grad alone', () => {
  const x = T.tensor([1, 2, 3], { requiresGrad: true });
  x.mul(x).sum().backward();
  assert.deepEqual(x.grad!.toNumbers(), [2, 4, 6]);
  x.mul(3).sum().backward();
  assert.deepEqual(x.grad!.toNumbers(), [5, 7, 9], 'accumulates');
  x.grad = undefined;
  assert.equal(x.grad, undefined);
  const [g] = T.grad([x.pow(3).sum()], [x]);
  assert.deepEqual(g!.toNumbers(), [3, 12, 27]);
  assert.equal(x.grad, undefined);
  const y = T.noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(x.mul(2).requiresGrad, true);
  assert.equal(x.detach().requiresGrad, false);
  const out = x.mul(x).sum();
  out.backward(undefined, { retainGraph: true });
  out.backward();
  assert.deepEqual(x.grad!.toNumbers(), [4, 8, 12], 'retainGraph allows a second backward');
});
