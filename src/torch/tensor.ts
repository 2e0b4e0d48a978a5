/**
 * `Tensor`: an idiomatic TypeScript face over one libtorch tensor.
 *
 * - Every operation calls an ATen operator through the dispatcher (native/ops.cc), so autograd,
 *   autocast and CUDA work exactly as in PyTorch. Operator names are PyTorch's (`aten::add.Tensor`).
 * - Methods never mutate unless their name ends in `_` (PyTorch's convention); those return `this`.
 * - Numbers are accepted where PyTorch accepts a Scalar; integral numbers are integer scalars.
 * - Memory: `dispose()` / `using` / `tidy()` free deterministically; the GC is the fallback.
 */
import { native, type NativeHandle } from './native.js';
import { type DType, type TypedArray, dtypeCode, dtypeName, dtypeOfArray, viewAs, isDType } from './dtype.js';
import { track, setScopeObserver } from './scope.js';
import { currentGenerator } from './random.js';

setScopeObserver((open) => native.setAccounting(!open));

export type Operand = Tensor | number;
export type Device = string;

let checkDevices = process.env.IMAGEBART_CHECK_DEVICES === '1';

/**
 * Debug mode: every operator call first checks that its tensor inputs share one device (0-dim CPU
 * tensors excepted, as PyTorch allows), so a tensor created on the wrong device fails at the call
 * that mixes it in, naming the operator — also on devices whose kernels would not check (`meta`).
 * Off by default; `IMAGEBART_CHECK_DEVICES=1` turns it on for a whole process.
 */
export function setDeviceCheck(on: boolean): boolean {
  const prev = checkDevices;
  checkDevices = on;
  return prev;
}

function assertOneDevice(q: string, args: unknown[]): void {
  const seen = new Set<string>();
  const visit = (a: unknown): void => {
    if (Array.isArray(a)) a.forEach(visit);
    else if (a !== null && typeof a === 'object' && !ArrayBuffer.isView(a) && !(a instanceof ArrayBuffer)) {
      const h = a as NativeHandle;
      const device = native.device(h);
      if (!(device === 'cpu' && native.shape(h).length === 0)) seen.add(device);
    }
  };
  args.forEach(visit);
  if (seen.size > 1) throw new Error(`${q}: tensor inputs on different devices (${[...seen].join(', ')})`);
}

/** Resolves an ATen operator once, on first use. `q` is `aten::name` or `aten::name.overload`. */
export function op(q: string): (...args: unknown[]) => unknown {
  const [name, overload = ''] = q.split(/\.(?=[^:]*$)/) as [string, string?];
  let id = -1;
  return (...args) => {
    if (checkDevices) assertOneDevice(q, args);
    return native.callOp(id >= 0 ? id : (id = native.opHandle(name, overload)), ...args);
  };
}

/** Wraps what an operator returned: a handle, an array of handles, or a plain value. */
export function wrap(h: unknown): Tensor {
  if (h === undefined) throw new Error('operator returned no tensor');
  return new Tensor(h as NativeHandle);
}
const wrapAll = (hs: unknown): Tensor[] => (hs as NativeHandle[]).map((h) => new Tensor(h));
const H = (t: Tensor | undefined | null): NativeHandle | undefined => (t == null ? undefined : t.h);
const dims = (d: number | readonly number[] | undefined): number[] | undefined => (d === undefined ? undefined : typeof d === 'number' ? [d] : [...d]);

const A = {
  add: op('aten::add.Tensor'), addS: op('aten::add.Scalar'), sub: op('aten::sub.Tensor'), subS: op('aten::sub.Scalar'),
  rsubS: op('aten::rsub.Scalar'), mul: op('aten::mul.Tensor'), mulS: op('aten::mul.Scalar'), div: op('aten::div.Tensor'),
  divS: op('aten::div.Scalar'), divMode: op('aten::div.Tensor_mode'), divModeS: op('aten::div.Scalar_mode'), pow: op('aten::pow.Tensor_Tensor'), powS: op('aten::pow.Tensor_Scalar'),
  remainder: op('aten::remainder.Tensor'), remainderS: op('aten::remainder.Scalar'),
  maximum: op('aten::maximum'), minimum: op('aten::minimum'),
  eq: op('aten::eq.Tensor'), eqS: op('aten::eq.Scalar'), ne: op('aten::ne.Tensor'), neS: op('aten::ne.Scalar'),
  lt: op('aten::lt.Tensor'), ltS: op('aten::lt.Scalar'), le: op('aten::le.Tensor'), leS: op('aten::le.Scalar'),
  gt: op('aten::gt.Tensor'), gtS: op('aten::gt.Scalar'), ge: op('aten::ge.Tensor'), geS: op('aten::ge.Scalar'),
  logicalAnd: op('aten::logical_and'), logicalOr: op('aten::logical_or'), logicalNot: op('aten::logical_not'),
  neg: op('aten::neg'), exp: op('aten::exp'), log: op('aten::log'), log1p: op('aten::log1p'), sqrt: op('aten::sqrt'),
  rsqrt: op('aten::rsqrt'), abs: op('aten::abs'), sin: op('aten::sin'), cos: op('aten::cos'), tanh: op('aten::tanh'),
  sigmoid: op('aten::sigmoid'), relu: op('aten::relu'), gelu: op('aten::gelu'), silu: op('aten::silu'),
  leakyRelu: op('aten::leaky_relu'), square: op('aten::square'), reciprocal: op('aten::reciprocal'), floor: op('aten::floor'),
  ceil: op('aten::ceil'), round: op('aten::round'), sign: op('aten::sign'), erf: op('aten::erf'), softplus: op('aten::softplus'),
  clamp: op('aten::clamp'), isnan: op('aten::isnan'), isfinite: op('aten::isfinite'),
  sumAll: op('aten::sum'), sum: op('aten::sum.dim_IntList'), meanAll: op('aten::mean'), mean: op('aten::mean.dim'),
  prod: op('aten::prod.dim_int'), maxAll: op('aten::max'), maxDim: op('aten::max.dim'), minAll: op('aten::min'),
  minDim: op('aten::min.dim'), amax: op('aten::amax'), amin: op('aten::amin'), argmax: op('aten::argmax'), argmin: op('aten::argmin'),
  var: op('aten::var.correction'), std: op('aten::std.correction'), norm: op('aten::linalg_vector_norm'),
  logsumexp: op('aten::logsumexp'), all: op('aten::all'), allDim: op('aten::all.dim'), any: op('aten::any'), anyDim: op('aten::any.dim'),
  cumsum: op('aten::cumsum'), cumprod: op('aten::cumprod'),
  matmul: op('aten::matmul'), mm: op('aten::mm'), bmm: op('aten::bmm'), linear: op('aten::linear'),
  softmax: op('aten::softmax.int'), logSoftmax: op('aten::log_softmax.int'),
  view: op('aten::view'), reshape: op('aten::reshape'), permute: op('aten::permute'), transpose: op('aten::transpose.int'),
  contiguous: op('aten::contiguous'), flatten: op('aten::flatten.using_ints'), unsqueeze: op('aten::unsqueeze'),
  squeezeDim: op('aten::squeeze.dim'), squeeze: op('aten::squeeze'), expand: op('aten::expand'), repeat: op('aten::repeat'),
  narrow: op('aten::narrow'), slice: op('aten::slice.Tensor'), select: op('aten::select.int'), index: op('aten::index.Tensor'),
  indexPut: op('aten::index_put'), indexPut_: op('aten::index_put_'),
  gather: op('aten::gather'), scatter: op('aten::scatter.src'), scatterValue: op('aten::scatter.value'), scatterAdd: op('aten::scatter_add'),
  indexSelect: op('aten::index_select'), maskedFill: op('aten::masked_fill.Scalar'), maskedFillT: op('aten::masked_fill.Tensor'),
  oneHot: op('aten::one_hot'), flip: op('aten::flip'), roll: op('aten::roll'), tril: op('aten::tril'), triu: op('aten::triu'),
  clone: op('aten::clone'), detach: op('aten::detach'), toDtype: op('aten::to.dtype'), toDevice: op('aten::to.device'),
  split: op('aten::split.Tensor'), splitSizes: op('aten::split_with_sizes'), chunk: op('aten::chunk'), unbind: op('aten::unbind.int'),
  topk: op('aten::topk'), sort: op('aten::sort'), argsort: op('aten::argsort'), multinomial: op('aten::multinomial'),
  // in place
  add_: op('aten::add_.Tensor'), addS_: op('aten::add_.Scalar'), mul_: op('aten::mul_.Tensor'), mulS_: op('aten::mul_.Scalar'),
  sub_: op('aten::sub_.Tensor'), div_: op('aten::div_.Tensor'), divS_: op('aten::div_.Scalar'), zero_: op('aten::zero_'),
  fill_: op('aten::fill_.Scalar'), copy_: op('aten::copy_'), clamp_: op('aten::clamp_'), addcmul_: op('aten::addcmul_'),
  addcdiv_: op('aten::addcdiv_'), lerp_: op('aten::lerp_.Scalar'), uniform_: op('aten::uniform_'), normal_: op('aten::normal_'),
  maskedFill_: op('aten::masked_fill_.Scalar'), sqrt_: op('aten::sqrt_'), clampMin_: op('aten::clamp_min_'),
};

export class Tensor {
  /** Set by keep(): tidy() leaves this tensor alone. */
  kept = false;

  constructor(readonly h: NativeHandle) {
    track(this);
  }

  // ---- metadata ----
  get shape(): number[] { return native.shape(this.h); }
  get dtype(): DType { return dtypeName(native.dtype(this.h)); }
  get device(): Device { return native.device(this.h); }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  /** Size along one dimension (negative counts from the end). */
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? s.length + dim : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`dimension ${dim} out of range for a ${s.length}-d tensor`);
    return s[d]!;
  }
  toString(): string { return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device})`; }

  // ---- data out ----
  /** A typed array copy of the data (float16/bfloat16 as raw bits: convert with `.float()` first). */
  toArray(): TypedArray { return viewAs(this.dtype, native.toData(this.h)); }
  /** Data as float32, whatever the dtype. */
  toFloat32Array(): Float32Array {
    const t = this.dtype === 'float32' ? this : this.to('float32');
    const a = new Float32Array(native.toData(t.h));
    if (t !== this) t.dispose();
    return a;
  }
  /** Data as numbers (int64 converted; exact below 2^53). */
  toNumbers(): number[] {
    const a = this.toArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  item(): number { return Number(native.item(this.h)); }
  /** An ArrayBuffer over this tensor's own memory (CPU, contiguous): writes change the tensor. */
  mapData(): ArrayBuffer { return native.mapData(this.h); }

  // ---- lifetime ----
  dispose(): void { native.dispose(this.h); }
  [Symbol.dispose](): void { this.dispose(); }
  get disposed(): boolean { return native.isDisposed(this.h); }
  /** Exempts this tensor from the enclosing tidy() scope. */
  keep(): this { this.kept = true; return this; }
  /** Reports this tensor's size to the garbage collector (it outlives every tidy scope). */
  escape(): void { native.account(this.h); }

  // ---- autograd ----
  get requiresGrad(): boolean { return native.requiresGrad(this.h); }
  requiresGrad_(value = true): this { native.setRequiresGrad(this.h, value); return this; }
  get isLeaf(): boolean { return native.isLeaf(this.h); }
  get grad(): Tensor | undefined { const g = native.grad(this.h); return g === undefined ? undefined : new Tensor(g); }
  set grad(g: Tensor | undefined) { native.setGrad(this.h, g?.h); }
  backward(grad?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward([this.h], grad ? [grad.h] : undefined, opts.retainGraph ?? false, opts.createGraph ?? false);
  }
  detach(): Tensor { return wrap(A.detach(this.h)); }
  /** Replaces this tensor's data with src's (PyTorch's `t.data = src`); identity and grad flag are kept. */
  setData_(src: Tensor): this { native.setData(this.h, src.h); return this; }

  // ---- conversion ----
  to(target: DType | Device, opts: { copy?: boolean } = {}): Tensor {
    if (isDType(target)) return wrap(A.toDtype(this.h, dtypeCode(target), false, opts.copy ?? false));
    return wrap(A.toDevice(this.h, target, native.dtype(this.h), false, opts.copy ?? false));
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  int(): Tensor { return this.to('int32'); }
  bool(): Tensor { return this.to('bool'); }
  clone(): Tensor { return wrap(A.clone(this.h)); }
  contiguous(): Tensor { return wrap(A.contiguous(this.h)); }

  // ---- elementwise arithmetic (broadcasting) ----
  add(o: Operand, alpha = 1): Tensor { return wrap(typeof o === 'number' ? A.addS(this.h, o, alpha) : A.add(this.h, o.h, alpha)); }
  sub(o: Operand, alpha = 1): Tensor { return wrap(typeof o === 'number' ? A.subS(this.h, o, alpha) : A.sub(this.h, o.h, alpha)); }
  /** o - this */
  rsub(o: number): Tensor { return wrap(A.rsubS(this.h, o)); }
  mul(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.mulS(this.h, o) : A.mul(this.h, o.h)); }
  div(o: Operand, roundingMode?: 'trunc' | 'floor'): Tensor {
    if (roundingMode) return wrap(typeof o === 'number' ? A.divModeS(this.h, o, roundingMode) : A.divMode(this.h, o.h, roundingMode));
    return wrap(typeof o === 'number' ? A.divS(this.h, o) : A.div(this.h, o.h));
  }
  pow(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.powS(this.h, o) : A.pow(this.h, o.h)); }
  remainder(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.remainderS(this.h, o) : A.remainder(this.h, o.h)); }
  maximum(o: Tensor): Tensor { return wrap(A.maximum(this.h, o.h)); }
  minimum(o: Tensor): Tensor { return wrap(A.minimum(this.h, o.h)); }
  clamp(min?: number, max?: number): Tensor { return wrap(A.clamp(this.h, min, max)); }

  // ---- comparisons (bool results) ----
  eq(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.eqS(this.h, o) : A.eq(this.h, o.h)); }
  ne(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.neS(this.h, o) : A.ne(this.h, o.h)); }
  lt(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.ltS(this.h, o) : A.lt(this.h, o.h)); }
  le(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.leS(this.h, o) : A.le(this.h, o.h)); }
  gt(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.gtS(this.h, o) : A.gt(this.h, o.h)); }
  ge(o: Operand): Tensor { return wrap(typeof o === 'number' ? A.geS(this.h, o) : A.ge(this.h, o.h)); }
  logicalAnd(o: Tensor): Tensor { return wrap(A.logicalAnd(this.h, o.h)); }
  logicalOr(o: Tensor): Tensor { return wrap(A.logicalOr(this.h, o.h)); }
  logicalNot(): Tensor { return wrap(A.logicalNot(this.h)); }
  isnan(): Tensor { return wrap(A.isnan(this.h)); }
  isfinite(): Tensor { return wrap(A.isfinite(this.h)); }

  // ---- unary ----
  neg(): Tensor { return wrap(A.neg(this.h)); }
  exp(): Tensor { return wrap(A.exp(this.h)); }
  log(): Tensor { return wrap(A.log(this.h)); }
  log1p(): Tensor { return wrap(A.log1p(this.h)); }
  sqrt(): Tensor { return wrap(A.sqrt(this.h)); }
  rsqrt(): Tensor { return wrap(A.rsqrt(this.h)); }
  abs(): Tensor { return wrap(A.abs(this.h)); }
  sin(): Tensor { return wrap(A.sin(this.h)); }
  cos(): Tensor { return wrap(A.cos(this.h)); }
  tanh(): Tensor { return wrap(A.tanh(this.h)); }
  sigmoid(): Tensor { return wrap(A.sigmoid(this.h)); }
  relu(): Tensor { return wrap(A.relu(this.h)); }
  /** GELU, exact (erf) by default as in the official transformers; 'tanh' for the approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return wrap(A.gelu(this.h, approximate)); }
  silu(): Tensor { return wrap(A.silu(this.h)); }
  leakyRelu(slope = 0.01): Tensor { return wrap(A.leakyRelu(this.h, slope)); }
  softplus(beta = 1, threshold = 20): Tensor { return wrap(A.softplus(this.h, beta, threshold)); }
  square(): Tensor { return wrap(A.square(this.h)); }
  reciprocal(): Tensor { return wrap(A.reciprocal(this.h)); }
  floor(): Tensor { return wrap(A.floor(this.h)); }
  ceil(): Tensor { return wrap(A.ceil(this.h)); }
  round(): Tensor { return wrap(A.round(this.h)); }
  sign(): Tensor { return wrap(A.sign(this.h)); }
  erf(): Tensor { return wrap(A.erf(this.h)); }

  // ---- reductions ----
  sum(dim?: number | readonly number[], keepdim = false, dtype?: DType): Tensor {
    const dt = dtype === undefined ? undefined : dtypeCode(dtype);
    return wrap(dim === undefined ? A.sumAll(this.h, dt) : A.sum(this.h, dims(dim), keepdim, dt));
  }
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return wrap(dim === undefined ? A.meanAll(this.h) : A.mean(this.h, dims(dim), keepdim));
  }
  prod(dim: number, keepdim = false): Tensor { return wrap(A.prod(this.h, dim, keepdim)); }
  /** Largest element; with dim, [values, indices] along it. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? wrap(A.maxAll(this.h)) : (wrapAll(A.maxDim(this.h, dim, keepdim)) as [Tensor, Tensor]);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? wrap(A.minAll(this.h)) : (wrapAll(A.minDim(this.h, dim, keepdim)) as [Tensor, Tensor]);
  }
  amax(dim: number | readonly number[], keepdim = false): Tensor { return wrap(A.amax(this.h, dims(dim), keepdim)); }
  amin(dim: number | readonly number[], keepdim = false): Tensor { return wrap(A.amin(this.h, dims(dim), keepdim)); }
  argmax(dim?: number, keepdim = false): Tensor { return wrap(A.argmax(this.h, dim, keepdim)); }
  argmin(dim?: number, keepdim = false): Tensor { return wrap(A.argmin(this.h, dim, keepdim)); }
  /** Variance with Bessel's correction by default (correction = 1), as PyTorch. */
  var(dim?: number | readonly number[], keepdim = false, correction = 1): Tensor { return wrap(A.var(this.h, dims(dim), correction, keepdim)); }
  std(dim?: number | readonly number[], keepdim = false, correction = 1): Tensor { return wrap(A.std(this.h, dims(dim), correction, keepdim)); }
  /** Vector p-norm over dims (all elements by default). */
  norm(p = 2, dim?: number | readonly number[], keepdim = false): Tensor { return wrap(A.norm(this.h, p, dims(dim), keepdim)); }
  logsumexp(dim: number | readonly number[], keepdim = false): Tensor { return wrap(A.logsumexp(this.h, dims(dim), keepdim)); }
  all(dim?: number, keepdim = false): Tensor { return wrap(dim === undefined ? A.all(this.h) : A.allDim(this.h, dim, keepdim)); }
  any(dim?: number, keepdim = false): Tensor { return wrap(dim === undefined ? A.any(this.h) : A.anyDim(this.h, dim, keepdim)); }
  cumsum(dim: number): Tensor { return wrap(A.cumsum(this.h, dim)); }
  cumprod(dim: number): Tensor { return wrap(A.cumprod(this.h, dim)); }

  // ---- linear algebra ----
  matmul(o: Tensor): Tensor { return wrap(A.matmul(this.h, o.h)); }
  mm(o: Tensor): Tensor { return wrap(A.mm(this.h, o.h)); }
  bmm(o: Tensor): Tensor { return wrap(A.bmm(this.h, o.h)); }

  // ---- softmax family ----
  softmax(dim: number): Tensor { return wrap(A.softmax(this.h, dim)); }
  logSoftmax(dim: number): Tensor { return wrap(A.logSoftmax(this.h, dim)); }

  // ---- shape ----
  view(...shape: number[]): Tensor { return wrap(A.view(this.h, shape)); }
  reshape(...shape: number[]): Tensor { return wrap(A.reshape(this.h, shape)); }
  permute(...order: number[]): Tensor { return wrap(A.permute(this.h, order)); }
  transpose(d0: number, d1: number): Tensor { return wrap(A.transpose(this.h, d0, d1)); }
  flatten(start = 0, end = -1): Tensor { return wrap(A.flatten(this.h, start, end)); }
  unsqueeze(dim: number): Tensor { return wrap(A.unsqueeze(this.h, dim)); }
  squeeze(dim?: number): Tensor { return wrap(dim === undefined ? A.squeeze(this.h) : A.squeezeDim(this.h, dim)); }
  expand(...shape: number[]): Tensor { return wrap(A.expand(this.h, shape)); }
  repeat(...times: number[]): Tensor { return wrap(A.repeat(this.h, times)); }
  narrow(dim: number, start: number, length: number): Tensor { return wrap(A.narrow(this.h, dim, start, length)); }
  /** Python's t[..., start:end:step] along one dimension (a view). */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor { return wrap(A.slice(this.h, dim, start, end, step)); }
  /** t.select(dim, i) removes dimension dim (a view). */
  select(dim: number, index: number): Tensor { return wrap(A.select(this.h, dim, index)); }
  /** Advanced indexing, PyTorch's t[idx0, idx1, ...] with tensors (null skips a dimension). */
  index(indices: (Tensor | null)[]): Tensor { return wrap(A.index(this.h, indices.map(H))); }
  indexPut(indices: (Tensor | null)[], values: Tensor, accumulate = false): Tensor {
    return wrap(A.indexPut(this.h, indices.map(H), values.h, accumulate));
  }
  indexPut_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this {
    A.indexPut_(this.h, indices.map(H), values.h, accumulate);
    return this;
  }
  gather(dim: number, index: Tensor): Tensor { return wrap(A.gather(this.h, dim, index.h)); }
  scatter(dim: number, index: Tensor, src: Operand): Tensor {
    return wrap(typeof src === 'number' ? A.scatterValue(this.h, dim, index.h, src) : A.scatter(this.h, dim, index.h, src.h));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return wrap(A.scatterAdd(this.h, dim, index.h, src.h)); }
  indexSelect(dim: number, index: Tensor): Tensor { return wrap(A.indexSelect(this.h, dim, index.h)); }
  maskedFill(mask: Tensor, value: Operand): Tensor {
    return wrap(typeof value === 'number' ? A.maskedFill(this.h, mask.h, value) : A.maskedFillT(this.h, mask.h, value.h));
  }
  oneHot(numClasses = -1): Tensor { return wrap(A.oneHot(this.h, numClasses)); }
  flip(...d: number[]): Tensor { return wrap(A.flip(this.h, d)); }
  roll(shifts: number | number[], d: number | number[]): Tensor { return wrap(A.roll(this.h, dims(shifts), dims(d))); }
  tril(diagonal = 0): Tensor { return wrap(A.tril(this.h, diagonal)); }
  triu(diagonal = 0): Tensor { return wrap(A.triu(this.h, diagonal)); }
  /** Pieces of `size` along dim, or of the given sizes. */
  split(size: number | number[], dim = 0): Tensor[] {
    return wrapAll(typeof size === 'number' ? A.split(this.h, size, dim) : A.splitSizes(this.h, size, dim));
  }
  chunk(n: number, dim = 0): Tensor[] { return wrapAll(A.chunk(this.h, n, dim)); }
  unbind(dim = 0): Tensor[] { return wrapAll(A.unbind(this.h, dim)); }

  // ---- selection and sampling ----
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    return wrapAll(A.topk(this.h, k, dim, largest, sorted)) as [Tensor, Tensor];
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] { return wrapAll(A.sort(this.h, dim, descending)) as [Tensor, Tensor]; }
  argsort(dim = -1, descending = false): Tensor { return wrap(A.argsort(this.h, dim, descending)); }
  /** Samples indices from rows of non-negative weights (uses the global generator: see manualSeed). */
  /** Draws from the withGenerator scope's generator, else the global one (also uniform_, normal_). */
  multinomial(numSamples: number, replacement = false): Tensor {
    const g = currentGenerator();
    if (!g || this.device === 'cpu') return wrap(A.multinomial(this.h, numSamples, replacement, g));
    return this.onCpu((cpu) => wrap(A.multinomial(cpu.h, numSamples, replacement, g))); // a scope's generator is a CPU one
  }

  // ---- in place (PyTorch's trailing underscore) ----
  add_(o: Operand, alpha = 1): this { if (typeof o === 'number') A.addS_(this.h, o, alpha); else A.add_(this.h, o.h, alpha); return this; }
  sub_(o: Tensor, alpha = 1): this { A.sub_(this.h, o.h, alpha); return this; }
  mul_(o: Operand): this { if (typeof o === 'number') A.mulS_(this.h, o); else A.mul_(this.h, o.h); return this; }
  div_(o: Operand): this { if (typeof o === 'number') A.divS_(this.h, o); else A.div_(this.h, o.h); return this; }
  zero_(): this { A.zero_(this.h); return this; }
  fill_(v: number): this { A.fill_(this.h, v); return this; }
  copy_(src: Tensor): this { A.copy_(this.h, src.h); return this; }
  clamp_(min?: number, max?: number): this { A.clamp_(this.h, min, max); return this; }
  clampMin_(min: number): this { A.clampMin_(this.h, min); return this; }
  sqrt_(): this { A.sqrt_(this.h); return this; }
  /** this += value * a * b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this { A.addcmul_(this.h, a.h, b.h, value); return this; }
  /** this += value * a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this { A.addcdiv_(this.h, a.h, b.h, value); return this; }
  /** this += weight * (end - this) */
  lerp_(end: Tensor, weight: number): this { A.lerp_(this.h, end.h, weight); return this; }
  uniform_(from = 0, to = 1): this { return this.fill((h) => A.uniform_(h, from, to, currentGenerator())); }
  normal_(mean = 0, std = 1): this { return this.fill((h) => A.normal_(h, mean, std, currentGenerator())); }

  /** fn(this on the CPU), moved back to this tensor's device. */
  private onCpu(fn: (cpu: Tensor) => Tensor): Tensor {
    const cpu = this.to('cpu'), out = fn(cpu), back = out.to(this.device);
    cpu.dispose();
    out.dispose();
    return back;
  }

  /** An in-place random fill, made on the CPU when a scope's (CPU) generator draws for another device. */
  private fill(draw: (h: NativeHandle) => void): this {
    if (!currentGenerator() || this.device === 'cpu') {
      draw(this.h);
      return this;
    }
    const cpu = this.to('cpu');
    draw(cpu.h);
    this.copy_(cpu);
    cpu.dispose();
    return this;
  }
  maskedFill_(mask: Tensor, value: number): this { A.maskedFill_(this.h, mask.h, value); return this; }
}

/** True when the handle-level storage of a and b overlaps (a is a view of b or vice versa). */
export const sameStorage = (a: Tensor, b: Tensor): boolean => native.sameStorage(a.h, b.h);

export { dtypeOfArray };
