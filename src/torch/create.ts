/** Creating tensors: from JS data, constants, ranges and random draws. */
import { native } from './native.js';
import { type DType, dtypeCode, dtypeOfArray, BYTES } from './dtype.js';
import { Tensor, op, wrap, type Device } from './tensor.js';
import { currentGenerator as gen } from './random.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

const A = {
  zeros: op('aten::zeros'), ones: op('aten::ones'), full: op('aten::full'), empty: op('aten::empty.memory_format'),
  arange: op('aten::arange.start_step'), linspace: op('aten::linspace'), eye: op('aten::eye'),
  randn: op('aten::randn.generator'), rand: op('aten::rand.generator'), randint: op('aten::randint.low_generator'),
  randperm: op('aten::randperm.generator'),
};

let defaultDevice: Device = 'cpu';

/**
 * Runs fn with `device` as the default of every creation function here (PyTorch's
 * `torch.set_default_device` for one scope): a module built inside lives on that device from the
 * start — no CPU copy of a large model first, and `meta` builds one with shapes but no memory.
 */
export function onDevice<R>(device: Device, fn: () => R): R {
  const prev = defaultDevice;
  defaultDevice = device;
  try {
    return fn();
  } finally {
    defaultDevice = prev;
  }
}

/** The device creation functions use when none is given (see onDevice). */
export const currentDevice = (): Device => defaultDevice;

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad_(true);
  return t;
}
const dt = (o: CreateOptions, fallback: DType = 'float32'): number => dtypeCode(o.dtype ?? fallback);

type NestedNumbers = number | boolean | NestedNumbers[];

function inferShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as NestedNumbers;
  }
  return shape;
}

/**
 * A tensor from JS data (copied): a typed array with a shape, or nested arrays of numbers.
 * Nested arrays default to float32; typed arrays keep their own type unless dtype is given.
 */
export function tensor(data: ArrayBufferView | NestedNumbers, shapeOrOpts?: readonly number[] | CreateOptions, maybeOpts: CreateOptions = {}): Tensor {
  const opts = Array.isArray(shapeOrOpts) || shapeOrOpts === undefined ? maybeOpts : (shapeOrOpts as CreateOptions);
  let shape = Array.isArray(shapeOrOpts) ? [...(shapeOrOpts as readonly number[])] : undefined;
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const own = dtypeOfArray(data);
    shape ??= [data.byteLength / BYTES[own]];
    const n = shape.reduce((a, b) => a * b, 1);
    if (n * BYTES[own] !== data.byteLength) {
      throw new RangeError(`tensor(): shape [${shape.join(', ')}] needs ${n} elements but the array has ${data.byteLength / BYTES[own]}`);
    }
    t = wrap(native.fromData(data, dtypeCode(own), shape));
    if (opts.dtype && opts.dtype !== own) t = t.to(opts.dtype);
  } else {
    const flat = [data].flat(Infinity as 1) as (number | boolean)[];
    const inferred = inferShape(data);
    shape ??= inferred;
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== flat.length) throw new RangeError(`tensor(): shape [${shape.join(', ')}] needs ${n} elements, data has ${flat.length} (ragged nested arrays are not allowed)`);
    const f64 = Float64Array.from(flat, Number);
    t = wrap(native.fromData(f64, dtypeCode('float64'), shape)).to(opts.dtype ?? 'float32');
  }
  const device = opts.device ?? defaultDevice;
  if (device !== 'cpu') t = t.to(device);
  return finish(t, opts);
}

export const zeros = (shape: readonly number[], o: CreateOptions = {}): Tensor => finish(wrap(A.zeros([...shape], dt(o), undefined, o.device ?? defaultDevice)), o);
export const ones = (shape: readonly number[], o: CreateOptions = {}): Tensor => finish(wrap(A.ones([...shape], dt(o), undefined, o.device ?? defaultDevice)), o);
export const full = (shape: readonly number[], value: number, o: CreateOptions = {}): Tensor =>
  finish(wrap(A.full([...shape], value, dt(o), undefined, o.device ?? defaultDevice)), o);
export const empty = (shape: readonly number[], o: CreateOptions = {}): Tensor => finish(wrap(A.empty([...shape], dt(o), undefined, o.device ?? defaultDevice)), o);
/** [start, end) by step; int64 unless dtype is given or any bound is fractional. */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const integral = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return finish(wrap(A.arange(start, end, step, dt(o, integral ? 'int64' : 'float32'), undefined, o.device ?? defaultDevice)), o);
}
export const linspace = (start: number, end: number, steps: number, o: CreateOptions = {}): Tensor =>
  finish(wrap(A.linspace(start, end, steps, dt(o), undefined, o.device ?? defaultDevice)), o);
export const eye = (n: number, o: CreateOptions = {}): Tensor => finish(wrap(A.eye(n, dt(o), undefined, o.device ?? defaultDevice)), o);
// Random draws come from the withGenerator scope's generator, else the global one (manualSeed). A
// scope's generator is a CPU generator: on another device the draw is made on the CPU and moved, so
// a seed gives the same numbers on every device.
function draw(device: Device | undefined, fn: (device: Device) => Tensor): Tensor {
  const d = device ?? defaultDevice;
  if (d === 'cpu' || !gen()) return fn(d);
  const t = fn('cpu');
  const moved = t.to(d);
  t.dispose();
  return moved;
}
/** Standard normal draws. */
export const randn = (shape: readonly number[], o: CreateOptions = {}): Tensor =>
  finish(draw(o.device, (d) => wrap(A.randn([...shape], gen(), dt(o), undefined, d))), o);
/** Uniform draws in [0, 1). */
export const rand = (shape: readonly number[], o: CreateOptions = {}): Tensor =>
  finish(draw(o.device, (d) => wrap(A.rand([...shape], gen(), dt(o), undefined, d))), o);
/** Integers uniform in [low, high). */
export const randint = (low: number, high: number, shape: readonly number[], o: CreateOptions = {}): Tensor =>
  draw(o.device, (d) => wrap(A.randint(low, high, [...shape], gen(), dt(o, 'int64'), undefined, d)));
export const randperm = (n: number, o: CreateOptions = {}): Tensor => draw(o.device, (d) => wrap(A.randperm(n, gen(), dt(o, 'int64'), undefined, d)));

export const zerosLike = (t: Tensor, o: CreateOptions = {}): Tensor => zeros(t.shape, { dtype: t.dtype, device: t.device, ...o });
export const onesLike = (t: Tensor, o: CreateOptions = {}): Tensor => ones(t.shape, { dtype: t.dtype, device: t.device, ...o });
export const fullLike = (t: Tensor, v: number, o: CreateOptions = {}): Tensor => full(t.shape, v, { dtype: t.dtype, device: t.device, ...o });
export const randnLike = (t: Tensor): Tensor => randn(t.shape, { dtype: t.dtype, device: t.device });
export const randLike = (t: Tensor): Tensor => rand(t.shape, { dtype: t.dtype, device: t.device });
