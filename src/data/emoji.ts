/**
 * Emoji art (Noto = 'google', Twemoji = 'twitter') from npm `emoji-datasource-*`: 64×64 RGBA
 * PNGs, composited on white and resized. Each image has a label (emojibase's CLDR name, which also
 * names skin tones), a caption for text conditioning — "name, style, category, tags…", e.g.
 * "grinning face, noto style, smileys & emotion, cheerful, cheery, grin, happy" (up to four
 * emojibase tags not already in the name) — and a category index for class conditioning. Order
 * is by code-point sequence so indices are stable across machines.
 *
 * `emoji` is both styles together; its test split holds out whole captions: the images of 5% of
 * the names (in both styles), so a text chain is tested on names it never saw.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ImageDataset, Sample } from './dataset.js';
import { decodeImage, resizeTo, toCHW } from './image.js';

export type EmojiStyle = 'google' | 'twitter';

export interface EmojiOptions {
  style?: EmojiStyle;
  /** Default 32. */
  resolution?: number;
  /** Default 3. */
  channels?: 1 | 3;
}

export interface EmojiEntry {
  /** Unified hexcode, e.g. '1F44B-1F3FB'. */
  unified: string;
  file: string;
  /** The emoji's name, e.g. 'waving hand: light skin tone'. */
  label: string;
  caption: string;
  category: number;
}

export interface EmojiDataset extends ImageDataset {
  readonly classes: readonly string[];
  readonly entries: readonly EmojiEntry[];
}

interface SourceImage {
  unified: string;
  image: string;
  has_img_google?: boolean;
  has_img_twitter?: boolean;
}
interface SourceEmoji extends SourceImage {
  name: string | null;
  short_name: string;
  category: string;
  skin_variations?: Record<string, SourceImage>;
}
interface EmojibaseEmoji {
  label: string;
  hexcode: string;
  tags?: string[];
  skins?: EmojibaseEmoji[];
}

/** How captions name the art styles. */
export const STYLE_NAMES: Record<EmojiStyle, string> = { google: 'noto', twitter: 'twemoji' };

/** "name, style, category, tags…" with up to four tags whose words are not in the name. */
function caption(label: string, style: EmojiStyle, category: string, tags: readonly string[]): string {
  const words = new Set(label.split(/[\s:,]+/));
  const extra = tags.filter((t) => !words.has(t)).slice(0, 4);
  return [label, `${STYLE_NAMES[style]} style`, category, ...extra].join(', ').toLowerCase();
}

const TONES: Record<string, string> = {
  '1F3FB': 'light skin tone', '1F3FC': 'medium-light skin tone', '1F3FD': 'medium skin tone',
  '1F3FE': 'medium-dark skin tone', '1F3FF': 'dark skin tone',
};

const stripVs = (hex: string) => hex.replace(/-FE0F/g, '');

function compareHex(a: string, b: string): number {
  const pa = a.split('-').map((h) => parseInt(h, 16));
  const pb = b.split('-').map((h) => parseInt(h, 16));
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return pa.length - pb.length;
}

/** Read the catalogue (no pixels): entries sorted by code points, category names. */
export function emojiCatalogue(style: EmojiStyle): { root: string; imageDir: string; entries: EmojiEntry[]; classes: string[] } {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve(`emoji-datasource-${style}/package.json`));
  const imageDir = join(root, 'img', style, '64');
  const source = JSON.parse(readFileSync(join(root, 'emoji.json'), 'utf8')) as SourceEmoji[];
  const categoryOrder = Object.keys(JSON.parse(readFileSync(join(root, 'categories.json'), 'utf8')) as Record<string, unknown>);
  const base = JSON.parse(readFileSync(require.resolve('emojibase-data/en/data.json'), 'utf8')) as EmojibaseEmoji[];

  const labels = new Map<string, { label: string; tags: string[] }>();
  const put = (e: EmojibaseEmoji, tags: string[]) => {
    labels.set(e.hexcode, { label: e.label, tags });
    if (!labels.has(stripVs(e.hexcode))) labels.set(stripVs(e.hexcode), { label: e.label, tags });
  };
  for (const e of base) { put(e, e.tags ?? []); for (const s of e.skins ?? []) put(s, e.tags ?? []); }

  const classes = [...categoryOrder];
  const has = (img: SourceImage) => (style === 'google' ? img.has_img_google : img.has_img_twitter) === true;
  const entries: EmojiEntry[] = [];
  for (const e of source) {
    let category = classes.indexOf(e.category);
    if (category < 0) category = classes.push(e.category) - 1;
    const name = (e.name ?? e.short_name.replace(/_/g, ' ')).toLowerCase();
    const add = (img: SourceImage, fallback: string) => {
      if (!has(img)) return;
      const known = labels.get(img.unified) ?? labels.get(stripVs(img.unified));
      const label = (known?.label ?? fallback).toLowerCase();
      entries.push({ unified: img.unified, file: img.image, label, caption: caption(label, style, classes[category], known?.tags ?? []), category });
    };
    add(e, name);
    for (const [tone, v] of Object.entries(e.skin_variations ?? {})) {
      const tones = tone.split('-').map((t) => TONES[t] ?? t);
      add(v, `${name}: ${tones.join(', ')}`);
    }
  }
  entries.sort((a, b) => compareHex(a.unified, b.unified));
  return { root, imageDir, entries, classes };
}

/**
 * Emoji dataset. Pixels are decoded lazily on first `get` and cached as resized 8-bit RGBA
 * (3786 × 32×32×4 ≈ 15 MB), so opening is instant and later epochs skip PNG decoding.
 */
export function loadEmoji(options: EmojiOptions = {}): EmojiDataset {
  const { style = 'google', resolution = 32, channels = 3 } = options;
  const { imageDir, entries, classes } = emojiCatalogue(style);
  const cache: (Uint8Array | undefined)[] = new Array(entries.length);
  const name = `emoji-${style}`;
  return {
    name, size: entries.length, channels, resolution, classes, entries,
    get(i: number): Sample {
      if (!(Number.isInteger(i) && i >= 0 && i < entries.length)) throw new RangeError(`${name}: index ${i} out of range 0..${entries.length - 1}`);
      const e = entries[i];
      let rgba = cache[i];
      if (rgba === undefined) {
        const path = join(imageDir, e.file);
        rgba = resizeTo(decodeImage(readFileSync(path), path), resolution).rgba;
        cache[i] = rgba;
      }
      return { image: toCHW({ width: resolution, height: resolution, rgba }, channels), label: e.category, caption: e.caption };
    },
  };
}
