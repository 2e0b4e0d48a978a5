/**
 * A user's own folder of PNG/JPEG images as a dataset.
 *
 * All images are decoded and resized when the folder is opened: that is the only way to know
 * the dataset size without lying, and it lets a corrupt file be reported up front (by path, in
 * `skipped`) instead of crashing a training run hours later.
 *
 * Optional captions: `captions.json` ({"relative/path.png": "caption"}) or `captions.txt`
 * (`relative/path.png<TAB>caption` lines). Labels: when every image sits in a first-level
 * subfolder, the subfolder names are the classes (the torchvision ImageFolder convention).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { ImageDataset, Sample } from './dataset.js';
import { decodeImage, resizeTo, toCHW } from './image.js';

export interface FolderOptions {
  /** Default 32. */
  resolution?: number;
  /** Default 3. */
  channels?: 1 | 3;
  /** Called once per skipped image or captions problem. */
  onWarn?: (message: string) => void;
}

export interface SkippedFile {
  path: string;
  error: string;
}

export interface FolderDataset extends ImageDataset {
  /** Paths of the images, relative to the folder with '/' separators, in dataset order. */
  readonly files: readonly string[];
  readonly skipped: readonly SkippedFile[];
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/** Image files under `root`, recursively, as sorted '/'-separated relative paths (dotfiles skipped). */
export function listImages(root: string, onError?: (path: string, error: string) => void): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (dir === root || !onError) throw err;
      onError(dir, `cannot read folder: ${(err as Error).message}`);
      return;
    }
    for (const ent of entries) {
      if (ent.name.startsWith('.')) continue;
      const full = join(dir, ent.name);
      if (ent.isDirectory()) walk(full);
      else if (IMAGE_EXT.test(ent.name) && (ent.isFile() || (ent.isSymbolicLink() && statSync(full, { throwIfNoEntry: false })?.isFile()))) {
        out.push(relative(root, full).split(sep).join('/'));
      }
    }
  };
  walk(root);
  return out.sort();
}

/** Read `captions.json` or `captions.txt` from `root`, if present. */
export function readCaptions(root: string): Map<string, string> | undefined {
  const jsonPath = join(root, 'captions.json');
  const txtPath = join(root, 'captions.txt');
  if (existsSync(jsonPath)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(jsonPath, 'utf8'));
    } catch (err) {
      throw new Error(`${jsonPath}: invalid JSON: ${(err as Error).message}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error(`${jsonPath}: expected an object mapping relative image path to caption`);
    }
    const map = new Map<string, string>();
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new Error(`${jsonPath}: caption for "${k}" is not a string`);
      map.set(k.replace(/\\/g, '/').replace(/^\.\//, ''), v);
    }
    return map;
  }
  if (existsSync(txtPath)) {
    const map = new Map<string, string>();
    readFileSync(txtPath, 'utf8').split(/\r?\n/).forEach((line, n) => {
      if (line.trim() === '') return;
      const tab = line.indexOf('\t');
      if (tab < 0) throw new Error(`${txtPath}:${n + 1}: expected "relative/path<TAB>caption"`);
      map.set(line.slice(0, tab).trim().replace(/\\/g, '/').replace(/^\.\//, ''), line.slice(tab + 1).trim());
    });
    return map;
  }
  return undefined;
}

export function loadFolder(root: string, options: FolderOptions = {}): FolderDataset {
  const { resolution = 32, channels = 3, onWarn } = options;
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`${root}: not a folder`);
  const captions = readCaptions(root);
  const files: string[] = [];
  const pixels: Uint8Array[] = [];
  const skipped: SkippedFile[] = [];
  const skip = (path: string, error: string) => {
    skipped.push({ path, error });
    onWarn?.(`skipping ${path}: ${error}`);
  };
  for (const rel of listImages(root, skip)) {
    const path = join(root, rel);
    try {
      pixels.push(resizeTo(decodeImage(readFileSync(path), path), resolution).rgba);
      files.push(rel);
    } catch (err) {
      const msg = (err as Error).message;
      skip(path, msg.startsWith(path) ? msg.slice(path.length).replace(/^:\s*/, '') : msg);
    }
  }
  if (captions) {
    const have = new Set(files);
    for (const k of captions.keys()) if (!have.has(k)) onWarn?.(`${root}: caption for "${k}" matches no loaded image`);
  }

  // Class labels from first-level subfolders, only when that structure is unambiguous.
  const dirs = files.map((f) => (f.includes('/') ? f.slice(0, f.indexOf('/')) : undefined));
  const labelled = files.length > 0 && dirs.every((d) => d !== undefined);
  const classes = labelled ? [...new Set(dirs as string[])].sort() : undefined;
  const labels = classes ? dirs.map((d) => classes.indexOf(d as string)) : undefined;
  const name = `folder:${basename(root)}`;
  return {
    name, size: files.length, channels, resolution, classes, files, skipped,
    get(i: number): Sample {
      if (!(Number.isInteger(i) && i >= 0 && i < files.length)) throw new RangeError(`${name}: index ${i} out of range 0..${files.length - 1}`);
      const s: Sample = { image: toCHW({ width: resolution, height: resolution, rgba: pixels[i] }, channels) };
      if (labels) s.label = labels[i];
      const c = captions?.get(files[i]);
      if (c !== undefined) s.caption = c;
      return s;
    },
  };
}
