/**
 * What a chain is conditioned on — one description shared by token files, the trainer, the NLL,
 * sampling, editing, the manifest and the CLI (DESIGN §1, "Conditioning"):
 *
 * - `none`;
 * - `class`: a class id c ∈ [0, n), one token after the scale token in every encoder input and in the
 *   GPT prefix at scale T (`[t, c, …]`, one embedding table shared with the codes, as the official
 *   ImageNet models). `nullable` chains were trained with labels dropped to the null id n, so they also
 *   sample unconditionally and with classifier-free guidance;
 * - `text`: a caption, CLIP-BPE tokenized to `length` tokens (`[start, ids…, end]`, padded), then
 *   mapped into a compact vocabulary so that small models do not carry a 49408-row table: compact id 0
 *   is padding, 1 a BPE token unseen in training, 2 + i the CLIP id `vocab[i]`. The null condition of a
 *   `nullable` text chain is the empty caption.
 * - `segmentation`: a label map (one label of `labels` per pixel), tokenized by a second small VQ model
 *   (`vqgan`, a path relative to the manifest, `K` codes) into a grid as large as the image's. Its tokens
 *   are not a prefix: each scale embeds them with its own table and concatenates them channel-wise with
 *   the x_t embeddings (chain/layers.ts `MapFusion`). A condition is the map's token grid (`MapTokens`;
 *   the sample layer tokenizes label maps, sample/segmentation.ts); the null map of a `nullable` chain is
 *   the learned id K at every position.
 *
 * At the model level the prefix kinds are `condLength` tokens per example with ids below `condVocab`;
 * a segmentation chain has no prefix (condLength 0) and takes one map token per grid position, ids
 * below `mapVocab` (K_s, + 1 for the null map).
 */
import { z } from 'zod';
import { type Tensor, tensor } from '../torch/index.js';
import { parseWith } from '../io/schema.js';
import type { TokenSet } from './tokens.js';
import { ClipTokenizer } from '../text/clip.js';

export type Conditioning =
  | { kind: 'none' }
  | { kind: 'class'; classes: number; nullable: boolean; names?: string[] }
  | { kind: 'text'; tokenizer: 'clip-bpe'; length: number; vocab: number[]; nullable: boolean }
  | { kind: 'segmentation'; vqgan: string; K: number; labels: string[]; nullable: boolean };

/** A label map tokenized by the chain's segmentation VQ model: one id in [0, K_s) per grid position, raster order. */
export interface MapTokens {
  mapTokens: readonly number[];
}

/** What one example is conditioned on: a class id, a caption, a tokenized label map, or null (the null condition). */
export type Condition = number | string | MapTokens | null;

export const isMapTokens = (x: unknown): x is MapTokens => typeof x === 'object' && x !== null && Array.isArray((x as MapTokens).mapTokens);

export const NONE: Conditioning = { kind: 'none' };
const PAD = 0, UNKNOWN = 1, FIRST = 2;

/** Prefix tokens per example and the ids they take, and the ids map tokens take (0: no map), as the models see them. */
export function conditioningShape(c: Conditioning): { condLength: number; condVocab: number; mapVocab: number } {
  switch (c.kind) {
    case 'none': return { condLength: 0, condVocab: 0, mapVocab: 0 };
    case 'class': return { condLength: 1, condVocab: c.classes + (c.nullable ? 1 : 0), mapVocab: 0 };
    case 'text': return { condLength: c.length, condVocab: FIRST + c.vocab.length, mapVocab: 0 };
    case 'segmentation': return { condLength: 0, condVocab: 0, mapVocab: c.K + (c.nullable ? 1 : 0) };
  }
}

/** The conditioning part of a chain's `ChainShape` (only the fields a kind uses). */
export function shapeOfConditioning(c: Conditioning): { condLength?: number; condVocab?: number; mapVocab?: number } {
  const { condLength, condVocab, mapVocab } = conditioningShape(c);
  return { ...(condLength ? { condLength, condVocab } : {}), ...(mapVocab ? { mapVocab } : {}) };
}

/** The conditioning a model of this shape was trained with, when only the shape and the class count are known (older manifests). */
export function classConditioning(classes: number | null | undefined, condVocab?: number): Conditioning {
  if (!classes) return NONE;
  return { kind: 'class', classes, nullable: condVocab === classes + 1 };
}

const positiveInt = z.number().int().positive();

/** The description's schema, as manifests and configs hold it. */
export const ConditioningSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('none') }),
  z.strictObject({ kind: z.literal('class'), classes: positiveInt, nullable: z.boolean(), names: z.array(z.string()).optional() }),
  z.strictObject({ kind: z.literal('text'), tokenizer: z.literal('clip-bpe'), length: z.number().int().min(2), vocab: z.array(z.number().int().nonnegative()), nullable: z.boolean() }),
  z.strictObject({ kind: z.literal('segmentation'), vqgan: z.string().min(1), K: z.number().int().min(2), labels: z.array(z.string()).min(2), nullable: z.boolean() }),
]) satisfies z.ZodType<Conditioning>;

/** Checks a description read from a file (`where` names it in the error); returns it. */
export function checkConditioning(c: unknown, where: string): Conditioning {
  const parsed = parseWith(ConditioningSchema, c, `${where}: conditioning`);
  if (parsed.kind === 'class' && parsed.names && parsed.names.length !== parsed.classes) throw new Error(`${where}: conditioning "names" must list one name per class (${parsed.classes})`);
  return parsed;
}

let tokenizer: ClipTokenizer | undefined;
const clip = () => (tokenizer ??= new ClipTokenizer());

/**
 * A text conditioning for captions: the compact vocabulary is every CLIP id the (training) captions use,
 * sorted, so that it is the same whichever process builds it.
 */
export function textConditioning(captions: readonly string[], length: number, nullable: boolean): Conditioning {
  const ids = new Set<number>();
  for (const c of captions) for (const id of clip().tokenize(c, length)) ids.add(id);
  ids.delete(PAD);
  return { kind: 'text', tokenizer: 'clip-bpe', length, vocab: [...ids].sort((a, b) => a - b), nullable };
}

/**
 * Conditioning tokens [B, condLength] int64 for B conditions (null: the null condition); for a
 * segmentation chain the maps [B, tokens] (`tokens`: positions per grid, needed when every map is null).
 */
export function encodeConditions(c: Conditioning, conditions: readonly Condition[], o: { tokens?: number } = {}): Tensor | undefined {
  if (c.kind === 'none') {
    if (conditions.some((x) => x !== null)) throw new Error('this chain is unconditional: it takes no class, caption or label map');
    return undefined;
  }
  if (c.kind === 'segmentation') return encodeMaps(c, conditions, o.tokens);
  if (conditions.some(isMapTokens)) throw new Error(`this chain is conditioned on ${describeConditioning(c)}, not on a label map`);
  const { condLength } = conditioningShape(c);
  const ids = new BigInt64Array(conditions.length * condLength);
  if (c.kind === 'class') {
    conditions.forEach((x, i) => {
      if (x === null) {
        if (!c.nullable) throw new Error('this chain was trained without dropped labels: it has no null class (it cannot sample unconditionally or with guidance)');
        ids[i] = BigInt(c.classes);
      } else if (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < c.classes) ids[i] = BigInt(x);
      else throw new Error(`class ${JSON.stringify(x)}: this chain takes class ids 0..${c.classes - 1}`);
    });
  } else {
    const compact = new Map(c.vocab.map((v, i) => [v, FIRST + i]));
    conditions.forEach((x, i) => {
      if (x === null && !c.nullable) throw new Error('this chain was trained without dropped captions: it has no null caption');
      if (x !== null && typeof x !== 'string') throw new Error(`this chain takes captions (text), got ${JSON.stringify(x)}`);
      const bpe = clip().tokenize(x ?? '', c.length);
      for (let k = 0; k < c.length; k++) ids[i * condLength + k] = BigInt(bpe[k] === PAD ? PAD : compact.get(bpe[k]) ?? UNKNOWN);
    });
  }
  return tensor(ids, [conditions.length, condLength]);
}

/** Map tokens [B, N] of a segmentation chain; a null map is the id K_s at every position. */
function encodeMaps(c: Extract<Conditioning, { kind: 'segmentation' }>, conditions: readonly Condition[], tokens?: number): Tensor {
  const other = conditions.find((x) => x !== null && !isMapTokens(x));
  if (other !== undefined) throw new Error(`this chain is conditioned on ${describeConditioning(c)}: it takes label maps, got ${JSON.stringify(other)}`);
  const N = tokens ?? conditions.find(isMapTokens)?.mapTokens.length;
  if (N === undefined) throw new Error('encodeConditions: null label maps need the grid size (tokens)');
  const ids = new BigInt64Array(conditions.length * N);
  conditions.forEach((x, i) => {
    if (x === null) {
      if (!c.nullable) throw new Error('this chain was trained without dropped label maps: it has no null map (it cannot sample without a map or with guidance)');
      ids.fill(BigInt(c.K), i * N, (i + 1) * N);
      return;
    }
    if (!isMapTokens(x)) return;
    if (x.mapTokens.length !== N) throw new Error(`a label map of ${x.mapTokens.length} tokens, but the grid has ${N} positions`);
    x.mapTokens.forEach((v, k) => {
      if (!(Number.isInteger(v) && v >= 0 && v < c.K)) throw new Error(`label-map token ${v} at position ${k} outside the segmentation VQ model's 0..${c.K - 1}`);
      ids[i * N + k] = BigInt(v);
    });
  });
  return tensor(ids, [conditions.length, N]);
}

/**
 * The null condition of a nullable chain (classifier-free guidance): [1, condLength], or for a
 * segmentation chain [1, 1] holding the null map id, broadcast over every position of the map.
 */
export function nullCondition(c: Conditioning): Tensor {
  if (c.kind === 'none' || !c.nullable) throw new Error('classifier-free guidance needs a chain trained with dropped conditions (a null class, caption or label map)');
  return encodeConditions(c, [null], { tokens: 1 })!;
}

/** A short human description, e.g. "class (10, nullable)". */
export function describeConditioning(c: Conditioning): string {
  if (c.kind === 'none') return 'none';
  if (c.kind === 'class') return `class (${c.classes}${c.nullable ? ', nullable' : ''})`;
  if (c.kind === 'segmentation') return `segmentation (label maps of ${c.labels.join(' / ')}, ${c.K}-code VQ model${c.nullable ? ', nullable' : ''})`;
  return `text (CLIP BPE, ${c.length} tokens, ${c.vocab.length}-token vocabulary${c.nullable ? ', nullable' : ''})`;
}

/**
 * The conditions [M, condLength] of a token file's grids under `c` (undefined for `none`): its labels
 * for a class chain, its captions for a text chain, its label maps' tokens [M, h·w] (`withMaps`) for a
 * segmentation chain; all grids, the first `count`, or those at `idx`.
 */
export function conditionsOf(file: TokenSet, c: Conditioning, path: string, select: { idx?: Tensor; count?: number } = {}): Tensor | undefined {
  if (c.kind === 'none') return undefined;
  const n = file.tokens.size(0);
  if (c.kind === 'segmentation') {
    if (!file.maps) throw new Error(`${path}: a segmentation-conditional chain needs the token file of its label maps (--segmentation-tokens)`);
    const maps = file.maps.flatten(1);
    return select.idx ? maps.index([select.idx]) : maps.narrow(0, 0, select.count ?? n);
  }
  const at = select.idx ? select.idx.toNumbers() : Array.from({ length: select.count ?? n }, (_, i) => i);
  if (c.kind === 'class') {
    if (!file.labels) throw new Error(`${path}: a class-conditional chain needs labels in the token file`);
    const labels = file.labels.toNumbers();
    const bad = at.find((i) => !(labels[i] >= 0 && labels[i] < c.classes));
    if (bad !== undefined) throw new Error(`${path}: labels must lie in 0..${c.classes - 1}, grid ${bad} has ${labels[bad]}`);
    return tensor(BigInt64Array.from(at, (i) => BigInt(labels[i])), [at.length, 1]);
  }
  if (!file.captions) throw new Error(`${path}: a text-conditional chain needs captions in the token file`);
  return encodeConditions(c, at.map((i) => file.captions![i]));
}

/**
 * A token file with the label maps of its grids attached (`maps`, for a segmentation chain): the map
 * token file `maps` must hold as many grids as `file`, in the same order, of the same h×w, with ids
 * below the conditioning's K.
 */
export function withMaps(file: TokenSet, path: string, maps: TokenSet, mapsPath: string, c: Conditioning): TokenSet {
  if (c.kind !== 'segmentation') throw new Error(`${mapsPath}: label maps condition a segmentation chain, this one is conditioned on ${describeConditioning(c)}`);
  const [n, h, w] = file.tokens.shape, [m, mh, mw] = maps.tokens.shape;
  if (m !== n) throw new Error(`${mapsPath} holds ${m} label maps but ${path} ${n} grids: they must match one to one, in the same order`);
  if (mh !== h || mw !== w) throw new Error(`${mapsPath} holds ${mh}×${mw} label-map grids, ${path} ${h}×${w} grids: they must be the same size`);
  if (maps.K !== undefined && maps.K !== c.K) throw new Error(`${mapsPath} holds tokens of a K = ${maps.K} segmentation codebook, the chain's is K = ${c.K}`);
  const top = maps.tokens.numel > 0 ? maps.tokens.max().item() : 0;
  if (top >= c.K) throw new Error(`${mapsPath}: label-map token ids reach ${top} but the segmentation VQ model has K = ${c.K}`);
  return { ...file, maps: maps.tokens };
}
