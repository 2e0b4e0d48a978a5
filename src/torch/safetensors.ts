/**
 * safetensors: an 8-byte little-endian header length, a JSON header mapping names to
 * {dtype, shape, data_offsets} (plus an optional string map __metadata__), then raw
 * little-endian data. Reading validates the header against the file and reads every tensor
 * straight into its own memory (no second copy of the file); writing is atomic.
 */
import { openSync, readSync, writeSync, fstatSync, closeSync, fsyncSync, renameSync, unlinkSync } from 'node:fs';
import { type DType, BYTES } from './dtype.js';
import { Tensor } from './tensor.js';
import { empty } from './create.js';

const FROM_ST: Record<string, DType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const TO_ST = Object.fromEntries(Object.entries(FROM_ST).map(([k, v]) => [v, k])) as Record<DType, string>;
const MAX_HEADER = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** Byte range inside the data section. */
  offsets: [number, number];
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Where the data section starts in the file. */
  dataStart: number;
}

export class SafetensorsError extends Error {
  constructor(readonly path: string, problem: string) {
    super(`safetensors file ${path}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

function readExact(fd: number, path: string, length: number, position: number, into?: Uint8Array): Uint8Array {
  const buf = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new SafetensorsError(path, `truncated: wanted ${length} bytes at offset ${position}, file ends after ${done}`);
    done += n;
  }
  return buf;
}

function parseHeader(fd: number, path: string): SafetensorsHeader {
  const size = fstatSync(fd).size;
  if (size < 8) throw new SafetensorsError(path, `too short (${size} bytes) to hold a header`);
  const len8 = new DataView(readExact(fd, path, 8, 0).buffer).getBigUint64(0, true);
  if (len8 > BigInt(Math.min(MAX_HEADER, size - 8))) {
    throw new SafetensorsError(path, `header length ${len8} exceeds the file (${size} bytes): truncated or not a safetensors file`);
  }
  const hlen = Number(len8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readExact(fd, path, hlen, 8)));
  } catch (e) {
    throw new SafetensorsError(path, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError(path, 'header is not a JSON object');
  const dataStart = 8 + hlen;
  const dataLen = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Object.values(v).some((x) => typeof x !== 'string')) {
        throw new SafetensorsError(path, '__metadata__ must map strings to strings');
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e?.dtype === 'string' ? FROM_ST[e.dtype] : undefined;
    if (!dtype) throw new SafetensorsError(path, `tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new SafetensorsError(path, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new SafetensorsError(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const shape = e.shape as number[];
    const want = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    if (off[1] - off[0] !== want) {
      throw new SafetensorsError(path, `tensor '${name}' (${e.dtype} [${shape.join(', ')}]) needs ${want} bytes but its offsets span ${off[1] - off[0]}`);
    }
    if (off[1] > dataLen) {
      throw new SafetensorsError(path, `tensor '${name}' ends at byte ${off[1]} of the data section, which has only ${dataLen}: the file is truncated`);
    }
    tensors.set(name, { dtype, shape, offsets: [off[0], off[1]] });
  }
  const spans = [...tensors.entries()].sort((a, b) => a[1].offsets[0] - b[1].offsets[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![1].offsets[0] < spans[i - 1]![1].offsets[1]) {
      throw new SafetensorsError(path, `tensors '${spans[i - 1]![0]}' and '${spans[i]![0]}' overlap`);
    }
  }
  return { tensors, metadata, dataStart };
}

function withFile<T>(path: string, fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new SafetensorsError(path, `cannot open (${(e as Error).message})`);
  }
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** The header alone: names, dtypes, shapes and metadata, without reading tensor data. */
export const readSafetensorsHeader = (path: string): SafetensorsHeader => withFile(path, (fd) => parseHeader(fd, path));

const FLOATING = new Set<DType>(['float64', 'float32', 'float16', 'bfloat16']);

/**
 * Loads tensors (all, or those `filter` accepts) and the metadata. With `finite`, a floating-point
 * tensor holding NaN or ±Inf is an error naming the file and the tensor (model weights: a diverged
 * or damaged model fails here, not as black images or a libtorch message later).
 */
export function loadSafetensors(path: string, o: { filter?: (name: string) => boolean; finite?: boolean } = {}): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  return withFile(path, (fd) => {
    const header = parseHeader(fd, path);
    const tensors = new Map<string, Tensor>();
    for (const [name, info] of header.tensors) {
      if (o.filter && !o.filter(name)) continue;
      const t = empty(info.shape, { dtype: info.dtype, device: 'cpu' }); // read into host memory, whatever onDevice says
      const n = info.offsets[1] - info.offsets[0];
      if (n > 0) readExact(fd, path, n, header.dataStart + info.offsets[0], new Uint8Array(t.mapData()));
      tensors.set(name, t);
      if (o.finite && FLOATING.has(info.dtype) && t.numel > 0) {
        const bad = t.isfinite().logicalNot();
        const count = bad.sum().item();
        bad.dispose();
        if (count > 0) {
          for (const x of tensors.values()) x.dispose();
          throw new SafetensorsError(path, `tensor '${name}' holds ${count} NaN or infinite value${count > 1 ? 's' : ''}: the model is damaged or its training diverged`);
        }
      }
    }
    return { tensors, metadata: header.metadata };
  });
}

/** One tensor to write: its dtype and shape up front, its bytes on demand. */
export interface TensorSource {
  dtype: DType;
  shape: readonly number[];
  /** The tensor's little-endian bytes, produced when it is written (so it can be read, written and freed one at a time). */
  bytes: () => ArrayBufferView;
}

/**
 * Writes tensors (contiguous CPU copies are made one at a time) and string metadata atomically:
 * to a temporary file first, fsynced, then renamed over `path`.
 */
export function saveSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  writeSafetensors(path, new Map(entries.map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, bytes: () => t.toArray() }])), metadata);
}

/**
 * Streams tensors into a safetensors file: the header from the declared dtypes and shapes, then each
 * tensor's bytes as its source produces them, so at most one tensor is in memory at a time. Atomic
 * like saveSafetensors; a source whose bytes disagree with its declaration aborts the write.
 */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, TensorSource>, metadata: Record<string, string> = {}): void {
  // Largest element size first keeps every tensor aligned to its own element size.
  const entries = [...tensors.entries()].sort((a, b) => BYTES[b[1].dtype] - BYTES[a[1].dtype]);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error('saveSafetensors: "__metadata__" is reserved and cannot name a tensor');
    const n = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    header[name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf-8');
  const padded = Math.ceil(json.length / 8) * 8;
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, json);
    for (const [name, t] of entries) {
      const v = t.bytes();
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      const want = (header[name] as { data_offsets: [number, number] }).data_offsets;
      if (bytes.length !== want[1] - want[0]) throw new Error(`saveSafetensors: tensor '${name}' produced ${bytes.length} bytes, its ${t.dtype} [${t.shape.join(', ')}] needs ${want[1] - want[0]}`);
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* nothing to remove */ }
    throw e;
  }
}
