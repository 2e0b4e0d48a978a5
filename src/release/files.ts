/**
 * The data files of an official release, read as data: its YAML configs (the `yaml` parser, strict:
 * duplicate keys and stray text are errors, as PyYAML makes them), numpy `.npy` remap lists, and the
 * pickled (ᾱ, metric) curves of the custom schedules (through the safe unpickler: the numpy scalars
 * in them become bytes, never objects).
 */
import { readFileSync } from 'node:fs';
import { parse, YAMLParseError } from 'yaml';
import { unpickle, PickledObject } from '../io/index.js';
import type { MeasuredCurve } from '../diffusion/index.js';

export class ReleaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseError';
  }
}

function readBytes(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ReleaseError(`${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** A YAML file as plain data; a syntax error names the file, the line and the text there. */
export function readYaml(path: string): unknown {
  const text = readBytes(path, 'config').toString('utf-8');
  try {
    return parse(text, { uniqueKeys: true });
  } catch (e) {
    if (!(e instanceof YAMLParseError)) throw e;
    const line = e.linePos?.[0]?.line;
    const at = line === undefined ? '' : ` at line ${line} ('${text.split(/\r?\n/)[line - 1]?.trim() ?? ''}')`;
    throw new ReleaseError(`config ${path} is not valid YAML${at}: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}. The official loader (OmegaConf, PyYAML) rejects it too; remove the offending line to repair it`);
  }
}

/** A 1-d integer `.npy` (version 1–3, little-endian i8/i4) as numbers. */
export function readNpyInts(path: string): number[] {
  const b = readBytes(path, 'remap file');
  const bad = (why: string) => new ReleaseError(`remap file ${path}: ${why}`);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') throw bad('not a .npy file (no \\x93NUMPY magic)');
  const major = b[6]!;
  if (major < 1 || major > 3) throw bad(`unsupported .npy version ${major}`);
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  if (start > b.length) throw bad('truncated header');
  const header = b.toString(major === 3 ? 'utf-8' : 'latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1]?.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!descr || !fortran || !shape) throw bad(`unreadable header ${JSON.stringify(header.trim())}`);
  if (shape.length !== 1) throw bad(`expected a 1-d list of codes, got shape (${shape.join(', ')})`);
  const size = { '<i8': 8, '<i4': 4 }[descr];
  if (!size) throw bad(`expected little-endian int64 or int32 codes, got dtype '${descr}'`);
  const n = shape[0]!;
  if (b.length - start !== n * size) throw bad(`holds ${b.length - start} data bytes, but ${n} × ${descr} need ${n * size}: truncated or corrupt`);
  const view = new DataView(b.buffer, b.byteOffset + start, n * size);
  return Array.from({ length: n }, (_, i) => (size === 8 ? Number(view.getBigInt64(i * 8, true)) : view.getInt32(i * 4, true)));
}

/** A numpy float64 scalar pickled as `numpy.core.multiarray.scalar(dtype('f8'), bytes)` → number. */
function npFloat(x: unknown, what: string): number {
  if (typeof x === 'number') return x;
  if (x instanceof PickledObject && x.global === 'numpy.core.multiarray.scalar') {
    const [dtype, bytes] = x.args;
    const code = dtype instanceof PickledObject && dtype.global === 'numpy.dtype' ? dtype.args[0] : undefined;
    const order = dtype instanceof PickledObject && Array.isArray(dtype.state) ? dtype.state[1] : '<';
    if (code === 'f8' && order !== '>' && bytes instanceof Uint8Array && bytes.length === 8) return new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0, true);
  }
  throw new ReleaseError(`${what}: expected a float, got ${x instanceof PickledObject ? x.global : typeof x}`);
}

/**
 * The curve a custom schedule `<dataset>_<dist>_<metric>` reads from `<dataset>_schedule_vs_metric.p`:
 * `[dist].alphacum` and column 0 of `[dist][metric]`.
 */
export function readScheduleCurve(path: string, dist: string, metric: string): MeasuredCurve {
  const bytes = readBytes(path, 'schedule curve');
  const bad = (why: string) => new ReleaseError(`schedule curve ${path}: ${why}`);
  let root: unknown;
  try {
    root = unpickle(new Uint8Array(bytes), { skipUnknown: true });
  } catch (e) {
    throw bad((e as Error).message);
  }
  const table = (root as Record<string, Record<string, unknown>> | null)?.[dist];
  const a = table?.alphacum, m = table?.[metric];
  if (!Array.isArray(a) || !Array.isArray(m) || a.length !== m.length || a.length < 2) throw bad(`has no '${dist}' curves of alphacum and ${metric} of equal length`);
  return {
    alphacum: a.map((x, i) => npFloat(x, `${dist}.alphacum[${i}]`)),
    metric: m.map((row, i) => npFloat(Array.isArray(row) ? row[0] : row, `${dist}.${metric}[${i}]`)),
  };
}
