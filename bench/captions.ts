/**
 * A caption grid of a text-conditional chain as a PNG: one row per caption, `--count` samples each
 * (one seed for the figure, batch i of a row drawn from splitmix64(seed, i) as everywhere), the
 * caption written beside its row. With `--held-out DATA` a caption that is one of that dataset's
 * test-split captions (for `emoji`: a name never seen in training) is marked "held out"; without it
 * rows are marked nothing. Composed as SVG (images embedded as PNG) and rasterised by resvg.
 *
 *   node dist/bench/captions.js --model models/emoji-text --out docs/emoji-captions.png \
 *     --captions "red heart, noto style, smileys & emotion|…" [--count 8] [--seed 0] [--guidance 2] [--held-out emoji]
 */
import { parseArgs } from 'node:util';
import { writeFileSync, renameSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import { Pipeline, pixelsToPng } from '../src/pipeline/index.js';
import { openDataset } from '../src/data/index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, out: { type: 'string' }, captions: { type: 'string' }, count: { type: 'string', default: '8' },
    seed: { type: 'string', default: '0' }, guidance: { type: 'string' }, 'held-out': { type: 'string' }, scale: { type: 'string', default: '2' },
  },
  strict: true,
});
if (!args.model || !args.out || !args.captions) {
  console.error('usage: node dist/bench/captions.js --model DIR --out FILE.png --captions "A|B|…" [--count N] [--seed N] [--guidance S] [--held-out DATA] [--scale Z]');
  process.exit(2);
}
const captions = args.captions.split('|').map((c) => c.trim()).filter(Boolean);
const count = Number(args.count), zoom = Number(args.scale);
const pipe = Pipeline.load(args.model);
if (pipe.info.conditioning.kind !== 'text') throw new Error(`${args.model} is conditioned on ${pipe.info.conditioning.description}, not on text`);
const heldOut = new Set<string>();
if (args['held-out']) {
  const test = openDataset(args['held-out'], { split: 'test', resolution: pipe.info.resolution, channels: pipe.info.channels });
  for (let i = 0; i < test.size; i++) heldOut.add(test.get(i).caption ?? '');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const side = pipe.info.resolution * zoom, gap = 4, labelWidth = 460, rowHeight = side + gap;
const parts: string[] = [];
captions.forEach((caption, row) => {
  const out = pipe.sample({ count, seed: args.seed, condition: caption, ...(args.guidance ? { guidance: Number(args.guidance) } : {}) });
  const y = row * rowHeight + gap;
  const words = caption.length > 62 ? `${caption.slice(0, 60)}…` : caption;
  parts.push(`<text x="8" y="${y + side / 2 - 4}" font-family="sans-serif" font-size="14">${esc(words)}</text>`);
  if (heldOut.has(caption)) parts.push(`<text x="8" y="${y + side / 2 + 14}" font-family="sans-serif" font-size="12" fill="#c0392b">held out of training</text>`);
  out.images.forEach((img, k) => {
    const png = pixelsToPng(img, out.shape).toString('base64');
    parts.push(`<image x="${labelWidth + k * (side + gap)}" y="${y}" width="${side}" height="${side}" image-rendering="optimizeSpeed" href="data:image/png;base64,${png}"/>`);
  });
  console.log(`${heldOut.has(caption) ? 'held out' : 'caption '} | ${caption}`);
});
const width = labelWidth + count * (side + gap), height = captions.length * rowHeight + gap;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
const tmp = `${args.out}.tmp`;
writeFileSync(tmp, new Resvg(svg, { background: 'white' }).render().asPng());
renameSync(tmp, args.out);
console.log(`${captions.length} captions × ${count} samples (seed ${args.seed}${args.guidance ? `, guidance ${args.guidance}` : ''}) → ${args.out}`);
