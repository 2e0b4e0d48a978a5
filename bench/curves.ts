/**
 * Training curves of a chain run as a PNG: validation NLL (bits per token, EMA weights) of every scale
 * against its step, read from the scale checkpoints' recorded history, and — when the run has a
 * quality log (`chain train --classifier`, or lines appended by `imagebart eval samples --log`) — the
 * sample Fréchet distance against the step, with the VQGAN-reconstruction reference as a rule.
 * Charts are vega-lite specifications rendered to SVG by vega and rasterised by resvg.
 *
 *   node dist/bench/curves.js --run runs/mnist-c10 --out docs/curves-mnist.png [--reference 1.23] [--title …]
 */
import { parseArgs } from 'node:util';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import { readSafetensorsHeader } from '../src/torch/index.js';

const { values: args } = parseArgs({
  options: {
    run: { type: 'string' },
    out: { type: 'string' },
    reference: { type: 'string' },
    title: { type: 'string' },
  },
  strict: true,
});
if (!args.run || !args.out) {
  console.error('usage: node dist/bench/curves.js --run DIR --out FILE.png [--reference FD] [--title TEXT]');
  process.exit(2);
}
const run = args.run;

const nll: { step: number; bits: number; scale: string }[] = [];
for (const d of readdirSync(run).filter((n) => /^scale\d+$/.test(n)).sort()) {
  const ck = join(run, d, 'checkpoint.safetensors');
  if (!existsSync(ck)) continue;
  const history = JSON.parse(readSafetensorsHeader(ck).metadata.history ?? '[]') as { step: number; nllEma: number }[];
  for (const h of history) nll.push({ step: h.step, bits: h.nllEma, scale: d.replace('scale', 'scale ') });
}
const qualityLog = join(run, 'quality.jsonl');
const quality = existsSync(qualityLog)
  ? readFileSync(qualityLog, 'utf-8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; frechet: number; n: number })
  : [];

const nllPanel = {
  width: 380, height: 240, title: 'validation NLL (EMA weights)',
  data: { values: nll }, mark: { type: 'line', point: true },
  encoding: {
    x: { field: 'step', type: 'quantitative', title: 'step' },
    y: { field: 'bits', type: 'quantitative', title: 'bits per token', scale: { zero: false } },
    color: { field: 'scale', type: 'nominal', title: null },
  },
};
const layers: unknown[] = [{
  data: { values: quality }, mark: { type: 'line', point: true, color: '#c0392b' },
  encoding: { x: { field: 'step', type: 'quantitative', title: 'step (slowest scale)' }, y: { field: 'frechet', type: 'quantitative', title: `Fréchet distance (N ${quality[0]?.n ?? '—'})` } },
}];
if (args.reference) {
  layers.push({ data: { values: [{ y: Number(args.reference) }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { y: { field: 'y', type: 'quantitative' } } });
}
const spec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: args.title ?? run,
  hconcat: quality.length ? [nllPanel, { width: 380, height: 240, title: 'sample Fréchet distance (dashed: VQGAN reconstructions)', layer: layers }] : [nllPanel],
} as unknown as vl.TopLevelSpec;

const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
const svg = await view.toSVG();
writeFileSync(args.out, new Resvg(svg, { background: 'white', fitTo: { mode: 'zoom', value: 2 } }).render().asPng());
console.log(`${nll.length} NLL points, ${quality.length} quality points → ${args.out}`);
