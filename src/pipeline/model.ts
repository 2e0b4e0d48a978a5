/**
 * The model pipeline that the command line and the server share: a model directory (a chain
 * manifest and its VQGAN) loaded once, then any number of requests, each with its own settings,
 * randomness, progress and cancellation.
 *
 * - `sample(req)`: count images in batches of batchSize; batch i draws from its own generator seeded
 *   streamSeed(seed, i) (seeds.ts), so a request's images depend only on (seed, batchSize, settings,
 *   threads) — not on what else runs in the process;
 * - `edit(req)`: repaint the masked part of a picture (sample/edit.ts: the masked multinomial
 *   diffusion), `count` edits from one generator, streamSeed(seed, 0). A mask is given at the
 *   picture's own size (a mask image is stretched to it); a non-square picture is padded to a square
 *   with its border colour, and the mask with "keep", so the padding is never repainted;
 * - conditions (class ids, captions, label maps, null) and classifier-free guidance as the chain was
 *   trained for (chain/conditioning.ts); a label map (sample/segmentation.ts `LabelMap`) is tokenized
 *   by the chain's label-map VQ model, and the sidecar records each image's segmentation fidelity (mean
 *   IoU of the map with the label map of the decoded image); `sample` with `rejection` keeps the
 *   samples a classifier finds most likely of their class (eval/rejection.ts);
 * - `onProgress` after each scale (and each repeat of an edit) with the decoded x_{t-1} of the batch;
 * - `signal` is checked before every token: an aborted request throws its reason within one token;
 * - every result carries a `sidecar`: the JSON record (seeds as decimal strings) that repeats it.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Tensor, getThreads, setThreads, tidy } from '../torch/index.js';
import { describeConditioning, encodeConditions, isMapTokens, type ChainManifest, type Condition, type Conditioning } from '../chain/index.js';
import type { VQModel } from '../vqgan/index.js';
import { encodePng, fromCHW, makeGrid, type RGBAImage } from '../data/index.js';
import {
  decodeTokens, editImage, fitMask, resolveRepeats, invertMask, isNamedMask, loadSamplingChain, maskAtPictureSize, namedMask, sample, NAMED_MASKS,
  LabelMapError, mapTokensOf, segmentationFidelity, guidanceWith,
  type Decoding, type FirstStage, type Guidance, type LabelMap, type NamedMask, type SamplingChain, type ScaleSettings, type StopSignal,
} from '../sample/index.js';
import { rejectionSample, type FeatureClassifier } from '../eval/index.js';
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

/** A chain's conditioning as a client needs it: what to ask for, and whether guidance is possible. */
export type ConditioningInfo =
  | { kind: 'none'; description: string }
  | { kind: 'class'; classes: number; names?: string[]; nullable: boolean; description: string }
  | { kind: 'text'; length: number; nullable: boolean; description: string }
  | { kind: 'segmentation'; labels: string[]; /** The label-map model's size R: maps are R×R. */ resolution: number; nullable: boolean; description: string };

/** The conditioning a client sees; `mapStage`: a segmentation chain's label-map VQ model (its resolution R). */
function conditioningInfo(c: Conditioning, mapStage?: VQModel): ConditioningInfo {
  const description = describeConditioning(c);
  if (c.kind === 'none') return { kind: 'none', description };
  if (c.kind === 'class') return { kind: 'class', classes: c.classes, ...(c.names ? { names: c.names } : {}), nullable: c.nullable, description };
  if (c.kind === 'segmentation') return { kind: 'segmentation', labels: c.labels, resolution: mapStage!.config.ddconfig.resolution, nullable: c.nullable, description };
  return { kind: 'text', length: c.length, nullable: c.nullable, description };
}

/**
 * What guidance pushes a model's samples away from: the weaker chain shipped with it (autoguidance, on
 * at `default` unless a request says otherwise) or its null condition (classifier-free, off unless asked).
 */
export type GuidanceInfo = { reference: 'weaker chain'; default: number } | { reference: 'null condition'; default: 1 };

function guidanceInfo(chain: SamplingChain, c: ConditioningInfo): GuidanceInfo | null {
  if (chain.guidance?.weak) return { reference: 'weaker chain', default: typeof chain.guidance.scale === 'number' ? chain.guidance.scale : 1 };
  return c.kind !== 'none' && c.nullable ? { reference: 'null condition', default: 1 } : null;
}

/** What a request may condition an image on: a class id, a caption, a label map (or its tokens), or null (the null condition). */
export type RequestCondition = Condition | LabelMap;

const isLabelMap = (x: unknown): x is LabelMap => typeof x === 'object' && x !== null && (x as LabelMap).labels instanceof Uint8Array;

/** What a person can know about a loaded model. */
export interface ModelInfo {
  manifest: string;
  K: number;
  T: number;
  schedule: unknown;
  beta: readonly number[];
  tokenShape: readonly [number, number];
  /** What the chain is conditioned on (a text chain's vocabulary left out). */
  conditioning: ConditioningInfo;
  /** What guidance can push against, or null when the model cannot be guided. */
  guidance: GuidanceInfo | null;
  resolution: number;
  /** The device the models run on. */
  device: string;
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
  /**
   * What the images are conditioned on: class ids of a class chain, captions of a text chain, null for
   * the null condition of a chain trained with dropped conditions; one for every image or one per image.
   */
  condition?: RequestCondition | readonly RequestCondition[];
  /**
   * Guidance scale s (one for every scale, or by t): l_u + s·(l_c − l_u), l_u from the model's weaker
   * chain when it ships one, else from its null condition; 1 = off; default the model's (ModelInfo.guidance).
   */
  guidance?: number | Record<number, number>;
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
  /** Classifier rejection sampling (class chains): draw count / acceptRate and keep the most likely of their class. */
  rejection?: { classifier: FeatureClassifier; acceptRate: number };
}

/** A named mask, a mask image (white = keep, any size: stretched to the picture), or a keep mask (1 = keep) at the picture's width × height. */
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
  /** Batch index and count (edits run as one batch; rejection sampling reports its draws). */
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
  /** Per image, or null for an unconditional chain. */
  conditions: Condition[] | null;
  guidance: number | Record<number, number> | null;
  seconds: number;
  threads: ReturnType<typeof getThreads>;
  /** Segmentation chains: per image, the mean IoU of its label map with the one requested. */
  segmentation?: { meanIoU: number[]; mean: number };
}

export interface SampleSidecar extends CommonSidecar {
  command: 'sample';
  count: number;
  batchSize: number;
  batches: { seed: string; images: number }[];
  grid: readonly [number, number];
  intermediates: boolean;
  imagesPerSecond: number;
  /** With rejection sampling: the realised rate, draws and the lowest kept score per class. */
  rejection?: { requestedAcceptRate: number; acceptRate: number; drawn: number; kept: number; thresholds: Record<number, number>; scores: number[] };
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

/** The sidecar field of a segmentation chain's fidelity, when there is one. */
const withFidelity = (f: CommonSidecar['segmentation']) => (f ? { segmentation: f } : {});

export class Pipeline {
  readonly info: ModelInfo;

  private constructor(
    readonly chain: SamplingChain, readonly firstStage: FirstStage, readonly manifest: ChainManifest, path: string, ema: boolean, device: string,
    /** A segmentation chain's label-map VQ model. */
    readonly mapStage?: VQModel,
  ) {
    const { resolution, outCh } = firstStage.config.ddconfig;
    const conditioning = conditioningInfo(manifest.conditioning, mapStage);
    this.info = {
      manifest: path, K: manifest.K, T: manifest.T, schedule: manifest.schedule, beta: chain.schedule.beta, tokenShape: chain.tokenShape,
      conditioning, guidance: guidanceInfo(chain, conditioning), resolution, channels: outCh === 1 ? 1 : 3, ema, device, masks: NAMED_MASKS,
    };
  }

  /** Loads a model directory (chain.json + its VQGAN) or a manifest: EMA weights unless `ema: false`, on `device` (default cpu). */
  static load(path: string, o: { ema?: boolean; device?: string } = {}): Pipeline {
    const file = manifestPath(path);
    const { chain, firstStage, manifest, mapStage } = loadSamplingChain(file, o);
    return new Pipeline(chain, firstStage, manifest, file, o.ema ?? true, o.device ?? 'cpu', mapStage);
  }

  /**
   * The condition of each of `count` images (undefined for an unconditional chain), checked against the
   * chain; label maps come back tokenized (and as given, in `maps`, to measure fidelity).
   */
  conditionsFor(v: RequestCondition | readonly RequestCondition[] | undefined, count: number): Condition[] | undefined {
    return this.requestConditions(v, count)?.conditions;
  }

  private requestConditions(v: RequestCondition | readonly RequestCondition[] | undefined, count: number): { conditions: Condition[]; maps?: (LabelMap | null)[] } | undefined {
    const c = this.manifest.conditioning;
    const what = c.kind === 'class' ? 'class' : c.kind === 'segmentation' ? 'segmentation map' : 'prompt';
    if (c.kind === 'none') {
      if (v !== undefined && v !== null) throw new RequestError('class, prompt or segmentation map given, but this chain is unconditional');
      return undefined;
    }
    if (v === undefined) throw new RequestError(`${what} is required: this chain is conditioned on ${describeConditioning(c)}`);
    const items: readonly RequestCondition[] = Array.isArray(v) ? v : [v as RequestCondition];
    if (items.length !== 1 && items.length !== count) throw new RequestError(`${what} takes one value or one per image (${count}), got ${items.length}`);
    const given = Array.from({ length: count }, (_, i) => items[items.length === 1 ? 0 : i]);
    let maps: (LabelMap | null)[] | undefined;
    let all: Condition[];
    try {
      if (c.kind === 'segmentation') {
        const bad = given.find((x) => x !== null && !isLabelMap(x) && !isMapTokens(x));
        if (bad !== undefined) throw new Error(`this chain is conditioned on ${describeConditioning(c)}: it takes label maps, got ${JSON.stringify(bad)}`);
        maps = given.map((x) => (isLabelMap(x) ? x : null));
        const tokens = mapTokensOf(this.mapStage!, maps.filter((m): m is LabelMap => m !== null), c.labels.length);
        all = given.map((x) => (isLabelMap(x) ? tokens.shift()! : (x as Condition)));
      } else {
        if (given.some(isLabelMap)) throw new Error(`this chain is conditioned on ${describeConditioning(c)}, not on a label map`);
        all = given as Condition[];
      }
      encodeConditions(c, all, { tokens: this.tokens })?.dispose(); // checks every value against the chain
    } catch (e) {
      throw new RequestError(`${what}: ${(e as Error).message}`);
    }
    return { conditions: all, ...(maps ? { maps } : {}) };
  }

  /** Positions of the trained token grid. */
  private get tokens(): number {
    return this.chain.tokenShape[0] * this.chain.tokenShape[1];
  }

  /** Per image, the mean IoU of its requested label map with that of the decoded image (null maps skipped; none when every map is null). */
  private fidelity(maps: (LabelMap | null)[] | undefined, images: Pixels[], shape: ImageShape): CommonSidecar['segmentation'] {
    if (!maps) return undefined;
    const classes = this.manifest.conditioning.kind === 'segmentation' ? this.manifest.conditioning.labels.length : 0;
    const meanIoU = images.flatMap((img, i) => (maps[i] ? [segmentationFidelity(maps[i]!, img, shape.channels, classes)] : []));
    if (meanIoU.length === 0) return undefined; // only null maps: no fidelity to report
    return { meanIoU, mean: meanIoU.reduce((a, b) => a + b, 0) / meanIoU.length };
  }

  /** The guidance a request without one runs with (the sidecar's record), or null. */
  private get defaultGuidance(): number | Record<number, number> | null {
    return this.chain.guidance?.scale ?? null;
  }

  /** The guidance of a request (undefined: the model's default), checked against the chain. */
  private guidanceFor(scale: RunSettings['guidance']): Guidance | undefined {
    if (scale === undefined) return undefined;
    const values = typeof scale === 'number' ? [scale] : Object.values(scale);
    if (values.some((s) => !Number.isFinite(s))) throw new RequestError(`guidance must be a finite number, got ${JSON.stringify(scale)}`);
    try {
      return guidanceWith(this.chain, scale);
    } catch (e) {
      throw new RequestError(`guidance: ${(e as Error).message}`);
    }
  }

  private encode(conditions: Condition[] | undefined): Tensor | undefined {
    return conditions && encodeConditions(this.manifest.conditioning, conditions, { tokens: this.tokens });
  }

  /**
   * The R×R keep mask (1 = keep) of an edit of `picture` (width × height): the mask at the picture's
   * size, inverted if asked, then given the picture's geometry (padding kept, resized to R).
   */
  keepMask(mask: MaskSpec, picture: { width: number; height: number }, invert = false): Uint8Array {
    const { width, height } = picture;
    let keep: Uint8Array;
    if (typeof mask === 'string') {
      if (!isNamedMask(mask)) throw new RequestError(`unknown mask '${mask}': expected one of ${NAMED_MASKS.join(', ')} or a mask image`);
      keep = namedMask(mask, width, height);
    } else if (mask instanceof Uint8Array) {
      if (mask.length !== width * height) throw new RequestError(`a keep mask must have ${width}×${height} = ${width * height} values (the picture's size), got ${mask.length}`);
      keep = mask.map((v) => (v ? 1 : 0));
    } else {
      keep = maskAtPictureSize(mask, picture);
    }
    if (invert) keep = invertMask(keep);
    return fitMask(keep, width, height, this.info.resolution);
  }

  /** Samples images; every tensor the request makes is freed (a batch's when the batch is done). */
  sample(req: SampleRequest, c: RunControl = {}): SampleOutput {
    return tidy(() => this.sampleIn(req, c));
  }

  /** Edits a picture; every tensor the request makes is freed. */
  edit(req: EditRequest, c: RunControl = {}): EditOutput {
    return tidy(() => this.editIn(req, c));
  }

  private sampleIn(req: SampleRequest, c: RunControl): SampleOutput {
    const count = positive(req.count, 'count', 1);
    const batchSize = positive(req.batchSize, 'batch size', Math.min(count, 16));
    const requested = this.requestConditions(req.condition, count);
    const conditions = requested?.conditions;
    if (requested?.maps && req.grid) throw new RequestError('a segmentation map conditions the trained grid: it does not combine with a larger grid');
    const guidance = this.guidanceFor(req.guidance);
    const seed = this.seedOf(req.seed);
    const decoding = req.decoding ?? 'cached';
    if (req.rejection) return this.sampleAccepted(req, { count, batchSize, conditions, guidance, seed, decoding }, c);
    const batches = Math.ceil(count / batchSize), total = batches * this.info.T;
    const started = performance.now();
    const images: Pixels[] = [], steps: Pixels[][] = [];
    const batchSeeds: { seed: string; images: number }[] = [];
    let shape: ImageShape | undefined;
    let settings: Record<number, Required<ScaleSettings>> = {};
    for (let i = 0, start = 0; start < count; i++, start += batchSize) tidy(() => {
      const n = Math.min(batchSize, count - start);
      const generator = batchGenerator(seed, i);
      const r = this.guard(() => sample(this.chain, {
        batch: n, generator, settings: req.settings, scales: req.scales, decoding, grid: req.grid, intermediates: req.intermediates,
        cond: this.encode(conditions?.slice(start, start + n)), guidance, signal: c.signal,
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
    });
    const seconds = (performance.now() - started) / 1000;
    return {
      images, shape: shape!, steps: req.intermediates ? steps : undefined,
      sidecar: {
        command: 'sample', chain: this.info, count, batchSize, seed: seed.toString(), batches: batchSeeds, settings, decoding,
        grid: req.grid ?? this.chain.tokenShape, conditions: conditions ?? null, guidance: req.guidance ?? this.defaultGuidance, intermediates: !!req.intermediates,
        seconds, imagesPerSecond: count / seconds, threads: getThreads(), ...withFidelity(this.fidelity(requested?.maps, images, shape!)),
      },
    };
  }

  private editIn(req: EditRequest, c: RunControl): EditOutput {
    const count = positive(req.count, 'count', 1);
    const requested = this.requestConditions(req.condition, count);
    const conditions = requested?.conditions;
    const guidance = this.guidanceFor(req.guidance);
    const seed = this.seedOf(req.seed);
    const decoding = req.decoding ?? 'cached';
    const keep = this.keepMask(req.mask, req.image, req.invert);
    const total = Object.values(this.guard(() => resolveRepeats(this.chain.schedule, req.repeats))).reduce((a, b) => a + b, 0);
    const started = performance.now();
    let done = 0;
    const r = this.guard(() => editImage(this.chain, this.firstStage, req.image, keep, {
      count, generator: batchGenerator(seed, 0), settings: req.settings, scales: req.scales, decoding, composite: req.composite,
      cond: this.encode(conditions), guidance, repeats: req.repeats,
      signal: c.signal,
      onScale: c.onProgress && ((t, repeat, x) => c.onProgress!({ batch: 0, batches: 1, t, repeat, done: ++done, total, ...this.decode(x) })),
    }));
    const R = this.info.resolution, plane = R * R;
    const shape: ImageShape = { channels: r.channels, height: R, width: R };
    const keptTokens = r.keep.toNumbers().reduce((a, b) => a + b, 0);
    const images = split(r.images, count);
    return {
      images, shape, input: r.input, reconstruction: r.reconstruction, keep,
      masked: r.input.map((x, i) => (keep[i % plane] ? x : 0)),
      sidecar: {
        command: 'edit', chain: this.info, seed: seed.toString(), settings: r.settings, decoding, conditions: conditions ?? null, guidance: req.guidance ?? this.defaultGuidance,
        mask: typeof req.mask === 'string' ? req.mask : 'image', invert: !!req.invert, composite: !!req.composite,
        keptTokens, tokens: r.keep.numel, count, repeats: r.repeats,
        seconds: (performance.now() - started) / 1000, threads: getThreads(), ...withFidelity(this.fidelity(requested?.maps, images, shape)),
      },
    };
  }

  /**
   * Rejection sampling: ⌈n / r⌉ draws per requested class, batch i from its own generator
   * streamSeed(seed, i), the n most likely of their class kept (eval/rejection.ts).
   */
  private sampleAccepted(
    req: SampleRequest,
    r: { count: number; batchSize: number; conditions?: Condition[]; guidance?: Guidance; seed: bigint; decoding: Decoding },
    c: RunControl,
  ): SampleOutput {
    const { classifier, acceptRate } = req.rejection!;
    if (!(acceptRate > 0 && acceptRate <= 1)) throw new RequestError(`the acceptance rate must lie in (0, 1], got ${acceptRate}`);
    if (!r.conditions || r.conditions.some((x) => typeof x !== 'number')) throw new RequestError('rejection sampling keeps samples of the requested classes: give class ids of a class-conditional chain');
    if (req.grid || req.intermediates) throw new RequestError('rejection sampling does not combine with a larger grid or intermediates');
    const started = performance.now();
    const res = this.guard(() => rejectionSample(classifier, this.chain, this.firstStage, {
      labels: r.conditions as number[], acceptRate, batchSize: r.batchSize, seed: r.seed, guidance: r.guidance, settings: req.settings, scales: req.scales,
      decoding: r.decoding, signal: c.signal,
    }));
    const seconds = (performance.now() - started) / 1000;
    return {
      images: res.images, shape: { channels: res.channels, height: res.resolution, width: res.resolution },
      sidecar: {
        command: 'sample', chain: this.info, count: r.count, batchSize: r.batchSize, seed: r.seed.toString(), batches: res.batches, settings: res.settings,
        decoding: r.decoding, grid: this.chain.tokenShape, conditions: r.conditions, guidance: req.guidance ?? this.defaultGuidance, intermediates: false,
        seconds, imagesPerSecond: r.count / seconds, threads: getThreads(),
        rejection: { requestedAcceptRate: acceptRate, acceptRate: res.acceptRate, drawn: res.drawn, kept: res.kept, thresholds: res.thresholds, scores: res.scores },
      },
    };
  }

  private seedOf(v: RunSettings['seed']): bigint {
    try {
      return v === undefined ? drawSeed() : parseSeed(v);
    } catch (e) {
      throw new RequestError((e as Error).message);
    }
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
      if (e instanceof RangeError || e instanceof LabelMapError) throw new RequestError(e.message);
      throw e;
    }
  }
}
