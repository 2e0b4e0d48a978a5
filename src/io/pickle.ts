/**
 * A safe unpickler: a data-only interpreter of Python's pickle opcodes (protocols 0–5; torch.save
 * writes protocol 2). It never runs code. `GLOBAL`/`STACK_GLOBAL` resolve only an allow-list of
 * names whose effect is reimplemented here as plain data construction; anything else is refused with
 * an error naming it — or, with `skipUnknown`, becomes an inert `PickledObject` placeholder so the
 * rest of the file (tensors) can still be read. Names that only exist to execute code (os.system,
 * builtins.eval, …) are refused even then: a file that uses them is hostile, not merely unknown.
 *
 * Python → JS: None → null, bool → boolean, int → number (bigint beyond 2^53), float → number,
 * str → string, bytes/bytearray → Uint8Array, list and tuple → array, set/frozenset → Set,
 * dict/OrderedDict → a null-prototype object (keys stringified: Python's 0 becomes "0";
 * JS lists integer-like keys first), torch tensors → whatever `rebuildTensor` makes of a TensorRef.
 */

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

/** A torch.*Storage class named in a persistent id. */
export class StorageType {
  constructor(readonly name: string, readonly dtype: StorageDType) {}
}
export type StorageDType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** The arguments of torch._utils._rebuild_tensor_v2: a strided view of a storage (no data read yet). */
export class TensorRef {
  constructor(
    /** Whatever `persistentLoad` returned for the storage. */
    readonly storage: unknown,
    /** In elements. */
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}
}

/** Stand-in for an object of a class outside the allow-list (only with `skipUnknown`). Holds data only. */
export class PickledObject {
  /** Set by BUILD (the object's __setstate__ argument). */
  state: unknown = undefined;
  constructor(readonly global: string, readonly args: unknown[]) {}
}

/** A resolved global: something REDUCE/NEWOBJ may call. `call` builds data; it never runs foreign code. */
class PyGlobal {
  constructor(readonly name: string, readonly call: ((args: unknown[]) => unknown) | undefined) {}
}

export interface UnpickleOptions {
  /** Maps a persistent id (torch: ('storage', StorageType, key, location, numel[, view])) to its object. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Turns a tensor description into a tensor; default: keep the TensorRef. */
  rebuildTensor?: (ref: TensorRef) => unknown;
  /** Replace globals outside the allow-list by `PickledObject` placeholders instead of failing. */
  skipUnknown?: boolean;
  /** Told of each unknown global that `skipUnknown` let through. */
  onUnknownGlobal?: (name: string) => void;
}

export type PyDict = Record<string, unknown>;
/**
 * A dict's instance attributes (BUILD state), kept apart from its items: `model.state_dict()` is an
 * OrderedDict whose `_metadata` attribute (per-module versions) torch.save pickles with it.
 */
export const PY_ATTRS = Symbol('python attributes');
const newDict = (): PyDict => Object.create(null) as PyDict;
const isDict = (x: unknown): x is PyDict => x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === null;

/** Dict keys become strings; non-primitive keys get a stable textual form. */
function keyOf(k: unknown): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (k === null) return 'None';
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (Array.isArray(k)) return `(${k.map(keyOf).join(', ')})`;
  throw new PickleError(`unsupported dict key of type ${k?.constructor?.name ?? typeof k}`);
}

const STORAGES: Record<string, StorageDType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
};

/** Modules and names whose only purpose in a pickle is running code: refused even with skipUnknown. */
const HOSTILE_MODULES = /^(os|posix|nt|subprocess|sys|shutil|socket|runpy|importlib|pty|code|codeop|commands|webbrowser|pickle|_pickle|marshal|ctypes|types|multiprocessing|io|_io|operator)(\.|$)/;
const HOSTILE_BUILTINS = new Set(['eval', 'exec', 'compile', 'open', '__import__', 'getattr', 'setattr', 'delattr', 'globals', 'locals', 'vars', 'input', 'breakpoint', 'help', 'exit', 'quit', 'apply', 'execfile']);

function isHostile(module: string, name: string): boolean {
  if (HOSTILE_MODULES.test(module)) return true;
  return (module === 'builtins' || module === '__builtin__') && HOSTILE_BUILTINS.has(name);
}

const asArray = (x: unknown, what: string): unknown[] => {
  if (Array.isArray(x)) return x;
  if (x instanceof Set) return [...x];
  throw new PickleError(`${what}: expected a sequence, got ${describe(x)}`);
};
const asInt = (x: unknown, what: string): number => {
  if (typeof x === 'number' && Number.isInteger(x)) return x;
  throw new PickleError(`${what}: expected an int, got ${describe(x)}`);
};
function describe(x: unknown): string {
  if (x === null) return 'None';
  if (Array.isArray(x)) return 'a sequence';
  if (x instanceof PyGlobal) return `global ${x.name}`;
  return typeof x === 'object' ? (x.constructor?.name ?? 'a dict') : typeof x;
}

function fromIterable(args: unknown[], what: string): unknown[] {
  return args.length === 0 ? [] : asArray(args[0], what);
}

/** The allow-list. Each entry reimplements the Python callable's effect as data construction. */
function allowed(o: UnpickleOptions): Map<string, (args: unknown[]) => unknown> {
  const dict = (args: unknown[]): PyDict => {
    const d = newDict();
    if (args.length && isDict(args[0])) Object.assign(d, args[0]);
    else for (const kv of fromIterable(args, 'dict()')) { const [k, v] = asArray(kv, 'dict() item'); d[keyOf(k)] = v; }
    return d;
  };
  const rebuild = (args: unknown[]): unknown => {
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args.length < 4) throw new PickleError(`_rebuild_tensor_v2 expects at least 4 arguments, got ${args.length}`);
    const ints = (x: unknown, what: string) => asArray(x, what).map((n) => asInt(n, what));
    const ref = new TensorRef(args[0], asInt(args[1], 'tensor storage offset'), ints(args[2], 'tensor size'), ints(args[3], 'tensor stride'), args[4] === true);
    return o.rebuildTensor ? o.rebuildTensor(ref) : ref;
  };
  const m = new Map<string, (args: unknown[]) => unknown>([
    ['collections.OrderedDict', dict],
    ['collections.defaultdict', () => newDict()], // the default factory is dropped: data only
    ['builtins.dict', dict],
    ['builtins.list', (a) => [...fromIterable(a, 'list()')]],
    ['builtins.tuple', (a) => [...fromIterable(a, 'tuple()')]],
    ['builtins.set', (a) => new Set(fromIterable(a, 'set()'))],
    ['builtins.frozenset', (a) => new Set(fromIterable(a, 'frozenset()'))],
    ['builtins.bytearray', (a) => (a.length === 0 ? new Uint8Array() : a[0] instanceof Uint8Array ? a[0].slice() : Uint8Array.from(asArray(a[0], 'bytearray()') as number[]))],
    ['builtins.slice', (a) => ({ slice: a })],
    ['builtins.complex', (a) => ({ real: a[0] ?? 0, imag: a[1] ?? 0 })],
    // Protocol 2 pickles Python 3 bytes as _codecs.encode(text, 'latin1').
    ['_codecs.encode', (a) => {
      if (typeof a[0] !== 'string' || (a[1] !== 'latin1' && a[1] !== 'latin-1')) throw new PickleError('_codecs.encode is allowed only as latin1 bytes');
      return Uint8Array.from(a[0], (c) => c.charCodeAt(0));
    }],
    ['torch._utils._rebuild_tensor_v2', rebuild],
    ['torch._utils._rebuild_tensor', (a) => rebuild([a[0], a[1], a[2], a[3], false])],
    // Parameters are plain tensors here; requires_grad and hooks are training-time state.
    ['torch._utils._rebuild_parameter', (a) => a[0]],
    ['torch._utils._rebuild_parameter_with_state', (a) => a[0]],
    ['torch.Size', (a) => [...fromIterable(a, 'torch.Size')]],
  ]);
  return m;
}

/** Bytes to read a pickle from: an in-memory buffer, or a file read in windows (see FileSource in torchckpt). */
export interface ByteSource {
  /** Absolute position of the next byte. */
  readonly pos: number;
  /** The next n bytes (valid until the next call); throws at end of data. */
  take(n: number): Uint8Array;
}

export class BufferSource implements ByteSource {
  pos = 0;
  constructor(private readonly buf: Uint8Array, private readonly what = 'pickle') {}
  take(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new PickleError(`${this.what} data ends unexpectedly at byte ${this.buf.length} (wanted ${n} more at ${this.pos}): truncated`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

const MARK = Symbol('mark');
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Little-endian two's-complement integer of any length (LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Python's repr-style string literal from protocol 0 STRING ('…' or "…" with escapes). */
function unquote(s: string): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q) throw new PickleError(`STRING argument is not quoted: ${s.slice(0, 40)}`);
  return unescapeText(s.slice(1, -1));
}
function unescapeText(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[\\'"nrt0])/g, (_, e: string) => {
    switch (e[0]) {
      case 'x': case 'u': case 'U': return String.fromCodePoint(parseInt(e.slice(1), 16));
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case '0': return '\0';
      default: return e;
    }
  });
}

/**
 * Reads one pickle (up to its STOP) from `src` and returns the object. The source is left just past
 * STOP, so consecutive pickles (torch's legacy format) can be read one after another.
 */
export function unpickle(src: ByteSource | Uint8Array, o: UnpickleOptions = {}): unknown {
  const s = src instanceof Uint8Array ? new BufferSource(src) : src;
  const globals = allowed(o);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const u8 = () => s.take(1)[0]!;
  const u16 = () => dv(s.take(2)).getUint16(0, true);
  const u32 = () => dv(s.take(4)).getUint32(0, true);
  const u64 = () => {
    const v = dv(s.take(8)).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError(`length ${v} is out of range`);
    return Number(v);
  };
  const line = (): string => {
    let out = '';
    for (;;) {
      const c = u8();
      if (c === 0x0a) return out;
      out += String.fromCharCode(c);
      if (out.length > 1 << 20) throw new PickleError('text argument longer than 1 MiB');
    }
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) throw new PickleError('stack underflow: the pickle is malformed');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleError('stack underflow: the pickle is malformed');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw new PickleError('MARK expected on the stack: the pickle is malformed');
    return stack.splice(m);
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      throw new PickleError('string is not valid UTF-8');
    }
  };

  const resolve = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    const fn = globals.get(full) ?? (module === '__builtin__' ? globals.get(`builtins.${name}`) : undefined);
    if (fn) return new PyGlobal(full, fn);
    if (isHostile(module, name)) throw new PickleError(`refusing to unpickle ${full}: it can execute code, so this file is unsafe to load`);
    if (!o.skipUnknown) throw new PickleError(`refusing to unpickle ${full}: not on the allow-list of safe globals (pass skipUnknown to load the file with a placeholder in its place)`);
    o.onUnknownGlobal?.(full);
    return new PyGlobal(full, undefined);
  };
  const storageCache = new Map<string, StorageType>();
  // Storage classes are data (a dtype tag for the persistent id), not callables.
  const pushGlobal = (module: string, name: string): void => {
    if (module === 'torch' && STORAGES[name]) {
      let t = storageCache.get(name);
      if (!t) storageCache.set(name, (t = new StorageType(`torch.${name}`, STORAGES[name]!)));
      stack.push(t);
      return;
    }
    stack.push(resolve(module, name));
  };
  const call = (callee: unknown, args: unknown, what: string): unknown => {
    const a = asArray(args, `${what} arguments`);
    if (callee instanceof PyGlobal) return callee.call ? callee.call(a) : new PickledObject(callee.name, a);
    if (callee instanceof StorageType) throw new PickleError(`${what}: cannot instantiate ${callee.name} inside a pickle`);
    throw new PickleError(`${what}: ${describe(callee)} is not callable`);
  };
  const setItems = (d: unknown, kv: unknown[]): void => {
    if (kv.length % 2) throw new PickleError('SETITEMS with an odd number of items');
    if (isDict(d)) for (let i = 0; i < kv.length; i += 2) d[keyOf(kv[i])] = kv[i + 1];
    else if (d instanceof PickledObject) {
      const items = (d.state ??= newDict()) as PyDict; // dict subclasses of unknown type keep their items here
      for (let i = 0; i < kv.length; i += 2) items[keyOf(kv[i])] = kv[i + 1];
    } else throw new PickleError(`SETITEM on ${describe(d)}`);
  };
  const append = (l: unknown, items: unknown[]): void => {
    if (Array.isArray(l)) l.push(...items);
    else if (l instanceof PickledObject) ((l.state ??= []) as unknown[]).push(...items);
    else throw new PickleError(`APPEND on ${describe(l)}`);
  };
  const persistent = (pid: unknown): void => {
    if (!o.persistentLoad) throw new PickleError('the pickle refers to external data (a persistent id) but no loader was given');
    stack.push(o.persistentLoad(pid));
  };

  for (;;) {
    const code = u8();
    switch (code) {
      case 0x80: { const v = u8(); if (v > 5) throw new PickleError(`unsupported pickle protocol ${v}`); break; } // PROTO
      case 0x95: u64(); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) throw new PickleError(`STOP with ${stack.length} objects on the stack: the pickle is malformed`);
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x31: popMark(); break; // POP_MARK
      case 0x30: pop(); break; // POP
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(dv(s.take(4)).getInt32(0, true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(decodeLong(s.take(u8()).slice())); break; // LONG1
      case 0x8b: { // LONG4
        const n = dv(s.take(4)).getInt32(0, true);
        if (n < 0) throw new PickleError('LONG4 with a negative length');
        stack.push(decodeLong(s.take(n).slice()));
        break;
      }
      case 0x49: { // INT (protocol 0); "01"/"00" are True/False
        const t = line();
        if (t === '01' || t === '00') stack.push(t === '01');
        else { if (!/^[-+]?\d+$/.test(t)) throw new PickleError(`INT argument '${t}' is not an integer`); const b = BigInt(t); stack.push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b); }
        break;
      }
      case 0x4c: { // LONG (protocol 0)
        const t = line().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(t)) throw new PickleError(`LONG argument '${t}' is not an integer`);
        const b = BigInt(t);
        stack.push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
        break;
      }
      case 0x47: stack.push(dv(s.take(8)).getFloat64(0, false)); break; // BINFLOAT (big-endian)
      case 0x46: { // FLOAT (protocol 0): Python's repr, including inf and nan
        const t = line().trim();
        const f = /^[-+]?inf$/i.test(t) ? (t.startsWith('-') ? -Infinity : Infinity) : /^[-+]?nan$/i.test(t) ? NaN : t === '' ? NaN : Number(t);
        if (Number.isNaN(f) && !/nan/i.test(t)) throw new PickleError(`FLOAT argument '${t}' is not a number`);
        stack.push(f);
        break;
      }
      case 0x58: stack.push(str(s.take(u32()))); break; // BINUNICODE
      case 0x8c: stack.push(str(s.take(u8()))); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(s.take(u64()))); break; // BINUNICODE8
      case 0x56: stack.push(unescapeText(line())); break; // UNICODE (raw-unicode-escape)
      case 0x53: stack.push(unquote(line())); break; // STRING
      case 0x54: { const n = dv(s.take(4)).getInt32(0, true); if (n < 0) throw new PickleError('BINSTRING with a negative length'); stack.push(latin1.decode(s.take(n))); break; }
      case 0x55: stack.push(latin1.decode(s.take(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(s.take(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(s.take(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: case 0x96: stack.push(s.take(u64()).slice()); break; // BINBYTES8, BYTEARRAY8
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(), a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(newDict()); break; // EMPTY_DICT
      case 0x64: { const d = newDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { const items = popMark(); const set = top(); if (!(set instanceof Set)) throw new PickleError(`ADDITEMS on ${describe(set)}`); for (const x of items) set.add(x); break; }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x67: { const i = Number(line()); if (!memo.has(i)) throw new PickleError(`GET of unknown memo entry ${i}`); stack.push(memo.get(i)); break; }
      case 0x68: case 0x6a: { const i = code === 0x68 ? u8() : u32(); if (!memo.has(i)) throw new PickleError(`GET of unknown memo entry ${i}`); stack.push(memo.get(i)); break; }
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x63: { const module = line(); pushGlobal(module, line()); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL expects two strings');
        pushGlobal(module, name);
        break;
      }
      case 0x52: { const args = pop(), fn = pop(); stack.push(call(fn, args, 'REDUCE')); break; } // REDUCE
      case 0x81: { const args = pop(), cls = pop(); stack.push(call(cls, args, 'NEWOBJ')); break; } // NEWOBJ
      case 0x92: { pop(); const args = pop(), cls = pop(); stack.push(call(cls, args, 'NEWOBJ_EX')); break; } // NEWOBJ_EX (kwargs dropped)
      case 0x69: { // INST: module, name lines; args from the mark
        const module = line(), name = line();
        const args = popMark();
        pushGlobal(module, name);
        stack.push(call(stack.pop(), args, 'INST'));
        break;
      }
      case 0x6f: { const items = popMark(); if (!items.length) throw new PickleError('OBJ without a class'); stack.push(call(items[0], items.slice(1), 'OBJ')); break; }
      case 0x62: { // BUILD: placeholders keep their state; a dict's attributes go beside its items
        const state = pop();
        const obj = top();
        if (obj instanceof PickledObject) obj.state = state;
        else if (isDict(obj)) Object.defineProperty(obj, PY_ATTRS, { value: state, enumerable: false, configurable: true });
        else throw new PickleError(`BUILD on ${describe(obj)} is not supported`);
        break;
      }
      case 0x51: persistent(pop()); break; // BINPERSID
      case 0x50: persistent(line()); break; // PERSID
      case 0x82: case 0x83: case 0x84: throw new PickleError('refusing to unpickle an extension-registry reference (EXT1/2/4)');
      case 0x97: case 0x98: throw new PickleError('out-of-band buffers (protocol 5) are not supported');
      default: throw new PickleError(`unknown pickle opcode 0x${code.toString(16).padStart(2, '0')} at byte ${s.pos - 1}: the data is corrupt or not a pickle`);
    }
  }
}
