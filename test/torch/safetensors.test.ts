import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/torch/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ib-st-'));

test('state dict round trip through safetensors keeps dtypes, shapes, values and metadata', () => {
  const tensors = {
    'encoder.conv_in.weight': T.randn([4, 3, 3, 3]),
    'quantize.used': T.tensor(new BigInt64Array([0n, 5n, 9n])),
    'x.half': T.randn([5]).to('float16'),
    'x.bf16': T.randn([3]).to('bfloat16'),
    'x.bool': T.tensor([1, 0, 1]).bool(),
    'x.i16': T.tensor(new Int16Array([-3, 7])),
    'x.f64': T.randn([2, 2], { dtype: 'float64' }),
    'x.scalar': T.tensor(3.5, []),
    'x.empty': T.zeros([0, 4]),
  };
  const path = join(dir, 'a.safetensors');
  T.saveSafetensors(path, tensors, { config: JSON.stringify({ ch: 32 }) });
  const { tensors: back, metadata } = T.loadSafetensors(path);
  assert.equal(JSON.parse(metadata.config!).ch, 32);
  for (const [k, t] of Object.entries(tensors)) {
    const b = back.get(k)!;
    assert.equal(b.dtype, t.dtype, k);
    assert.deepEqual(b.shape, t.shape, k);
    assert.deepEqual(Array.from(b.toArray() as ArrayLike<number | bigint>), Array.from(t.toArray() as ArrayLike<number | bigint>), k);
  }
  const header = T.readSafetensorsHeader(path);
  assert.deepEqual(header.tensors.get('encoder.conv_in.weight')!.shape, [4, 3, 3, 3]);
  assert.equal((header.dataStart - 8) % 8, 0, 'header padded to 8 bytes');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), [], 'no temporary file left behind');
});

test('the official fixture files load', () => {
  const p = join(process.cwd(), 'test', 'fixtures', 'official', 'diffusion.safetensors');
  assert.ok(existsSync(p), `fixture missing: ${p}`);
  const { tensors, metadata } = T.loadSafetensors(p);
  assert.equal(metadata.format, 'imagebart-parity-fixture/1');
  const beta = tensors.get('schedule.geometric.T4.beta')!;
  assert.deepEqual(Array.from(beta.toFloat32Array()).map((x) => +x.toFixed(4)), [0, 0.25, 0.3333, 0.5, 1]);
});

test('a truncated file is reported with its path and the problem', () => {
  const good = join(dir, 'good.safetensors');
  T.saveSafetensors(good, { w: T.randn([64, 64]) });
  const bytes = readFileSync(good);
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => T.loadSafetensors(cut), (e: Error) => e.message.includes(cut) && /truncated/.test(e.message));
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, bytes.subarray(0, 5));
  assert.throws(() => T.loadSafetensors(tiny), /too short/);
});

test('a corrupt header is reported, never a crash', () => {
  const bad = (name: string, header: string | Buffer, data = Buffer.alloc(16)) => {
    const h = typeof header === 'string' ? Buffer.from(header) : header;
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const p = join(dir, name);
    writeFileSync(p, Buffer.concat([len, h, data]));
    return p;
  };
  assert.throws(() => T.loadSafetensors(bad('json.st', '{"a": [1,')), /not valid UTF-8 JSON/);
  assert.throws(() => T.loadSafetensors(bad('dtype.st', '{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}')), /unsupported dtype/);
  assert.throws(() => T.loadSafetensors(bad('size.st', '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}')), /needs 12 bytes/);
  assert.throws(() => T.loadSafetensors(bad('over.st', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}')), /overlap/);
  assert.throws(() => T.loadSafetensors(bad('meta.st', '{"__metadata__":{"a":1}}')), /__metadata__/);
  const huge = Buffer.alloc(8);
  huge.writeBigUInt64LE(1n << 60n);
  const p = join(dir, 'huge.st');
  writeFileSync(p, Buffer.concat([huge, Buffer.alloc(32)]));
  assert.throws(() => T.loadSafetensors(p), /exceeds the file/);
  assert.throws(() => T.loadSafetensors(join(dir, 'nope.st')), /cannot open/);
});
