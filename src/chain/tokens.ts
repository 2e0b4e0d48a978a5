/**
 * Token files: a dataset already encoded by the VQGAN (`imagebart vqgan encode`, vqgan/tokens.ts), which
 * the chain trains from; this is their one reader.
 *
 * A safetensors file with `tokens` (int16, int32, int64 or uint8 [N, h, w], ids in the shrunk
 * codebook) and optionally `labels` ([N] integers, −1 for unlabelled). Metadata is strings: the codebook
 * size (a JSON number: `K`, or `num_tokens` as the encoder writes it), checked against the ids when
 * present; `captions`, `classes` (JSON lists) and `dataset` when the encoder knew them.
 */
import { type Tensor, loadSafetensors, saveSafetensors } from '../torch/index.js';

export interface TokenSet {
  /** [N, h, w] int64. */
  tokens: Tensor;
  /** [N] int64. */
  labels?: Tensor;
  /** The codebook size the file declares, if any. */
  K?: number;
  /** One caption per grid, when the file has them ('' where an image has none). */
  captions?: string[];
  /** The dataset's class names, when it has them. */
  classes?: string[];
  /** The dataset it was encoded from, when recorded. */
  dataset?: string;
  /** [N, h, w] int64: the label-map tokens of each grid, attached from a second file (conditioning.ts `withMaps`). */
  maps?: Tensor;
  metadata: Record<string, string>;
}

const jsonStrings = (path: string, field: string, text: string | undefined, length?: number): string[] | undefined => {
  if (text === undefined) return undefined;
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    throw new Error(`token file ${path}: its ${field} are not a JSON list`);
  }
  if (!Array.isArray(list) || (length !== undefined && list.length !== length) || list.some((c) => typeof c !== 'string')) {
    throw new Error(`token file ${path}: ${field} must list ${length === undefined ? '' : `one string per grid (${length}) `}as strings`);
  }
  return list as string[];
};

const INTEGER = new Set(['uint8', 'int16', 'int32', 'int64']);

export function readTokenFile(path: string): TokenSet {
  let file: ReturnType<typeof loadSafetensors>;
  try {
    file = loadSafetensors(path, { filter: (n) => n === 'tokens' || n === 'labels' });
  } catch (e) {
    throw new Error(`cannot read token file ${path}: ${(e as Error).message}`);
  }
  const { tensors, metadata } = file;
  const tokens = tensors.get('tokens');
  if (!tokens) throw new Error(`token file ${path}: no 'tokens' tensor`);
  if (!INTEGER.has(tokens.dtype) || tokens.ndim !== 3) {
    throw new Error(`token file ${path}: 'tokens' must be an integer [N, h, w] grid, got ${tokens.dtype} [${tokens.shape.join(', ')}]`);
  }
  const labels = tensors.get('labels');
  if (labels && (!INTEGER.has(labels.dtype) || labels.ndim !== 1 || labels.size(0) !== tokens.size(0))) {
    throw new Error(`token file ${path}: 'labels' must be integers [${tokens.size(0)}], got ${labels.dtype} [${labels.shape.join(', ')}]`);
  }
  const declared = metadata.K ?? metadata.num_tokens;
  const K = declared === undefined ? undefined : Number(declared);
  if (K !== undefined && !(Number.isInteger(K) && K > 0)) throw new Error(`token file ${path}: codebook size K = '${declared}' is not a positive integer`);
  const captions = jsonStrings(path, 'captions', metadata.captions, tokens.size(0));
  const classes = jsonStrings(path, 'class names', metadata.classes);
  const set: TokenSet = {
    tokens: tokens.long(), labels: labels?.long(), K, metadata,
    ...(captions ? { captions } : {}), ...(classes ? { classes } : {}), ...(metadata.dataset !== undefined ? { dataset: metadata.dataset } : {}),
  };
  if (set.tokens.numel > 0 && set.tokens.min().item() < 0) throw new Error(`token file ${path}: negative token ids`);
  if (K !== undefined && set.tokens.numel > 0 && set.tokens.max().item() >= K) throw new Error(`token file ${path}: ids reach ${set.tokens.max().item()} but K = ${K}`);
  return set;
}

/** Writes tokens as int16 when K fits (int32 otherwise), labels as int32. */
export function writeTokenFile(path: string, tokens: Tensor, o: { labels?: Tensor; K: number; metadata?: Record<string, string> }): void {
  const tensors: Record<string, Tensor> = { tokens: tokens.to(o.K <= 32768 ? 'int16' : 'int32') };
  if (o.labels) tensors.labels = o.labels.to('int32');
  saveSafetensors(path, tensors, { ...o.metadata, K: JSON.stringify(o.K) });
}
