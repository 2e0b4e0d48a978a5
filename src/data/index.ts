/**
 * Data layer public API: datasets as CHW float arrays in [-1, 1], no tensor-engine dependency.
 */
import { existsSync, statSync } from 'node:fs';
import { concat, permutation, subset, split as holdoutSplit, type ImageDataset } from './dataset.js';
import { loadEmoji } from './emoji.js';
import { loadFolder } from './folder.js';
import { loadFashionMnist, loadMnist } from './mnist.js';
import { segmentationDataset } from './segmentation.js';

export * from './dataset.js';
export * from './image.js';
export * from './mnist.js';
export * from './emoji.js';
export * from './folder.js';
export * from './segmentation.js';

export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist', 'mnist-segmentation', 'fashion-mnist-segmentation', 'emoji', 'emoji-google', 'emoji-twitter'] as const;
export type BuiltinDataset = (typeof BUILTIN_DATASETS)[number];

export interface OpenOptions {
  /**
   * 'train' (default), 'test' or 'all'. MNIST-style sets use their native splits; emoji and
   * folders have none, so 'test' is a fixed seeded 10% holdout and 'train' the other 90%.
   */
  split?: 'train' | 'test' | 'all';
  /** Default 32. */
  resolution?: number;
  /** For emoji and folders (MNIST-style sets are always 1). Default 3. */
  channels?: 1 | 3;
  onWarn?: (message: string) => void;
}

/** Fraction and seed of the holdout used as 'test' for sources without a native split. */
export const HOLDOUT = { fraction: 0.1, seed: 1234 } as const;

/** Open a built-in dataset by name, or a folder of images by path. */
export function openDataset(name: BuiltinDataset | (string & {}), options: OpenOptions = {}): ImageDataset {
  const { split = 'train', resolution = 32, channels = 3, onWarn } = options;
  if (split !== 'train' && split !== 'test' && split !== 'all') throw new Error(`unknown split '${split as string}' (train, test or all)`);
  if (name === 'mnist-segmentation' || name === 'fashion-mnist-segmentation') {
    return segmentationDataset(openDataset(name.replace('-segmentation', ''), { split, resolution }));
  }
  if (name === 'mnist' || name === 'fashion-mnist') {
    const load = name === 'mnist' ? loadMnist : loadFashionMnist;
    if (split === 'all') return concat([load({ split: 'train', resolution }), load({ split: 'test', resolution })], `${name}:all`);
    return load({ split, resolution });
  }
  if (name === 'emoji') return emojiBothStyles(split, resolution, channels);
  let ds: ImageDataset;
  if (name === 'emoji-google' || name === 'emoji-twitter') {
    ds = loadEmoji({ style: name === 'emoji-google' ? 'google' : 'twitter', resolution, channels });
  } else if (existsSync(name) && statSync(name).isDirectory()) {
    ds = loadFolder(name, { resolution, channels, onWarn });
  } else {
    throw new Error(`unknown dataset '${name}': expected one of ${BUILTIN_DATASETS.join(', ')} or a folder of PNG/JPEG images`);
  }
  if (split === 'all') return ds;
  const { train, val } = holdoutSplit(ds, { holdout: HOLDOUT.fraction, seed: HOLDOUT.seed });
  return split === 'train' ? train : val;
}

/** Fraction of emoji names held out (in both styles) as the test split of `emoji`. */
export const EMOJI_NAME_HOLDOUT = 0.05;

/**
 * Both emoji styles; 'test' is every image of a seeded 5% of the names (so its captions are unseen in
 * training), 'train' the rest.
 */
function emojiBothStyles(split: 'train' | 'test' | 'all', resolution: number, channels: 1 | 3): ImageDataset {
  const styles = [loadEmoji({ style: 'google', resolution, channels }), loadEmoji({ style: 'twitter', resolution, channels })];
  const both = concat(styles, 'emoji');
  if (split === 'all') return both;
  const names = [...new Set(styles.flatMap((s) => s.entries.map((e) => e.label)))].sort();
  const order = permutation(names.length, HOLDOUT.seed);
  const held = new Set(Array.from(order.subarray(0, Math.round(names.length * EMOJI_NAME_HOLDOUT)), (i) => names[i]));
  const labels = styles.flatMap((s) => s.entries.map((e) => e.label));
  const keep = labels.flatMap((l, i) => (held.has(l) === (split === 'test') ? [i] : []));
  return subset(both, keep, `emoji:${split}`);
}
