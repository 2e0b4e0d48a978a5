/**
 * `Module`: named parameters, buffers and child modules with PyTorch's state-dict key names.
 *
 * Subclasses register what they own in the constructor, in the order PyTorch would:
 *   this.weight = this.param('weight', init);            // key 'weight'
 *   this.block = this.module('block', new Block(...));   // keys 'block.*'
 * so that `stateDict()` keys equal the official checkpoint keys (`encoder.down.0.block.1.conv1.weight`).
 */
import { Tensor, noGrad, isFloating, isDType, type DType, type Device } from '../torch/index.js';

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export class StateDictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateDictError';
  }
}

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, { t: Tensor; persistent: boolean }>();
  private readonly _children = new Map<string, Module>();

  /** Registers a trainable parameter (requires grad, kept out of tidy scopes). */
  protected param(name: string, t: Tensor): Tensor {
    this.checkName(name);
    t.requiresGrad_(true).keep();
    this._params.set(name, t);
    return t;
  }

  /** Registers a buffer: state that is saved (if persistent) but not trained. */
  protected buffer(name: string, t: Tensor, persistent = true): Tensor {
    this.checkName(name);
    t.keep();
    this._buffers.set(name, { t, persistent });
    return t;
  }

  /** Replaces a registered buffer's tensor (e.g. a remap list of another length). */
  protected setBuffer(name: string, t: Tensor): Tensor {
    const b = this._buffers.get(name);
    if (!b) throw new Error(`no buffer '${name}'`);
    b.t = t.keep();
    return t;
  }

  protected module<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this._children.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (this._params.has(name) || this._buffers.has(name) || this._children.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is registered twice`);
    }
  }

  children(): [string, Module][] { return [...this._children.entries()]; }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this._children) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, p] of m._params) out.push([prefix ? `${prefix}.${n}` : n, p]);
    }
    return out;
  }

  parameters(): Tensor[] { return this.namedParameters().map(([, p]) => p); }

  namedBuffers(persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, b] of m._buffers) if (b.persistent || !persistentOnly) out.push([prefix ? `${prefix}.${n}` : n, b.t]);
    }
    return out;
  }

  /**
   * Moves or casts every parameter and buffer in place (PyTorch's module.to): the tensors keep
   * their identity, so optimisers and references stay valid. Casting applies to floating tensors only.
   */
  to(target: Device | DType): this {
    noGrad(() => {
      for (const t of [...this.parameters(), ...this.namedBuffers().map(([, b]) => b)]) {
        if (isDType(target) && !isFloating(t.dtype)) continue;
        const moved = t.to(target);
        t.setData_(moved);
        moved.dispose();
      }
    });
    return this;
  }

  /** Where the module's tensors live: its first parameter's (or buffer's) device; 'cpu' when it has none. */
  get device(): Device {
    const t = this.parameters()[0] ?? this.namedBuffers()[0]?.[1];
    return t?.device ?? 'cpu';
  }

  numParameters(): number { return this.parameters().reduce((a, p) => a + p.numel, 0); }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this { return this.train(false); }

  /** Parameters and persistent buffers by PyTorch key. The tensors are the module's own (not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers(true)]);
  }

  /**
   * Copies values into the module's tensors. Strict mode (default) rejects missing and
   * unexpected keys; a shape mismatch is always an error. Buffers whose length the module
   * cannot know in advance may be resized by overriding `resizeBuffer`.
   */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, o: { strict?: boolean } = {}): LoadResult {
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !own.has(k));
    if ((o.strict ?? true) && (missing.length || unexpected.length)) {
      const show = (ks: string[]) => ks.slice(0, 10).join(', ') + (ks.length > 10 ? `, … (${ks.length} in all)` : '');
      throw new StateDictError(
        `${this.constructor.name}.loadStateDict: ` +
          [missing.length ? `missing keys: ${show(missing)}` : '', unexpected.length ? `unexpected keys: ${show(unexpected)}` : '']
            .filter(Boolean).join('; ') + '. Check that the checkpoint matches the model configuration, or load with { strict: false }.',
      );
    }
    const mismatched: string[] = [];
    for (const [k, dst] of own) {
      const v = src.get(k);
      if (!v) continue;
      if (v.shape.join(',') !== dst.shape.join(',')) {
        if (!this.resizeBuffer(k, v)) mismatched.push(`${k}: checkpoint [${v.shape.join(', ')}] vs model [${dst.shape.join(', ')}]`);
      }
    }
    if (mismatched.length) throw new StateDictError(`${this.constructor.name}.loadStateDict: shape mismatch for ${mismatched.join('; ')}`);
    const now = this.stateDict();
    noGrad(() => {
      for (const [k, dst] of now) {
        const v = src.get(k);
        if (v) dst.copy_(v);
      }
    });
    return { missing, unexpected };
  }

  /** Hook for buffers whose size comes from the checkpoint; return true if handled. */
  protected resizeBuffer(_key: string, _value: Tensor): boolean {
    return false;
  }

  /** Locates the module that owns a dotted key and the key's last part. */
  protected owner(key: string): [Module, string] {
    const parts = key.split('.');
    let m: Module = this;
    for (const p of parts.slice(0, -1)) {
      const c = m._children.get(p);
      if (!c) throw new Error(`no module '${p}' in key '${key}'`);
      m = c;
    }
    return [m, parts[parts.length - 1]!];
  }

  /** Resizes a buffer anywhere below this module (used by resizeBuffer overrides). */
  protected replaceBuffer(key: string, value: Tensor): void {
    const [m, name] = this.owner(key);
    m.setBuffer(name, value.clone());
  }
}

/** An ordered list of modules, keyed '0', '1', … as PyTorch's nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }
  push(m: M): this {
    this.module(String(this.items.length), m);
    this.items.push(m);
    return this;
  }
  get length(): number { return this.items.length; }
  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new RangeError(`ModuleList index ${i} out of range (${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> { return this.items[Symbol.iterator](); }
}
