/**
 * Output files of a command, planned before the work and written atomically after it.
 *
 * An `OutputPlan` is told the files a run reads (inputs, models, manifests) and then every file it
 * will write. Each output is checked when it is added, before any work starts:
 * - its extension matches what is written there (`--out x.jpg` for a PNG is refused, not mislabelled);
 * - it is not one of the run's inputs, models or manifests, nor another output of the same run
 *   (compared by resolved path and, for existing files, by device and inode, so links count too);
 * - an existing file is replaced only with `force` (the CLI's `--force`);
 * - its folder can be written: it is created when missing, and a probe file is made and removed in it,
 *   so a read-only folder, a full disk or a path through a file fail now, with the system's reason.
 * `write` then puts the bytes in a temporary file in the same folder, fsyncs it and renames it over
 * the target, so a crash or a full disk never leaves a half-written file under the output's name.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';

/** A bad output path: the CLI reports it as a usage error (exit 2). */
export class OutputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputError';
  }
}

/** What a file holds, and the extensions that name it. */
export const FORMATS = {
  png: ['.png'],
  json: ['.json'],
  safetensors: ['.safetensors'],
} as const;
export type OutputFormat = keyof typeof FORMATS;

/** The system's reason for a failed file operation, in words. */
export function describeFsError(e: unknown): string {
  const code = (e as { code?: string }).code;
  switch (code) {
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    case 'ENOSPC': return 'no space left on the device';
    case 'EDQUOT': return 'disk quota exceeded';
    case 'ENOTDIR': case 'EEXIST': return 'a part of the path is a file, not a folder';
    case 'EISDIR': return 'it is a folder';
    case 'ENOENT': return 'no such file or folder';
    case 'ENAMETOOLONG': return 'the name is too long';
    default: return (e as Error).message;
  }
}

interface Identity { path: string; dev?: number; ino?: number }

function identify(path: string): Identity {
  const p = resolve(path);
  try {
    const s = statSync(p);
    return { path: p, dev: s.dev, ino: s.ino };
  } catch {
    return { path: p };
  }
}

const same = (a: Identity, b: Identity) => a.path === b.path || (a.ino !== undefined && a.dev === b.dev && a.ino === b.ino);

export interface OutputPlanOptions {
  /** Replace existing outputs (else an existing output is an error). */
  force?: boolean;
}

export class OutputPlan {
  private readonly protectedFiles: { id: Identity; role: string }[] = [];
  private readonly outputs: Identity[] = [];
  private readonly force: boolean;

  constructor(o: OutputPlanOptions = {}) {
    this.force = o.force ?? false;
  }

  /** Files the run reads (`role` says what they are in messages: 'input image', 'model', 'manifest'). */
  protect(role: string, ...paths: (string | null | undefined)[]): this {
    for (const p of paths) if (p) this.protectedFiles.push({ id: identify(p), role });
    return this;
  }

  /** Checks and registers an output; `flag` names where the path came from (e.g. '--out'). Returns the path. */
  add(path: string, format: OutputFormat, flag = '--out'): string {
    const where = `${flag} ${path}`;
    if (path.trim() === '' || path.endsWith('/')) throw new OutputError(`${where}: expected a file name`);
    const ext = extname(path).toLowerCase();
    const allowed: readonly string[] = FORMATS[format];
    if (!allowed.includes(ext)) {
      throw new OutputError(`${where}: this writes ${format.toUpperCase()}, so the name must end in ${allowed.join(' or ')}${ext ? ` (not ${ext})` : ''}`);
    }
    const id = identify(path);
    const clash = this.protectedFiles.find((f) => same(f.id, id));
    if (clash) throw new OutputError(`${where}: that is the ${clash.role} of this run; it would be overwritten, so nothing was done`);
    if (this.outputs.some((o) => same(o, id))) throw new OutputError(`${where}: the run writes two files to this path`);
    if (id.ino !== undefined) {
      if (statSync(id.path).isDirectory()) throw new OutputError(`${where}: it is a folder, expected a file name`);
      if (!this.force) throw new OutputError(`${where} exists: pass --force to replace it`);
    }
    this.probeFolder(dirname(id.path), where);
    this.outputs.push(id);
    return path;
  }

  /** Creates the folder when missing and proves it writable with a probe file. */
  private probeFolder(dir: string, where: string): void {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new OutputError(`${where}: cannot create the folder ${dir} (${describeFsError(e)})`);
    }
    const probe = join(dir, `.imagebart-probe-${process.pid}`);
    try {
      closeSync(openSync(probe, 'wx'));
      unlinkSync(probe);
    } catch (e) {
      throw new OutputError(`${where}: cannot write in the folder ${dir} (${describeFsError(e)})`);
    }
  }

  /** Whether `path` was added to this plan. */
  has(path: string): boolean {
    const id = identify(path);
    return this.outputs.some((o) => same(o, id));
  }

  /** Writes a planned output atomically (temporary file in the same folder, fsync, rename). */
  write(path: string, data: string | Uint8Array): void {
    if (!this.has(path)) throw new Error(`OutputPlan.write: ${path} was not planned`);
    writeAtomic(path, data);
  }
}

/** The temporary name next to `path` that an atomic write goes through. */
export const temporaryPath = (path: string): string => join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);

/** Writes `data` to `path` through a temporary file in the same folder (fsync, then rename); removes it on failure. */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  mkdirSync(dirname(resolve(path)), { recursive: true });
  const tmp = temporaryPath(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) try { closeSync(fd); } catch { /* already closed */ }
    if (existsSync(tmp)) try { unlinkSync(tmp); } catch { /* nothing to remove */ }
    throw new Error(`cannot write ${path} (${describeFsError(e)}); it was left as it was`);
  }
}
