/**
 * readTorchCheckpoint on synthetic torch.save files: both formats, strided/offset/shared/expanded
 * views, big-endian storages, deflate and zip64, partial reads, and corrupt layouts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, sameStorage } from '../../src/torch/index.js';
import { readTorchCheckpoint, stateDictFromCheckpoint, detectCheckpointFormat, CheckpointError, disposeCheckpoint } from '../../src/io/torchckpt.js';
import { TensorRef, PY_ATTRS } from '../../src/io/pickle.js';
import { P, checkpointPickle, zipBytes, legacyBytes, type SyntheticTensor } from './builders.js';
import { tempDir } from './fixtures.js';

const dir = tempDir();

const f32 = new Float32Array(12).map((_, i) => i);
const i64 = BigInt64Array.of(-1n, 2n ** 40n, 5n);
const f16 = Uint16Array.of(0x3e00, 0xc000); // 1.5, -2
const STORAGES = [
  { key: '0', numel: 12, size: 4, data: new Uint8Array(f32.buffer) },
  { key: '1', numel: 3, size: 8, data: new Uint8Array(i64.buffer) },
  { key: '2', numel: 2, size: 2, data: new Uint8Array(f16.buffer) },
];
const TENSORS: SyntheticTensor[] = [
  { name: 'a', type: 'FloatStorage', key: '0', numel: 12, offset: 2, size: [2, 3], stride: [1, 2] },
  { name: 'b', type: 'FloatStorage', key: '0', numel: 12, offset: 0, size: [3], stride: [4] },
  { name: 'c', type: 'FloatStorage', key: '0', numel: 12, offset: 4, size: [2, 2], stride: [2, 1] },
  { name: 'd', type: 'FloatStorage', key: '0', numel: 12, offset: 11, size: [], stride: [] },
  { name: 'e', type: 'FloatStorage', key: '0', numel: 12, offset: 1, size: [2, 2], stride: [0, 1] },
  { name: 'z', type: 'FloatStorage', key: '0', numel: 12, offset: 0, size: [0, 3], stride: [3, 1] },
  { name: 'l', type: 'LongStorage', key: '1', numel: 3, offset: 0, size: [3], stride: [1] },
  { name: 'h', type: 'HalfStorage', key: '2', numel: 2, offset: 0, size: [2], stride: [1] },
];

const swapped = (b: Uint8Array, size: number): Uint8Array => {
  const out = b.slice();
  for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  return out;
};

function zipCheckpoint(name: string, o: { zip64?: boolean; deflate?: boolean; bigEndian?: boolean; tensors?: SyntheticTensor[]; storages?: typeof STORAGES } = {}): string {
  const entries = [{ name: 'ckpt/data.pkl', data: checkpointPickle(o.tensors ?? TENSORS, false) }];
  if (o.bigEndian) entries.push({ name: 'ckpt/byteorder', data: new TextEncoder().encode('big') });
  for (const s of o.storages ?? STORAGES) entries.push({ name: `ckpt/data/${s.key}`, data: o.bigEndian ? swapped(s.data, s.size) : s.data, deflate: o.deflate } as never);
  entries.push({ name: 'ckpt/version', data: new TextEncoder().encode('3\n') });
  const p = join(dir, name);
  writeFileSync(p, zipBytes(entries, { zip64: o.zip64 }));
  return p;
}

function legacyCheckpoint(name: string, tensors = TENSORS, storages = STORAGES): string {
  const p = join(dir, name);
  writeFileSync(p, legacyBytes(checkpointPickle(tensors, true), storages));
  return p;
}

function checkValues(sd: Map<string, Tensor>): void {
  const get = (k: string) => { const t = sd.get(k); assert.ok(t, `missing ${k}`); return t; };
  assert.deepEqual(get('a').shape, [2, 3]);
  assert.deepEqual(get('a').toNumbers(), [2, 4, 6, 3, 5, 7], 'column-major view: stride [1, 2] from offset 2');
  assert.deepEqual(get('b').toNumbers(), [0, 4, 8]);
  assert.deepEqual(get('c').toNumbers(), [4, 5, 6, 7]);
  assert.deepEqual(get('d').shape, []);
  assert.equal(get('d').item(), 11);
  assert.deepEqual(get('e').toNumbers(), [1, 2, 1, 2], 'stride 0 repeats a row');
  assert.deepEqual(get('z').shape, [0, 3]);
  assert.equal(get('l').dtype, 'int64');
  assert.deepEqual([...(get('l').toArray() as BigInt64Array)], [-1n, 2n ** 40n, 5n]);
  assert.equal(get('h').dtype, 'float16');
  assert.deepEqual(get('h').float().toNumbers(), [1.5, -2]);
  assert.equal(get('a').dtype, 'float32');
}

test('zip format: offsets, strides, scalars, stride-0 and empty tensors, int64 and float16 storages', () => {
  const path = zipCheckpoint('plain.ckpt');
  assert.equal(detectCheckpointFormat(path), 'zip');
  const ck = readTorchCheckpoint(path) as Record<string, unknown>;
  assert.equal(ck.epoch, 7);
  // The state_dict's `_metadata` attribute stays out of its items.
  const attrs = (ck.state_dict as Record<symbol, unknown>)[PY_ATTRS] as Record<string, Record<string, Record<string, number>>>;
  assert.equal(attrs._metadata!['']!.version, 1);
  const sd = stateDictFromCheckpoint(ck);
  checkValues(sd);
  // Contiguous tensors are views of their storage, as in torch.
  assert.ok(sameStorage(sd.get('c')!, sd.get('d')!), 'c and d share storage 0');
  disposeCheckpoint(ck);
  assert.ok(sd.get('c')!.disposed);
});

test('legacy format gives the same tensors', () => {
  const path = legacyCheckpoint('legacy.ckpt');
  assert.equal(detectCheckpointFormat(path), 'legacy');
  checkValues(stateDictFromCheckpoint(readTorchCheckpoint(path)));
});

test('big-endian storages (byteorder record), deflated entries and zip64 records', () => {
  checkValues(stateDictFromCheckpoint(readTorchCheckpoint(zipCheckpoint('big.ckpt', { bigEndian: true }))));
  checkValues(stateDictFromCheckpoint(readTorchCheckpoint(zipCheckpoint('deflate64.ckpt', { zip64: true, deflate: true }))));
});

test('select reads only the chosen tensors; the rest stay TensorRefs', () => {
  const ck = readTorchCheckpoint(zipCheckpoint('select.ckpt'), { select: (p) => p[1] === 'l' }) as { state_dict: Record<string, unknown> };
  assert.ok(ck.state_dict.l instanceof Tensor);
  assert.ok(ck.state_dict.a instanceof TensorRef);
  assert.deepEqual([...stateDictFromCheckpoint(ck).keys()], ['l']);
});

test('views past their storage, size mismatches, truncation and non-checkpoints are errors naming the file', () => {
  const over = zipCheckpoint('over.ckpt', { tensors: [{ ...TENSORS[0]!, offset: 7 }] });
  assert.throws(() => readTorchCheckpoint(over), (e: Error) => e instanceof CheckpointError && e.message.includes(over) && /reaches element 12 of a storage of 12/.test(e.message));
  const short = zipCheckpoint('short.ckpt', { storages: [{ ...STORAGES[0]!, data: STORAGES[0]!.data.subarray(0, 40) }, STORAGES[1]!, STORAGES[2]!] });
  assert.throws(() => readTorchCheckpoint(short), /short\.ckpt: storage 'ckpt\/data\/0' holds 40 bytes, but 12 float32 elements need 48/);
  const full = legacyBytes(checkpointPickle(TENSORS, true), STORAGES);
  const cutData = join(dir, 'legacy-cut.ckpt');
  writeFileSync(cutData, full.subarray(0, full.length - 10));
  assert.throws(() => readTorchCheckpoint(cutData), /legacy-cut\.ckpt: storage '2' needs bytes .* truncated/);
  // a small file whose storages declare 4 GiB: refused against the file's size before anything is allocated
  const huge = TENSORS.map((t) => (t.key === '0' ? { ...t, numel: 2 ** 30 } : t));
  const claims = join(dir, 'claims-4gib.ckpt');
  writeFileSync(claims, legacyBytes(checkpointPickle(huge, true), STORAGES.map((st) => (st.key === '0' ? { ...st, numel: 2 ** 30 } : st))));
  const rss = process.memoryUsage().rss;
  assert.throws(() => readTorchCheckpoint(claims), /claims-4gib\.ckpt: storage '0' needs bytes .* truncated/);
  const zipClaims = zipCheckpoint('zip-claims-4gib.ckpt', { tensors: huge });
  assert.throws(() => readTorchCheckpoint(zipClaims), /zip-claims-4gib\.ckpt: storage 'ckpt\/data\/0' holds 48 bytes, but 1073741824 float32 elements need 4294967296/);
  assert.ok(process.memoryUsage().rss - rss < 256 << 20, 'no 4 GiB allocation was attempted');
  const cutPickle = join(dir, 'legacy-cut-pickle.ckpt');
  writeFileSync(cutPickle, full.subarray(0, 300));
  assert.throws(() => readTorchCheckpoint(cutPickle), /legacy-cut-pickle\.ckpt: pickle data ends unexpectedly .* truncated/);
  const deep = new P().proto();
  for (let i = 0; i < 2000; i++) deep.emptyList();
  for (let i = 1; i < 2000; i++) deep.raw(0x61); // APPEND: each list into the one below it
  const deepPath = join(dir, 'deep.ckpt');
  writeFileSync(deepPath, zipBytes([{ name: 'd/data.pkl', data: deep.stop().bytes() }]));
  assert.throws(() => readTorchCheckpoint(deepPath), /deep\.ckpt: objects nested deeper than 1000 levels/);
  const junk = join(dir, 'junk.ckpt');
  writeFileSync(junk, 'hello');
  assert.throws(() => readTorchCheckpoint(junk), /junk\.ckpt: is neither a zip nor a legacy torch\.save file/);
  assert.throws(() => readTorchCheckpoint(join(dir, 'absent.ckpt')), /absent\.ckpt: cannot open/);
});
