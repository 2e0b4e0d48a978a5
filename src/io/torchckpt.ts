/**
 * Reads PyTorch checkpoints (`torch.save`, e.g. PyTorch Lightning `.ckpt`) without Python and
 * without running pickle code, into engine tensors.
 *
 * - zip format (torch ≥ 1.6): `<archive>/data.pkl` is the object pickle; each tensor's storage is
 *   the entry `<archive>/data/<key>`, raw, in the byte order named by `<archive>/byteorder`
 *   (little when absent: torch < 2.1 wrote only little-endian machines' layout).
 * - legacy format: five pickles back to back (magic number, protocol version 1001, sys_info, the
 *   object, the sorted list of storage keys), then each storage in that order as an int64 element
 *   count followed by its raw little-endian elements.
 *
 * Tensors come back as strided views of their storage, as torch builds them: the storage is read
 * once into one engine tensor, contiguous tensors are views of it, other strides are gathered into
 * a copy (the engine exposes no as_strided). Everything lands on the CPU whatever the saved device.
 * `select` picks the tensors to read by key path; the others stay `TensorRef`s and cost no I/O.
 */
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { Tensor, empty, full, arange, tidy } from '../torch/index.js';
import { BYTES, type DType } from '../torch/dtype.js';
import { ZipReader, ZipError } from './zip.js';
import { unpickle, TensorRef, StorageType, PickledObject, PickleError, type ByteSource, type PyDict } from './pickle.js';

export class CheckpointError extends Error {
  constructor(readonly path: string, problem: string) {
    super(`torch checkpoint ${path}: ${problem}`);
    this.name = 'CheckpointError';
  }
}

export type CheckpointFormat = 'zip' | 'legacy';

export interface ReadCheckpointOptions {
  /** Replace objects of classes outside the allow-list (e.g. omegaconf's DictConfig) by placeholders. */
  skipUnknown?: boolean;
  /** Told the name of each unknown global that skipUnknown let through. */
  onUnknownGlobal?: (name: string) => void;
  /** Which tensors to read, by key path (`['state_dict', 'encoder.conv_in.weight']`); default all. */
  select?: (path: readonly string[]) => boolean;
  /** Check zip entries' CRC-32 (default true). */
  verifyCrc?: boolean;
}

/** A storage named by a persistent id; its bytes are read on first use. */
export class StorageHandle {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    /** Elements of the whole stored storage. */
    readonly numel: number,
    readonly location: string,
    /** Legacy storage views: a slice (in elements) of the stored storage. */
    readonly view?: { offset: number; numel: number },
  ) {}
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/** The format by the first bytes: a zip's local header, or a pickle's PROTO opcode. */
export function detectCheckpointFormat(path: string): CheckpointFormat {
  const head = new Uint8Array(512);
  let n = 0;
  try {
    const fd = openSync(path, 'r');
    try { n = readSync(fd, head, 0, head.length, 0); } finally { closeSync(fd); }
  } catch (e) {
    throw new CheckpointError(path, `cannot open (${(e as Error).message})`);
  }
  if (n >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
  if (n >= 2 && head[0] === 0x80 && head[1]! >= 2) return 'legacy';
  if (n >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === 'ustar') {
    throw new CheckpointError(path, 'is in the tar format of PyTorch < 0.4, which is not supported: re-save it with a newer torch');
  }
  throw new CheckpointError(path, n === 0 ? 'is empty' : 'is neither a zip nor a legacy torch.save file');
}

/** Parses a persistent id: ('storage', StorageType, key, location, numel[, view_metadata]). */
function storageFromPid(pid: unknown): StorageHandle {
  if (!Array.isArray(pid) || pid[0] !== 'storage') {
    const what = Array.isArray(pid) && typeof pid[0] === 'string' ? `'${pid[0]}'` : 'an unknown kind';
    throw new PickleError(`persistent id of ${what} (only tensor storages are supported; whole pickled modules are not)`);
  }
  const [, type, key, location, numel, view] = pid as unknown[];
  if (!(type instanceof StorageType)) throw new PickleError('persistent id does not name a torch storage type');
  if (typeof key !== 'string' || typeof location !== 'string') throw new PickleError('persistent id has a malformed key or location');
  if (typeof numel !== 'number' || !Number.isInteger(numel) || numel < 0) throw new PickleError(`storage '${key}' has an invalid element count`);
  if (view !== undefined && view !== null) {
    const [, offset, size] = Array.isArray(view) ? view : [];
    if (typeof offset !== 'number' || typeof size !== 'number' || offset < 0 || size < 0 || offset + size > numel) {
      throw new PickleError(`storage '${key}' has an invalid view ${JSON.stringify(view)}`);
    }
    return new StorageHandle(key, type.dtype, numel, location, { offset, numel: size });
  }
  return new StorageHandle(key, type.dtype, numel, location);
}

/** Reverses each element's bytes (big-endian storages). */
function swapBytes(b: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= b.length; i += size) {
    for (let a = i, z = i + size - 1; a < z; a++, z--) { const t = b[a]!; b[a] = b[z]!; b[z] = t; }
  }
}

/** A file read as a pickle source through a window, so the legacy format is never loaded whole. */
class FileSource implements ByteSource {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  constructor(private readonly fd: number, private readonly size: number) {}
  take(n: number): Uint8Array {
    if (this.pos + n > this.size) throw new PickleError(`pickle data ends unexpectedly at byte ${this.size} (wanted ${n} more at ${this.pos}): the file is truncated`);
    if (this.pos < this.start || this.pos + n > this.start + this.buf.length) {
      const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
      this.buf = readExact(this.fd, len, this.pos);
      this.start = this.pos;
    }
    const at = this.pos - this.start;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }
}

function readExact(fd: number, length: number, position: number, into?: Uint8Array): Uint8Array {
  const buf = into ?? new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new PickleError(`the file ends after ${position + done} bytes, wanted ${length} at ${position}: truncated`);
    done += n;
  }
  return buf;
}

/** Reads one stored storage (all `numel` elements) into a fresh 1-d tensor. */
type StorageReader = (h: StorageHandle) => Tensor;

function readZip(path: string, o: ReadCheckpointOptions): { root: unknown; read: StorageReader; close: () => void } {
  const z = ZipReader.open(path);
  try {
    const pkls = [...z.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl');
    if (pkls.length !== 1) {
      const jit = [...z.entries.keys()].some((n) => /(^|\/)constants\.pkl$/.test(n));
      throw new ZipError(path, pkls.length ? `holds ${pkls.length} data.pkl records` : jit ? 'is a TorchScript archive (torch.jit.save), not a torch.save checkpoint' : 'has no data.pkl record: not a torch.save checkpoint');
    }
    const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
    const order = z.entries.has(`${prefix}byteorder`) ? new TextDecoder().decode(z.read(`${prefix}byteorder`)).trim() : 'little';
    if (order !== 'little' && order !== 'big') throw new ZipError(path, `unknown byteorder '${order}'`);
    const root = unpickle(z.read(pkls[0]!, o), { ...o, persistentLoad: storageFromPid });
    const read: StorageReader = (h) => {
      const name = `${prefix}data/${h.key}`;
      const bytes = h.numel * BYTES[h.dtype];
      const e = z.entry(name);
      if (e.size !== bytes) throw new ZipError(path, `storage '${name}' holds ${e.size} bytes, but ${h.numel} ${h.dtype} elements need ${bytes}`);
      const t = empty([h.numel], { dtype: h.dtype, device: 'cpu' });
      if (bytes > 0) {
        const dst = new Uint8Array(t.mapData());
        z.readInto(name, dst, o);
        if (order === 'big') swapBytes(dst, BYTES[h.dtype]);
      }
      return t;
    };
    return { root, read, close: () => z.close() };
  } catch (e) {
    z.close();
    throw e;
  }
}

function readLegacy(path: string, o: ReadCheckpointOptions): { root: unknown; read: StorageReader; close: () => void } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const src = new FileSource(fd, size);
    const plain = { skipUnknown: false };
    if (unpickle(src, plain) !== LEGACY_MAGIC) throw new PickleError('wrong magic number: not a torch.save file');
    const version = unpickle(src, plain);
    if (version !== LEGACY_PROTOCOL) throw new PickleError(`unsupported legacy protocol version ${String(version)}`);
    unpickle(src, plain); // sys_info: informational; legacy storages are always little-endian on disk
    const seen = new Map<string, StorageHandle>();
    const root = unpickle(src, {
      ...o,
      persistentLoad: (pid) => {
        const h = storageFromPid(pid);
        const prev = seen.get(h.key);
        if (prev && (prev.dtype !== h.dtype || prev.numel !== h.numel)) throw new PickleError(`storage '${h.key}' is named with two different types or sizes`);
        seen.set(h.key, h);
        return h;
      },
    });
    const keys = unpickle(src, plain);
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) throw new PickleError('the storage key list is malformed');
    // Storages follow in key order, each an int64 element count and its data: index them now, so a
    // truncated file fails here rather than halfway through loading.
    const where = new Map<string, number>();
    let at = src.pos;
    for (const key of keys as string[]) {
      const h = seen.get(key);
      if (!h) throw new PickleError(`storage '${key}' is listed but no tensor uses it`);
      if (at + 8 > size) throw new PickleError(`storage '${key}' needs bytes ${at}..${at + 8} (its element count) but the file has ${size}: truncated`);
      const n = new DataView(readExact(fd, 8, at).buffer).getBigInt64(0, true);
      if (n !== BigInt(h.numel)) throw new PickleError(`storage '${key}' holds ${n} elements on disk but ${h.numel} in the pickle`);
      const end = at + 8 + h.numel * BYTES[h.dtype];
      if (end > size) throw new PickleError(`storage '${key}' needs bytes ${at + 8}..${end} but the file has ${size}: truncated`);
      where.set(key, at + 8);
      at = end;
    }
    const read: StorageReader = (h) => {
      const pos = where.get(h.key);
      if (pos === undefined) throw new PickleError(`storage '${h.key}' is used but missing from the storage list`);
      const t = empty([h.numel], { dtype: h.dtype, device: 'cpu' });
      if (h.numel > 0) readExact(fd, h.numel * BYTES[h.dtype], pos, new Uint8Array(t.mapData()));
      return t;
    };
    return { root, read, close: () => closeSync(fd) };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** The most bytes a tensor with overlapping strides may expand its storage to. */
const MAX_EXPANDED_BYTES = 256 * 2 ** 20;

/** ref's strided window of `base` (1-d), as torch's set_(storage, offset, size, stride). */
function stridedView(base: Tensor, ref: TensorRef): Tensor {
  const { offset, size, stride } = ref;
  const bad = (why: string) => new PickleError(`tensor (offset ${offset}, size [${size}], stride [${stride}]) ${why}`);
  if (size.length !== stride.length) throw bad('does not have one stride per dimension');
  if (offset < 0 || size.some((n) => n < 0) || stride.some((n) => n < 0)) throw bad('has a negative offset, size or stride');
  const numel = size.reduce((a, b) => a * b, 1);
  if (numel === 0) return empty(size, { dtype: base.dtype });
  const last = size.reduce((acc, n, i) => acc + (n - 1) * stride[i]!, offset);
  if (last >= base.numel) throw bad(`reaches element ${last} of a storage of ${base.numel}`);
  // overlapping strides (stride 0) repeat storage elements; more elements than the storage holds
  // would be gathered into a copy of that size, so a few bytes on disk could claim gigabytes
  if (numel > base.numel && numel * BYTES[base.dtype] > MAX_EXPANDED_BYTES) {
    throw bad(`repeats a storage of ${base.numel} elements into ${numel}: more than ${MAX_EXPANDED_BYTES / 2 ** 20} MiB from overlapping strides`);
  }
  let expect = 1, contiguous = true;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expect) contiguous = false;
    expect *= size[i]!;
  }
  return tidy(() => {
    if (contiguous) return base.narrow(0, offset, numel).view(...size);
    // Element i₀…iₙ sits at offset + Σ iₖ·strideₖ: gather those positions.
    let idx = full([], offset, { dtype: 'int64' });
    size.forEach((n, d) => {
      const shape = size.map((_, j) => (j === d ? n : 1));
      idx = idx.add(arange(n).mul(stride[d]!).view(...shape));
    });
    return base.index([idx]);
  });
}

/** Checkpoints are a few levels deep; a far deeper pickle is hostile and would exhaust the JS stack. */
const MAX_DEPTH = 1000;
const isDict = (x: unknown): x is PyDict => x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === null;

/** Replaces the selected TensorRefs by tensors, in place; shared refs stay shared. */
function materialize(root: unknown, read: StorageReader, select: (path: readonly string[]) => boolean): unknown {
  const storages = new Map<string, Tensor>();
  const made = new Map<TensorRef, Tensor>();
  const visited = new Set<object>();
  const storageOf = (h: StorageHandle): Tensor => {
    let whole = storages.get(h.key);
    if (!whole) storages.set(h.key, (whole = read(h)));
    return h.view ? whole.narrow(0, h.view.offset, h.view.numel) : whole;
  };
  const tensorOf = (ref: TensorRef): Tensor => {
    let t = made.get(ref);
    if (t) return t;
    if (!(ref.storage instanceof StorageHandle)) throw new PickleError('a tensor is built from something other than a stored storage');
    const base = storageOf(ref.storage);
    t = stridedView(base, ref);
    if (base !== storages.get(ref.storage.key)) base.dispose();
    made.set(ref, t);
    return t;
  };
  const visit = (x: unknown, path: string[]): unknown => {
    if (x instanceof TensorRef) return select(path) ? tensorOf(x) : x;
    if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x) || visited.has(x)) return x;
    if (path.length > MAX_DEPTH) throw new PickleError(`objects nested deeper than ${MAX_DEPTH} levels`);
    visited.add(x);
    if (Array.isArray(x)) x.forEach((v, i) => { x[i] = visit(v, [...path, String(i)]); });
    else if (isDict(x)) for (const k of Object.keys(x)) x[k] = visit(x[k], [...path, k]);
    else if (x instanceof PickledObject) {
      x.args.forEach((v, i) => { x.args[i] = visit(v, [...path, String(i)]); });
      x.state = visit(x.state, path);
    }
    return x;
  };
  try {
    return visit(root, []);
  } finally {
    // The views keep their storage alive; the whole-storage handles are no longer needed.
    for (const t of storages.values()) t.dispose();
  }
}

/** A checkpoint opened for reading tensor by tensor: its object tree (tensors as TensorRefs) and a loader. */
export interface OpenCheckpoint {
  readonly path: string;
  readonly format: CheckpointFormat;
  /** The unpickled object, every tensor still a TensorRef (no tensor data read yet). */
  readonly root: unknown;
  /** Reads one tensor (its storage, then the strided view): the caller frees it. */
  load(ref: TensorRef): Tensor;
  close(): void;
}

/**
 * Opens a torch.save file (zip or legacy) without reading tensor data: a multi-GB checkpoint can be
 * converted tensor by tensor, each freed before the next is read. Never runs pickle code.
 */
export function openTorchCheckpoint(path: string, o: ReadCheckpointOptions = {}): OpenCheckpoint {
  const format = detectCheckpointFormat(path);
  const named = namedErrors(path);
  const archive = named(() => (format === 'zip' ? readZip(path, o) : readLegacy(path, o)));
  return {
    path, format, root: archive.root, close: archive.close,
    load: (ref) => named(() => {
      if (!(ref.storage instanceof StorageHandle)) throw new PickleError('a tensor is built from something other than a stored storage');
      const h = ref.storage;
      const whole = archive.read(h);
      const base = h.view ? whole.narrow(0, h.view.offset, h.view.numel) : whole;
      const t = stridedView(base, ref);
      if (base !== whole) base.dispose();
      whole.dispose();
      return t;
    }),
  };
}

/**
 * Reads a torch.save file (zip or legacy) into plain JS data with engine tensors. Never runs pickle
 * code; objects outside the allow-list are an error unless `skipUnknown`. Errors name the file.
 */
export function readTorchCheckpoint(path: string, o: ReadCheckpointOptions = {}): unknown {
  const format = detectCheckpointFormat(path);
  const named = namedErrors(path);
  const archive = named(() => (format === 'zip' ? readZip(path, o) : readLegacy(path, o)));
  try {
    return named(() => materialize(archive.root, archive.read, o.select ?? (() => true)));
  } finally {
    archive.close();
  }
}

/** Runs fn, turning zip and pickle errors into CheckpointErrors that name the file. */
function namedErrors(path: string): <T>(fn: () => T) => T {
  return (fn) => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ZipError) throw new CheckpointError(path, e.problem);
      if (e instanceof PickleError) throw new CheckpointError(path, e.message);
      throw e;
    }
  };
}

/**
 * The model weights: a Lightning checkpoint's `state_dict`, or the object itself when it is a plain
 * `torch.save(model.state_dict())`. Tensors left unread by `select` are skipped.
 */
export function stateDictFromCheckpoint(ck: unknown): Map<string, Tensor> {
  if (!isDict(ck)) throw new Error('checkpoint is not a dict, so it holds no state_dict');
  const sd = isDict(ck.state_dict) ? ck.state_dict : Object.values(ck).every((v) => v instanceof Tensor || v instanceof TensorRef) ? ck : undefined;
  if (!sd) throw new Error(`checkpoint has no state_dict (its keys: ${Object.keys(ck).join(', ')})`);
  const out = new Map<string, Tensor>();
  for (const [k, v] of Object.entries(sd)) {
    if (v instanceof Tensor) out.set(k, v);
    else if (!(v instanceof TensorRef)) throw new Error(`state_dict entry '${k}' is not a tensor`);
  }
  return out;
}

/** Frees every tensor in a checkpoint object (e.g. the optimizer states after taking the weights). */
export function disposeCheckpoint(ck: unknown, keep: ReadonlySet<Tensor> = new Set()): void {
  const seen = new Set<object>();
  const walk = (x: unknown): void => {
    if (x instanceof Tensor) { if (!keep.has(x) && !x.disposed) x.dispose(); return; }
    if (x === null || typeof x !== 'object' || seen.has(x)) return;
    seen.add(x);
    if (Array.isArray(x)) x.forEach(walk);
    else if (isDict(x)) Object.values(x).forEach(walk);
    else if (x instanceof PickledObject) { x.args.forEach(walk); walk(x.state); }
  };
  walk(ck);
}
