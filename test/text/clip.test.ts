/** The CLIP BPE tokenizer: ids of known sentences (CLIP's own tokenizer's), any Unicode text, framing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClipTokenizer, START_OF_TEXT, END_OF_TEXT, CLIP_CONTEXT_LENGTH } from '../../src/text/clip.js';

const tok = new ClipTokenizer();

test('known sentences get the ids of CLIP\'s tokenizer', () => {
  // clip.tokenize("a photo of a cat")[0][:7] in OpenAI's implementation
  assert.deepEqual(Array.from(tok.tokenize('a photo of a cat').subarray(0, 8)), [49406, 320, 1125, 539, 320, 2368, 49407, 0]);
  // clean-up: case, whitespace runs, HTML entities
  assert.deepEqual(tok.encode('  A   PHOTO\tof &amp;amp; a cat '), tok.encode('a photo of & a cat'));
  assert.deepEqual(tok.encode("it's"), [...tok.encode('it'), ...tok.encode("'s")]);
});

test('accented, CJK and emoji strings get the ids of CLIP\'s published algorithm', () => {
  // Expected ids were derived with an independent Python implementation of OpenAI's simple_tokenizer
  // algorithm (GPT-2 bytes_to_unicode, the 48894 merges of bpe_simple_vocab_16e6 as ranks, CLIP's
  // pattern with \p{L}/\p{N} through the `regex` module, html.unescape twice, NFC, whitespace clean-up,
  // lower-case; ftfy's mojibake repair left out, which is the identity on these strings).
  const cases: [string, number[]][] = [
    ['Crème brûlée à la café', [1075, 12138, 614, 711, 127, 119, 75, 13489, 21259, 1210, 15304]],
    ['日本語のテキスト', [39121, 44353, 34002, 252, 21575, 2429, 228, 47121, 32421, 486]],
    ['grinning face 😀 with 🏳️‍🌈', [709, 4415, 1710, 7334, 593, 32610]],
    ["It's 2021, naïve!", [585, 568, 273, 271, 273, 272, 267, 1097, 35689, 563, 256]],
  ];
  for (const [text, ids] of cases) assert.deepEqual(tok.encode(text), ids, text);
});

test('any Unicode text round-trips through its ids', () => {
  for (const s of ['café naïve', '日本語のテキスト', 'grinning face 😀 with 🏳️‍🌈', 'zwj‍joiner', 'ÅÄÖ', 'digits 12345', '\u{1F9D1}\u200D\u{1F680} astronaut', '¿qué?']) {
    const ids = tok.encode(s);
    assert.ok(ids.every((i) => Number.isInteger(i) && i >= 0 && i < START_OF_TEXT), s);
    assert.equal(tok.decode(ids).replace(/ /g, ''), ClipTokenizer.clean(s).replace(/ /g, ''), s);
  }
  assert.equal(tok.encode('9 8').length, 2, 'digits are single tokens');
});

test('tokenize frames, pads and truncates to the context length', () => {
  const short = tok.tokenize('a cat');
  assert.equal(short.length, CLIP_CONTEXT_LENGTH);
  assert.deepEqual(Array.from(short.subarray(0, 5)), [START_OF_TEXT, 320, 2368, END_OF_TEXT, 0]);
  const long = tok.tokenize('cat '.repeat(100), 10);
  assert.equal(long.length, 10);
  assert.equal(long[0], START_OF_TEXT);
  assert.equal(long[9], END_OF_TEXT);
  assert.ok(long.subarray(1, 9).every((i) => i === 2368));
  assert.throws(() => tok.tokenize('x', 1), /context length/);
});
