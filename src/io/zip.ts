/**
 * A minimal ZIP reader for PyTorch checkpoints (torch.save since 1.6 writes a zip via miniz).
 *
 * - Reads the central directory only: torch sets the data-descriptor flag and leaves the local
 *   headers' sizes at zero, so they cannot be trusted for sizes.
 * - Entries are "stored" (torch never compresses); deflate is supported through node:zlib for
 *   archives re-zipped by other tools. Zip64 records and extra fields are honoured (torch writes a
 *   zip64 end record always, and zip64 extras for entries or offsets past 4 GiB).
 * - Works on a file descriptor: entries can be read straight into caller memory (e.g. a tensor's),
 *   so a multi-GiB checkpoint is never held twice.
 * - Every offset and size is checked against the file before use; errors name the file.
 */
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

/** The largest expansion deflate can encode (258-byte matches in ≈2 bits). */
const DEFLATE_MAX_RATIO = 1032;

export class ZipError extends Error {
  constructor(readonly path: string, readonly problem: string) {
    super(`zip archive ${path}: ${problem}`);
    this.name = 'ZipError';
  }
}

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Where the entry's (compressed) bytes start in the file. */
  dataOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (the zip/PNG polynomial); pass the previous value to continue over several chunks. */
export function crc32(data: Uint8Array, prev = 0): number {
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** A JS number from a 64-bit little-endian field, refusing values past 2^53. */
function u64(view: DataView, at: number, path: string, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(path, `${what} ${v} is out of range`);
  return Number(v);
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  readonly size: number;
  private fd: number | undefined;

  private constructor(readonly path: string, fd: number) {
    this.fd = fd;
    this.size = fstatSync(fd).size;
  }

  /** Opens and indexes an archive; the caller closes it (or uses `using`). */
  static open(path: string): ZipReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new ZipError(path, `cannot open (${(e as Error).message})`);
    }
    const z = new ZipReader(path, fd);
    try {
      z.index();
    } catch (e) {
      z.close();
      throw e;
    }
    return z;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
  [Symbol.dispose](): void { this.close(); }

  /** The entry, or a ZipError naming what is missing. */
  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new ZipError(this.path, `has no entry '${name}'`);
    return e;
  }

  /** An entry's bytes (a fresh array). */
  read(name: string, o: { verifyCrc?: boolean } = {}): Uint8Array {
    const e = this.entry(name);
    const out = new Uint8Array(e.size);
    this.readInto(name, out, o);
    return out;
  }

  /** Reads an entry into `dst`, which must be exactly the entry's size; stored entries go there directly. */
  readInto(name: string, dst: Uint8Array, o: { verifyCrc?: boolean } = {}): void {
    const e = this.entry(name);
    if (dst.length !== e.size) throw new ZipError(this.path, `entry '${name}' holds ${e.size} bytes, the destination ${dst.length}`);
    if (e.method === 0) {
      this.readAt(e.dataOffset, dst, `entry '${name}'`);
    } else {
      const raw = this.readAt(e.dataOffset, new Uint8Array(e.compressedSize), `entry '${name}'`);
      let out: Uint8Array;
      try {
        out = inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
      } catch (err) {
        throw new ZipError(this.path, `entry '${name}': deflate data is corrupt (${(err as Error).message})`);
      }
      if (out.length !== e.size) throw new ZipError(this.path, `entry '${name}' inflates to ${out.length} bytes, expected ${e.size}`);
      dst.set(out);
    }
    if ((o.verifyCrc ?? true) && crc32(dst) !== e.crc32) {
      throw new ZipError(this.path, `entry '${name}' fails its CRC-32 check: the file is corrupt`);
    }
  }

  private readAt(position: number, dst: Uint8Array, what: string): Uint8Array {
    if (this.fd === undefined) throw new ZipError(this.path, 'is closed');
    if (position + dst.length > this.size) {
      throw new ZipError(this.path, `${what} needs bytes ${position}..${position + dst.length} but the file has ${this.size}: truncated`);
    }
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.fd, dst, done, dst.length - done, position + done);
      if (n === 0) throw new ZipError(this.path, `${what}: the file ended after ${position + done} bytes (truncated)`);
      done += n;
    }
    return dst;
  }

  /** Finds the end records, then walks the central directory. */
  private index(): void {
    const { path, size } = this;
    if (size < 22) throw new ZipError(path, `is ${size} bytes, too short to be a zip archive (truncated?)`);
    // The end record sits in the last 22 + 65535 (max comment) bytes; search backwards.
    const tailLen = Math.min(size, 22 + U16_MAX);
    const tail = this.readAt(size - tailLen, new Uint8Array(tailLen), 'end of file');
    const tv = new DataView(tail.buffer);
    let at = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) { at = i; break; }
    }
    if (at < 0) throw new ZipError(path, 'has no end-of-central-directory record: the file is truncated or not a zip archive');
    const eocdPos = size - tailLen + at;
    let count = tv.getUint16(at + 10, true);
    let cdSize = tv.getUint32(at + 12, true);
    let cdOffset = tv.getUint32(at + 16, true);
    if (tv.getUint16(at + 4, true) !== 0 || tv.getUint16(at + 6, true) !== 0) throw new ZipError(path, 'is a multi-disk archive (unsupported)');
    let cdEnd = eocdPos;
    // Zip64: a locator right before the end record points at the zip64 end record.
    if (at >= 20 && tv.getUint32(at - 20, true) === SIG_EOCD64_LOCATOR) {
      const recPos = u64(tv, at - 20 + 8, path, 'zip64 end record offset');
      if (recPos + 56 > eocdPos - 20) throw new ZipError(path, `zip64 end record offset ${recPos} is outside the file`);
      const rec = new DataView(this.readAt(recPos, new Uint8Array(56), 'zip64 end record').buffer);
      if (rec.getUint32(0, true) !== SIG_EOCD64) throw new ZipError(path, `no zip64 end record at offset ${recPos}`);
      count = u64(rec, 32, path, 'entry count');
      cdSize = u64(rec, 40, path, 'central directory size');
      cdOffset = u64(rec, 48, path, 'central directory offset');
      cdEnd = recPos;
    } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      throw new ZipError(path, 'end record asks for zip64 but there is no zip64 locator');
    }
    if (cdOffset + cdSize > cdEnd) {
      throw new ZipError(path, `central directory (${cdSize} bytes at ${cdOffset}) runs past its end records at ${cdEnd}: truncated or corrupt`);
    }
    const cd = this.readAt(cdOffset, new Uint8Array(cdSize), 'central directory');
    const v = new DataView(cd.buffer);
    const utf8 = new TextDecoder('utf-8');
    const latin1 = new TextDecoder('latin1');
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) throw new ZipError(path, `central directory entry ${i} is malformed`);
      const flags = v.getUint16(p + 8, true);
      const method = v.getUint16(p + 10, true);
      const crc = v.getUint32(p + 16, true);
      let compressedSize = v.getUint32(p + 20, true);
      let size = v.getUint32(p + 24, true);
      const nameLen = v.getUint16(p + 28, true), extraLen = v.getUint16(p + 30, true), commentLen = v.getUint16(p + 32, true);
      let local = v.getUint32(p + 42, true);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cdSize) throw new ZipError(path, `central directory entry ${i} runs past the directory`);
      const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
      const name = (flags & 0x800 ? utf8 : latin1).decode(nameBytes);
      // Zip64 extra (id 1): the 64-bit values of exactly those fields that are 0xFFFFFFFF, in this order.
      for (let q = p + 46 + nameLen; q + 4 <= p + 46 + nameLen + extraLen;) {
        const id = v.getUint16(q, true), len = v.getUint16(q + 2, true);
        if (q + 4 + len > p + 46 + nameLen + extraLen) throw new ZipError(path, `entry '${name}' has a malformed extra field`);
        if (id === 1) {
          let r = q + 4;
          const next = (what: string): number => {
            if (r + 8 > q + 4 + len) throw new ZipError(path, `entry '${name}': zip64 extra field lacks the ${what}`);
            const x = u64(v, r, path, `entry '${name}' ${what}`);
            r += 8;
            return x;
          };
          if (size === U32_MAX) size = next('size');
          if (compressedSize === U32_MAX) compressedSize = next('compressed size');
          if (local === U32_MAX) local = next('local header offset');
        }
        q += 4 + len;
      }
      p = end;
      if (flags & 1) throw new ZipError(path, `entry '${name}' is encrypted (unsupported)`);
      if (method !== 0 && method !== 8) throw new ZipError(path, `entry '${name}' uses compression method ${method} (only stored and deflate are supported)`);
      if (method === 0 && compressedSize !== size) throw new ZipError(path, `stored entry '${name}' has compressed size ${compressedSize} ≠ size ${size}`);
      // deflate expands at most 1032:1, so a larger declared size is a lie (a zip bomb), refused before allocating it
      if (method === 8 && size > compressedSize * DEFLATE_MAX_RATIO + 64) {
        throw new ZipError(path, `entry '${name}' declares ${size} bytes from ${compressedSize} compressed, more than deflate can expand to`);
      }
      if (this.entries.has(name)) throw new ZipError(path, `entry '${name}' appears twice`);
      // The local header repeats the name; the data follows it and must end before the central directory.
      if (local + 30 > cdOffset) throw new ZipError(path, `entry '${name}': local header offset ${local} is past the central directory`);
      const lh = new DataView(this.readAt(local, new Uint8Array(30), `local header of '${name}'`).buffer);
      if (lh.getUint32(0, true) !== SIG_LOCAL) throw new ZipError(path, `entry '${name}': no local header at offset ${local}`);
      const lNameLen = lh.getUint16(26, true), lExtraLen = lh.getUint16(28, true);
      const lName = this.readAt(local + 30, new Uint8Array(lNameLen), `local header of '${name}'`);
      if (lNameLen !== nameLen || !lName.every((b, j) => b === nameBytes[j])) throw new ZipError(path, `entry '${name}': local header names a different file`);
      const dataOffset = local + 30 + lNameLen + lExtraLen;
      if (dataOffset + compressedSize > cdOffset) {
        throw new ZipError(path, `entry '${name}' (${compressedSize} bytes at ${dataOffset}) overlaps the central directory at ${cdOffset}`);
      }
      this.entries.set(name, { name, method, compressedSize, size, crc32: crc, dataOffset });
    }
  }
}
