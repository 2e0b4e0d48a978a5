/**
 * Test-only writers: a pickle assembler, a zip writer, and torch.save-shaped checkpoints built from
 * them (zip and legacy). They let the tests cover layouts the official fixtures do not contain
 * (strided and offset views, shared storages, big-endian data, deflate, zip64, protocol 0/4 opcodes).
 */
import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/io/zip.js';

/** Emits pickle opcodes; every method returns this. */
export class P {
  private readonly parts: Uint8Array[] = [];
  raw(...bytes: (number | Uint8Array)[]): this {
    for (const b of bytes) this.parts.push(typeof b === 'number' ? Uint8Array.of(b) : b);
    return this;
  }
  text(s: string): this { return this.raw(new TextEncoder().encode(s)); }
  proto(v = 2): this { return this.raw(0x80, v); }
  mark(): this { return this.raw(0x28); }
  none(): this { return this.raw(0x4e); }
  bool(b: boolean): this { return this.raw(b ? 0x88 : 0x89); }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) { const b = new Uint8Array(4); new DataView(b.buffer).setInt32(0, n, true); return this.raw(0x4a, b); }
    return this.long(BigInt(n));
  }
  long(n: bigint): this {
    // Minimal little-endian two's complement (Python's encode_long); 0 is zero bytes.
    const bytes: number[] = [];
    for (let v = n; n !== 0n;) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
      const neg = (bytes[bytes.length - 1]! & 0x80) !== 0;
      if ((v === 0n && !neg) || (v === -1n && neg)) break;
    }
    return this.raw(0x8a, bytes.length, Uint8Array.from(bytes));
  }
  float(x: number): this { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, x, false); return this.raw(0x47, b); }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, b.length, true);
    return this.raw(0x58, n, b);
  }
  global(module: string, name: string): this { return this.raw(0x63).text(`${module}\n${name}\n`); }
  tuple(): this { return this.raw(0x74); }
  emptyTuple(): this { return this.raw(0x29); }
  ints(ns: number[]): this { this.mark(); ns.forEach((n) => this.int(n)); return this.tuple(); }
  emptyDict(): this { return this.raw(0x7d); }
  emptyList(): this { return this.raw(0x5d); }
  setitems(): this { return this.raw(0x75); }
  appends(): this { return this.raw(0x65); }
  reduce(): this { return this.raw(0x52); }
  build(): this { return this.raw(0x62); }
  newobj(): this { return this.raw(0x81); }
  binpersid(): this { return this.raw(0x51); }
  put(i: number): this { return this.raw(0x71, i); }
  get(i: number): this { return this.raw(0x68, i); }
  stop(): this { return this.raw(0x2e); }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

/** A tensor as torch pickles it: _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()). */
export function pickleTensor(p: P, t: { type: string; key: string; numel: number; offset: number; size: number[]; stride: number[] }, legacy: boolean): P {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', t.type).str(t.key).str('cpu').int(t.numel);
  if (legacy) p.none();
  p.tuple().binpersid();
  p.int(t.offset).ints(t.size).ints(t.stride).bool(false);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  return p.tuple().reduce();
}

export interface SyntheticTensor { name: string; type: string; key: string; numel: number; offset: number; size: number[]; stride: number[] }

/**
 * The main pickle: {'epoch': 7, 'state_dict': OrderedDict(name → tensor …)}, the OrderedDict carrying
 * the `_metadata` attribute that `module.state_dict()` sets (pickled with BUILD after the items).
 */
export function checkpointPickle(tensors: SyntheticTensor[], legacy: boolean): Uint8Array {
  const p = new P().proto().emptyDict().mark().str('epoch').int(7).str('state_dict');
  p.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const t of tensors) pickleTensor(p.str(t.name), t, legacy);
  p.setitems();
  p.emptyDict().mark().str('_metadata').global('collections', 'OrderedDict').emptyTuple().reduce()
    .mark().str('').emptyDict().mark().str('version').int(1).setitems().setitems().setitems().build();
  return p.setitems().stop().bytes();
}

export interface ZipInput { name: string; data: Uint8Array; deflate?: boolean }

/** A zip archive as torch/miniz writes it (stored), optionally deflated entries and zip64 records everywhere. */
export function zipBytes(entries: ZipInput[], o: { zip64?: boolean } = {}): Uint8Array {
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  const z64 = o.zip64 ?? false;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf-8');
    const body = e.deflate ? deflateRawSync(e.data) : Buffer.from(e.data);
    const crc = crc32(e.data);
    const extraLocal = z64 ? Buffer.alloc(20) : Buffer.alloc(0);
    if (z64) { extraLocal.writeUInt16LE(1, 0); extraLocal.writeUInt16LE(16, 2); extraLocal.writeBigUInt64LE(BigInt(e.data.length), 4); extraLocal.writeBigUInt64LE(BigInt(body.length), 12); }
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(z64 ? 45 : 20, 4); lh.writeUInt16LE(0x800, 6); lh.writeUInt16LE(e.deflate ? 8 : 0, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(z64 ? 0xffffffff : body.length, 18); lh.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 22);
    lh.writeUInt16LE(name.length, 26); lh.writeUInt16LE(extraLocal.length, 28);
    const extraCentral = z64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (z64) {
      extraCentral.writeUInt16LE(1, 0); extraCentral.writeUInt16LE(24, 2);
      extraCentral.writeBigUInt64LE(BigInt(e.data.length), 4); extraCentral.writeBigUInt64LE(BigInt(body.length), 12); extraCentral.writeBigUInt64LE(BigInt(offset), 20);
    }
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(45, 4); ch.writeUInt16LE(z64 ? 45 : 20, 6); ch.writeUInt16LE(0x800, 8); ch.writeUInt16LE(e.deflate ? 8 : 0, 10);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(z64 ? 0xffffffff : body.length, 20); ch.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 24);
    ch.writeUInt16LE(name.length, 28); ch.writeUInt16LE(extraCentral.length, 30);
    ch.writeUInt32LE(z64 ? 0xffffffff : offset, 42);
    central.push(ch, name, extraCentral);
    chunks.push(lh, name, extraLocal, body);
    offset += lh.length + name.length + extraLocal.length + body.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  const tail: Buffer[] = [cd];
  if (z64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0); rec.writeBigUInt64LE(44n, 4); rec.writeUInt16LE(45, 12); rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24); rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40); rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0); loc.writeBigUInt64LE(BigInt(offset + cd.length), 8); loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
    eocd.writeUInt16LE(0xffff, 8); eocd.writeUInt16LE(0xffff, 10); eocd.writeUInt32LE(0xffffffff, 12); eocd.writeUInt32LE(0xffffffff, 16);
  } else {
    eocd.writeUInt16LE(entries.length, 8); eocd.writeUInt16LE(entries.length, 10); eocd.writeUInt32LE(cd.length, 12); eocd.writeUInt32LE(offset, 16);
  }
  return new Uint8Array(Buffer.concat([...chunks, ...tail, eocd]));
}

const le64 = (n: number): Uint8Array => { const b = new Uint8Array(8); new DataView(b.buffer).setBigInt64(0, BigInt(n), true); return b; };

/** The legacy (non-zip) torch.save layout: magic, protocol, sys_info, object, key list, then each storage as count + data. */
export function legacyBytes(main: Uint8Array, storages: { key: string; numel: number; data: Uint8Array }[]): Uint8Array {
  const magic = new P().proto().long(0x1950a86a20f9469cfc6cn).stop().bytes();
  const version = new P().proto().int(1001).stop().bytes();
  const sysInfo = new P().proto().emptyDict().mark().str('protocol_version').int(1001).str('little_endian').bool(true).setitems().stop().bytes();
  const sorted = [...storages].sort((a, b) => (a.key < b.key ? -1 : 1));
  const keys = new P().proto().emptyList().mark();
  sorted.forEach((s) => keys.str(s.key));
  const parts = [magic, version, sysInfo, main, keys.appends().stop().bytes()];
  for (const s of sorted) parts.push(le64(s.numel), s.data);
  return new P().raw(...parts).bytes();
}
