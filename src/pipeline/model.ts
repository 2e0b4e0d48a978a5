/**
 * The model pipeline that the command line and the server share: a model directory (a chain
 * manifest and its VQGAN) loaded once, then any number of requests, each with its own settings,
 * randomness, progress and cancellation.
 *
 * - `sample(req)`: count images in batches of batchSize; batch i draws from its own generator seeded
 *   streamSeed(seed, i) (seeds.ts), so a request's images depend only on (seed, batchSize, settings,
 *   threads) — not on what else runs in the process;
 * - `edit(req)`: repaint the masked part of a picture (sample/edit.ts: the masked multinomial
 *   diffusion), `count` edits from one generator, streamSeed(seed, 0);
 * - `onProgress` after each scale (and each repeat of an edit) with the decoded x_{t-1} of the batch;
 * - `signal` is checked before every token: an aborted request throws its reason within one token;
 * - every result carries a `sidecar`: the JSON record (seeds as decimal strings) that repeats it.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Tensor, getThreads, setThreads, tensor } from '../torch/index.js';
import type { ChainManifest } from '../chain/index.js';
import { encodePng, fromCHW, makeGrid, type RGBAImage } from '../data/index.js';
import {
  decodeTokens, editImage, resolveRepeats, invertMask, isNamedMask, loadSamplingChain, maskFromImage, namedMask, sample, NAMED_MASKS,
  type Decoding, type FirstStage, type NamedMask, type SamplingChain, type ScaleSettings, type StopSignal,
} from '../sample/index.js';
import { batchGenerator, drawSeed, parseSeed } from './seeds.js';

/** A request the model cannot serve as asked (bad class, size, settings): the caller's mistake. */
export class RequestError extends Error {}

/** CHW float32 in [-1, 1]. */
export type Pixels = Float32Array;

export interface ImageShape {
  channels: 1 | 3;
  height: number;
  width: number;
}

/** What a person can know about a loaded model. */
export interface ModelInfo {
  manifest: string;
  K: number;
  T: number;
  schedule: unknown;
  beta: readonly number[];
  tokenShape: readonly [number, number];
  /** Classes of a class-conditional chain, else null. */
  classes: number | null;
  resolution: number;
  channels: 1 | 3;
  ema: boolean;
  masks: readonly NamedMask[];
}

export interface RunSettings {
  /** Base seed (64-bit; decimal strings welcome); default: drawn, and reported. */
  seed?: bigint | number | string;
  /** Settings of every scale … */
  settings?: ScaleSettings;
  /** … overridden per scale t. */
  scales?: Record<number, ScaleSettings>;
  /** Class id of a class-conditional chain: one for every image or one per image. */
  classes?: number | readonly number[];
  decoding?: Decoding;
}

export interface SampleRequest extends RunSettings {
  count: number;
  /** Images per batch (default min(count, 16)). */
  batchSize?: number;
  /** A token grid larger than the trained one (sliding-window sampling). */
  grid?: readonly [number, number];
  /** Also return every image's x_T … x_0, decoded. */
  intermediates?: boolean;
}

/** A named mask, a mask image (white = keep, any size), or an R×R keep mask (1 = keep). */
export type MaskSpec = NamedMask | RGBAImage | Uint8Array;

export interface EditRequest extends RunSettings {
  image: RGBAImage;
  mask: MaskSpec;
  invert?: boolean;
  /** Kept pixels equal the input exactly. */
  composite?: boolean;
  /** Edits of the one input (default 1). */
  count?: number;
  /** Repeats per scale: one number or by t. */
  repeats?: number | Record<number, number>;
}

export interface Progress {
  /** Batch index and count (edits run as one batch). */
  batch: number;
  batches: number;
  /** The scale just finished, and which repeat of it. */
  t: number;
  repeat: number;
  /** Scale runs done and in all, over the whole request. */
  done: number;
  total: number;
  /** The batch's x_{t-1}, decoded. */
  images: Pixels[];
  shape: ImageShape;
}

export interface RunControl {
  onProgress?: (p: Progress) => void;
  signal?: StopSignal;
}

export interface SampleOutput {
  images: Pixels[];
  shape: ImageShape;
  /** Per image: x_T … x_0 decoded (when asked for). */
  steps?: Pixels[][];
  sidecar: SampleSidecar;
}

export interface EditOutput {
  images: Pixels[];
  shape: ImageShape;
  /** The input resized to the model, its repainted pixels grey, and its first-stage reconstruction. */
  input: Pixels;
  masked: Pixels;
  reconstruction: Pixels;
  /** The R×R pixel keep mask used (1 = keep). */
  keep: Uint8Array;
  sidecar: EditSidecar;
}

interface CommonSidecar {
  chain: ModelInfo;
  seed: string;
  settings: Record<number, Required<ScaleSettings>>;
  decoding: Decoding;
  classes: number[] | null;
  seconds: number;
  threads: ReturnType<typeof getThreads>;
}

export interface SampleSidecar extends CommonSidecar {
  command: 'sample';
  count: number;
  batchSize: number;
  batches: { seed: string; images: number }[];
  grid: readonly [number, number];
  intermediates: boolean;
  imagesPerSecond: number;
}

export interface EditSidecar extends CommonSidecar {
  command: 'edit';
  /** A named mask, else 'image'. */
  mask: string;
  invert: boolean;
  composite: boolean;
  keptTokens: number;
  tokens: number;
  count: number;
  repeats: Record<number, number>;
}

/**
 * Token-by-token decoding runs many small operations whose cost is waking thread pools, not
 * arithmetic: one thread per pool samples ≈1.7× faster than all cores (bench:sample, 16×16 grids).
 * Set unless the user chose a split with IMAGEBART_THREADS / IMAGEBART_BLAS_THREADS.
 */
export function useLatencyBoundThreads(): void {
  if (process.env.IMAGEBART_THREADS === undefined && process.env.IMAGEBART_BLAS_THREADS === undefined) setThreads({ intraOp: 1, blas: 1 });
}

/** A chain manifest path, or a model directory holding chain.json. */
export function manifestPath(path: string): string {
  const p = resolve(path);
  if (existsSync(p) && statSync(p).isDirectory()) return join(p, 'chain.json');
  return p;
}

const positive = (v: number | undefined, name: string, fallback: number): number => {
  const n = v ?? fallback;
  if (!(Number.isSafeInteger(n) && n >= 1)) throw new RequestError(`${name} must be a positive integer, got ${v}`);
  return n;
};

/** One image of a batch's CHW array. */
const split = (data: Float32Array, n: number): Pixels[] => {
  const per = data.length / n;
  return Array.from({ length: n }, (_, b) => data.slice(b * per, (b + 1) * per));
};

/** An image (CHW in [-1, 1]) as PNG bytes. */
export function pixelsToPng(p: Pixels, s: ImageShape): Buffer {
  const img = fromCHW(p, s.channels, s.height, s.width);
  return encodePng(img.rgba, img.width, img.height);
}

/** Images side by side as one PNG grid. */
export function gridPng(images: Pixels[], s: ImageShape, nrow: number): Buffer {
  const g = makeGrid(images, s, { nrow });
  return encodePng(g.rgba, g.width, g.height);
}

export class Pipeline {
  readonly info: ModelInfo;

  private constructor(readonly chain: SamplingChain, readonly firstStage: FirstStage, readonly manifest: ChainManifest, path: string, ema: boolean) {
    const { resolution, outCh } = firstStage.config.ddconfig;
    this.info = {
      manifest: path, K: manifest.K, T: manifest.T, schedule: manifest.schedule, beta: chain.schedule.beta, tokenShape: chain.tokenShape,
      classes: manifest.classes, resolution, channels: outCh === 1 ? 1 : 3, ema, masks: NAMED_MASKS,
    };
  }

  /** Loads a model directory (chain.json + its VQGAN) or a manifest: EMA weights unless `ema: false`. */
  static load(path: string, o: { ema?: boolean } = {}): Pipeline {
    const file = manifestPath(path);
    const { chain, firstStage, manifest } = loadSamplingChain(file, o);
    return new Pipeline(chain, firstStage, manifest, file, o.ema ?? true);
  }

  /** Class ids for `count` images (undefined for an unconditional chain). */
  classesFor(v: number | readonly number[] | undefined, count: number): number[] | undefined {
    const classes = this.info.classes;
    if (classes === null) {
      if (v !== undefined) throw new RequestError('class: this chain is unconditional');
      return undefined;
    }
    if (v === undefined) throw new RequestError(`class is required: this chain is conditional on ${classes} classes`);
    const ids = typeof v === 'number' ? [v] : [...v];
    if (ids.some((c) => !(Number.isInteger(c) && c >= 0 && c < classes))) throw new RequestError(`class: ids must lie in 0..${classes - 1}, got ${ids.join(', ')}`);
    if (ids.length !== 1 && ids.length !== count) throw new RequestError(`class takes one id or one per image (${count}), got ${ids.length}`);
    return Array.from({ length: count }, (_, i) => ids[ids.length === 1 ? 0 : i]);
  }

  /** An R×R keep mask (1 = keep) from a mask spec. */
  keepMask(mask: MaskSpec, invert = false): Uint8Array {
    const R = this.info.resolution;
    let keep: Uint8Array;
    if (typeof mask === 'string') {
      if (!isNamedMask(mask)) throw new RequestError(`unknown mask '${mask}': expected one of ${NAMED_MASKS.join(', ')} or a mask image`);
      keep = namedMask(mask, R);
    } else if (mask instanceof Uint8Array) {
      if (mask.length !== R * R) throw new RequestError(`a keep mask must have ${R}×${R} = ${R * R} values, got ${mask.length}`);
      keep = mask.map((v) => (v ? 1 : 0));
    } else {
      keep = maskFromImage(mask, R);
    }
    return invert ? invertMask(keep) : keep;
  }

  sample(req: SampleRequest, c: RunControl = {}): SampleOutput {
    const count = positive(req.count, 'count', 1);
    const batchSize = positive(req.batchSize, 'batch size', Math.min(count, 16));
    const classes = this.classesFor(req.classes, count);
    const seed = req.seed === undefined ? drawSeed() : parseSeed(req.seed);
    const decoding = req.decoding ?? 'cached';
    const batches = Math.ceil(count / batchSize), total = batches * this.info.T;
    const started = performance.now();
    const images: Pixels[] = [], steps: Pixels[][] = [];
    const batchSeeds: { seed: string; images: number }[] = [];
    let shape: ImageShape | undefined;
    let settings: Record<number, Required<ScaleSettings>> = {};
    for (let i = 0, start = 0; start < count; i++, start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const generator = batchGenerator(seed, i);
      const r = this.guard(() => sample(this.chain, {
        batch: n, generator, settings: req.settings, scales: req.scales, decoding, grid: req.grid, intermediates: req.intermediates,
        cond: condTensor(classes?.slice(start, start + n)), signal: c.signal,
        onScale: c.onProgress && ((t, repeat, x) => c.onProgress!({ batch: i, batches, t, repeat, done: i * this.info.T + this.info.T - t + 1, total, ...this.decode(x) })),
      }));
      settings = r.settings;
      batchSeeds.push({ seed: generator.seed.toString(), images: n });
      const decoded = this.decode(r.tokens);
      shape = decoded.shape;
      images.push(...decoded.images);
      if (r.intermediates) {
        const xs = r.intermediates.map((x) => this.decode(x).images); // [T + 1][n]
        for (let b = 0; b < n; b++) steps.push(xs.map((x) => x[b]));
      }
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      images, shape: shape!, steps: req.intermediates ? steps : undefined,
      sidecar: {
        command: 'sample', chain: this.info, count, batchSize, seed: seed.toString(), batches: batchSeeds, settings, decoding,
        grid: req.grid ?? this.chain.tokenShape, classes: classes ?? null, intermediates: !!req.intermediates,
        seconds, imagesPerSecond: count / seconds, threads: getThreads(),
      },
    };
  }

  edit(req: EditRequest, c: RunControl = {}): EditOutput {
    const count = positive(req.count, 'count', 1);
    const classes = this.classesFor(req.classes, count);
    const seed = req.seed === undefined ? drawSeed() : parseSeed(req.seed);
    const decoding = req.decoding ?? 'cached';
    const keep = this.keepMask(req.mask, req.invert);
    const total = Object.values(this.guard(() => resolveRepeats(this.chain.schedule, req.repeats))).reduce((a, b) => a + b, 0);
    const started = performance.now();
    let done = 0;
    const r = this.guard(() => editImage(this.chain, this.firstStage, req.image, keep, {
      count, generator: batchGenerator(seed, 0), settings: req.settings, scales: req.scales, decoding, composite: req.composite,
      cond: condTensor(classes), repeats: req.repeats,
      signal: c.signal,
      onScale: c.onProgress && ((t, repeat, x) => c.onProgress!({ batch: 0, batches: 1, t, repeat, done: ++done, total, ...this.decode(x) })),
    }));
    const R = this.info.resolution, plane = R * R;
    const shape: ImageShape = { channels: r.channels, height: R, width: R };
    const keptTokens = r.keep.toNumbers().reduce((a, b) => a + b, 0);
    return {
      images: split(r.images, count), shape, input: r.input, reconstruction: r.reconstruction, keep,
      masked: r.input.map((x, i) => (keep[i % plane] ? x : 0)),
      sidecar: {
        command: 'edit', chain: this.info, seed: seed.toString(), settings: r.settings, decoding, classes: classes ?? null,
        mask: typeof req.mask === 'string' ? req.mask : 'image', invert: !!req.invert, composite: !!req.composite,
        keptTokens, tokens: r.keep.numel, count, repeats: r.repeats,
        seconds: (performance.now() - started) / 1000, threads: getThreads(),
      },
    };
  }

  private decode(x: Tensor): { images: Pixels[]; shape: ImageShape } {
    const d = decodeTokens(this.firstStage, x);
    return { images: split(d.data, x.size(0)), shape: { channels: d.channels, height: d.height, width: d.width } };
  }

  /** Runs model code, turning the sampler's range checks on request settings into RequestErrors. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof RangeError) throw new RequestError(e.message);
      throw e;
    }
  }
}

const condTensor = (ids: number[] | undefined) => (ids ? tensor(BigInt64Array.from(ids, BigInt), [ids.length, 1]) : undefined);
