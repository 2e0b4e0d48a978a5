import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/torch/index.js';

async function exposeGc(): Promise<() => void> {
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

test('a libtorch error becomes a JS Error with its message and the process keeps working', () => {
  const a = T.randn([2, 3]);
  assert.throws(() => a.matmul(T.randn([4, 5])), (e: Error) => e instanceof Error && /mat1 and mat2 shapes cannot be multiplied|size mismatch/.test(e.message));
  assert.throws(() => a.view(7), /shape '\[7\]' is invalid for input of size 6/);
  assert.throws(() => T.conv2d(T.randn([1, 3, 4, 4]), T.randn([2, 5, 3, 3])), /expected input.*to have 5 channels|channels/);
  assert.throws(() => T.crossEntropy(T.randn([2, 3]), T.tensor(new BigInt64Array([0n, 7n]))), /out of bounds|Target 7/);
  assert.throws(() => a.select(0, 5), /out of range/);
  // still usable afterwards
  assert.deepEqual(T.tensor([1, 2]).add(1).toNumbers(), [2, 3]);
});

test('bad arguments from JS are rejected with the operator and argument named', () => {
  const a = T.randn([2]);
  assert.throws(() => a.view(1.5), /aten::view: argument 'size' must be an array of integers|integer/);
  assert.throws(() => T.zeros([-1]), /negative|-1/);
  assert.throws(() => a.add('x' as unknown as number), /missing argument 'other'|expected a tensor/);
  assert.throws(() => T.tensor([1]).to('float8' as T.DType), /cuda|device|Invalid device|unknown dtype|expected/i);
});

test('using a disposed tensor is an error, not a crash', () => {
  const a = T.randn([3]);
  a.dispose();
  assert.equal(a.disposed, true);
  assert.throws(() => a.add(1), /used after dispose/);
  a.dispose(); // twice is fine
});

test('using declarations dispose at block end', () => {
  let escaped: T.Tensor;
  {
    using t = T.randn([2]);
    escaped = t;
    assert.equal(t.disposed, false);
  }
  assert.equal(escaped.disposed, true);
});

test('tidy frees intermediates, keeps the result and kept tensors, and frees on throw', () => {
  let inner: T.Tensor | undefined;
  let kept: T.Tensor | undefined;
  const out = T.tidy(() => {
    inner = T.randn([4]);
    kept = T.randn([4]).keep();
    return { y: inner.mul(2), list: [inner.add(1)] };
  });
  assert.equal(inner!.disposed, true);
  assert.equal(kept!.disposed, false);
  assert.equal(out.y.disposed, false);
  assert.equal(out.list[0]!.disposed, false);
  let leaked: T.Tensor | undefined;
  assert.throws(() => T.tidy(() => { leaked = T.randn([2]); throw new Error('boom'); }), /boom/);
  assert.equal(leaked!.disposed, true);
  // nested: the inner result survives into the outer scope until the outer one ends
  let mid: T.Tensor | undefined;
  T.tidy(() => {
    mid = T.tidy(() => T.randn([2]).add(1));
    assert.equal(mid.disposed, false);
    return undefined;
  });
  assert.equal(mid!.disposed, true);
});

test('20 000 small ops inside tidy do not grow RSS by more than a few MB', async () => {
  const gc = await exposeGc();
  const x = T.randn([64]);
  const step = () => T.tidy(() => { let y = x; for (let i = 0; i < 100; i++) y = y.mul(1.0001).add(0.5).tanh(); return y.sum().item(); });
  for (let i = 0; i < 100; i++) step(); // warm up the allocator and the JIT
  gc();
  const before = process.memoryUsage().rss;
  const liveBefore = T.native.liveTensors();
  for (let i = 0; i < 67; i++) step(); // 67 × 300 ≈ 20 000 ops
  gc();
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  assert.ok(T.native.liveTensors() - liveBefore <= 0, `live tensors grew by ${T.native.liveTensors() - liveBefore}`);
  assert.ok(grown < 4, `RSS grew by ${grown.toFixed(1)} MB`);
});

test('garbage-collected tensors free their storage without dispose()', async () => {
  const gc = await exposeGc();
  const live0 = T.native.liveTensors();
  (() => { for (let i = 0; i < 200; i++) T.randn([1000]); })();
  for (let i = 0; i < 5 && T.native.liveTensors() > live0 + 10; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(T.native.liveTensors() <= live0 + 10, `${T.native.liveTensors() - live0} tensors still alive after GC`);
});
