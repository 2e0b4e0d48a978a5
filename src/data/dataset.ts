/**
 * The one dataset interface every source implements, plus the engine-free plumbing around it:
 * seeded shuffling, batching into flat B*C*H*W arrays, subsets and train/val splits.
 *
 * Batches are plain Float32Arrays so the training loop decides when to copy to the device;
 * shuffling is seeded so a run (and a resumed run) sees the same order.
 */

/** One example. `image` is C*H*W float32 in [-1, 1]. */
export interface Sample {
  image: Float32Array;
  label?: number;
  caption?: string;
}

export interface ImageDataset {
  readonly name: string;
  readonly size: number;
  readonly channels: 1 | 3;
  /** Images are square: resolution × resolution. */
  readonly resolution: number;
  get(i: number): Sample;
  /** Names for `label` values, when the dataset is labelled. */
  readonly classes?: readonly string[];
}

export interface Batch {
  /** B*C*H*W float32 in [-1, 1]. */
  images: Float32Array;
  /** Present when any sample has a label; unlabelled samples get -1. */
  labels: Int32Array | undefined;
  /** Present when any sample has a caption; uncaptioned samples get ''. */
  captions: string[] | undefined;
  /** Dataset indices of the samples, so results can be traced back to files. */
  indices: Int32Array;
}

export interface BatchOptions {
  seed?: number;
  /** Default true. */
  shuffle?: boolean;
  /** Drop a final short batch (keeps batch shapes fixed for training). Default false. */
  dropLast?: boolean;
}

/** mulberry32: tiny, fast, good-enough 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seeded Fisher–Yates permutation of 0..n-1. */
export function permutation(n: number, seed: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rand = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = perm[i]; perm[i] = perm[j]; perm[j] = t;
  }
  return perm;
}

/** Gather samples `indices` of `ds` into one batch. */
export function collate(ds: ImageDataset, indices: ArrayLike<number>): Batch {
  const per = ds.channels * ds.resolution * ds.resolution;
  const B = indices.length;
  const images = new Float32Array(B * per);
  const labels = new Int32Array(B).fill(-1);
  const captions: string[] = new Array<string>(B).fill('');
  let anyLabel = false;
  let anyCaption = false;
  for (let b = 0; b < B; b++) {
    const s = ds.get(indices[b]);
    if (s.image.length !== per) {
      throw new Error(`${ds.name}[${indices[b]}]: image has ${s.image.length} values, expected ${ds.channels}x${ds.resolution}x${ds.resolution}`);
    }
    images.set(s.image, b * per);
    if (s.label !== undefined) { labels[b] = s.label; anyLabel = true; }
    if (s.caption !== undefined) { captions[b] = s.caption; anyCaption = true; }
  }
  return { images, labels: anyLabel ? labels : undefined, captions: anyCaption ? captions : undefined, indices: Int32Array.from(indices) };
}

/**
 * Iterate over one epoch in batches. For a new order each epoch pass a different seed
 * (e.g. `baseSeed + epoch`).
 */
export function* batches(ds: ImageDataset, batchSize: number, options: BatchOptions = {}): Generator<Batch> {
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`batches: batchSize must be a positive integer, got ${batchSize}`);
  const { seed = 0, shuffle = true, dropLast = false } = options;
  const order = shuffle ? permutation(ds.size, seed) : Int32Array.from({ length: ds.size }, (_, i) => i);
  for (let start = 0; start < ds.size; start += batchSize) {
    const end = Math.min(start + batchSize, ds.size);
    if (dropLast && end - start < batchSize) break;
    yield collate(ds, order.subarray(start, end));
  }
}

/** A view of `ds` restricted to `indices` (no copying of pixels). */
export function subset(ds: ImageDataset, indices: ArrayLike<number>, name = `${ds.name}[subset]`): ImageDataset {
  const idx = Int32Array.from(indices);
  for (const i of idx) {
    if (i < 0 || i >= ds.size) throw new Error(`subset of ${ds.name}: index ${i} out of range 0..${ds.size - 1}`);
  }
  return {
    name,
    size: idx.length,
    channels: ds.channels,
    resolution: ds.resolution,
    classes: ds.classes,
    get(i: number): Sample {
      if (!(i >= 0 && i < idx.length)) throw new RangeError(`${name}: index ${i} out of range 0..${idx.length - 1}`);
      return ds.get(idx[i]);
    },
  };
}

/** Several datasets of the same shape as one (e.g. MNIST train+test). */
export function concat(parts: readonly ImageDataset[], name = parts.map((p) => p.name).join('+')): ImageDataset {
  if (parts.length === 0) throw new Error('concat: no datasets');
  const [first] = parts;
  for (const p of parts) {
    if (p.channels !== first.channels || p.resolution !== first.resolution) {
      throw new Error(`concat: ${p.name} is ${p.channels}x${p.resolution}², ${first.name} is ${first.channels}x${first.resolution}²`);
    }
  }
  const size = parts.reduce((n, p) => n + p.size, 0);
  return {
    name, size, channels: first.channels, resolution: first.resolution, classes: first.classes,
    get(i: number): Sample {
      if (!(i >= 0 && i < size)) throw new RangeError(`${name}: index ${i} out of range 0..${size - 1}`);
      for (const p of parts) {
        if (i < p.size) return p.get(i);
        i -= p.size;
      }
      throw new RangeError(`${name}: index out of range`);
    },
  };
}

export interface SplitOptions {
  /** A fraction in (0, 1) or a count ≥ 1 of examples to hold out for validation. */
  holdout: number;
  seed?: number;
}

/**
 * Deterministic random train/val split, for datasets without a native test split (emoji,
 * folders). Both halves keep ascending index order so reading stays file-order local.
 */
export function split(ds: ImageDataset, options: SplitOptions): { train: ImageDataset; val: ImageDataset } {
  const { holdout, seed = 0 } = options;
  if (!(holdout >= 0) || (holdout >= 1 && !Number.isInteger(holdout))) {
    throw new Error(`split: holdout must be a fraction in [0, 1) or an integer count, got ${holdout}`);
  }
  const k = holdout < 1 ? Math.round(ds.size * holdout) : holdout;
  if (k > ds.size) throw new Error(`split: cannot hold out ${k} of ${ds.size} examples of ${ds.name}`);
  const perm = permutation(ds.size, seed);
  const val = perm.slice(0, k).sort();
  const train = perm.slice(k).sort();
  return { train: subset(ds, train, `${ds.name}:train`), val: subset(ds, val, `${ds.name}:val`) };
}
