/** Bad inputs to `imagebart chain train|export`, table-driven: messages asserted, no chain file changed. */
import { test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveSafetensors, tensor } from '../../src/torch/index.js';
import { chainCommand } from '../../src/cli/chain.js';
import { saveTinyChain } from '../sample/tiny.js';
import { checkBadInputs, type BadCase } from './harness.js';

const root = mkdtempSync(join(tmpdir(), 'imagebart-bad-chain-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const models = join(root, 'models');
mkdirSync(models);
const manifest = saveTinyChain(models);
const otherT = join(root, 'other');
mkdirSync(otherT);
const guideT3 = saveTinyChain(otherT, { T: 3 });
const tokens = join(models, 'tokens.safetensors');
saveSafetensors(tokens, { tokens: tensor(Int16Array.from({ length: 8 * 16 }, (_, i) => i % 16), [8, 4, 4]) }, { K: '16' });
const train = (...a: string[]) => ['train', '--tokens', tokens, '--out', join(root, 'run'), '--scale', '1', '--T', '2', '--steps', '1', ...a];

const CASES: BadCase[] = [
  { name: 'chain train --batch-size 0', argv: train('--batch-size', '0'), message: /--batch-size must be an integer in 1\.\.1024, got '0'/ },
  { name: 'chain train --lr -1', argv: train('--lr', '-1'), message: /--lr must be a number > 0, got '-1'/ },
  { name: 'chain train --seed 0x10', argv: train('--seed', '0x10'), message: /--seed must be an integer in 0\.\.4294967295, got '0x10' \(hexadecimal is not accepted\)/ },
  { name: 'chain train --K 1e2', argv: train('--K', '1e2'), message: /--K must be an integer ≥ 2, got '1e2'/ },
  { name: 'chain train --condition pose', argv: train('--condition', 'pose'), message: /--condition pose: expected none, class, text or segmentation/ },
  { name: 'chain train --condition text --classes 3', argv: train('--condition', 'text', '--classes', '3'), message: /--condition text does not go with --classes \(that is --condition class\)/ },
  { name: 'chain train --condition none --caption-length 8', argv: train('--condition', 'none', '--caption-length', '8'), message: /--condition none does not go with --caption-length/ },
  { name: 'chain train --condition class on unnamed labels', argv: train('--condition', 'class'), message: /--condition class: .*tokens\.safetensors names no classes; give their number with --classes N/ },
  { name: 'chain train --condition text on a file without captions', argv: train('--condition', 'text'), message: /has no captions: a text-conditional chain needs a token file of a captioned dataset/ },
  { name: 'chain train --condition segmentation without maps', argv: train('--condition', 'segmentation'), message: /--condition segmentation needs the label maps: --segmentation-tokens FILE/ },
  { name: 'chain export into its own folder', argv: ['export', '--manifest', manifest, '--out', models], message: /chain\.json: that is the source chain file of this run/ },
  { name: 'chain export --guide without --guidance', argv: ['export', '--manifest', manifest, '--guide', guideT3, '--out', join(root, 'x')], message: /--guide and --guidance go together/ },
  { name: 'chain export --guide of another process', argv: ['export', '--manifest', manifest, '--guide', guideT3, '--guidance', '2', '--out', join(root, 'x')], message: /guide .*chain\.json: its T 3 differs from the chain's 2/ },
  { name: 'chain export --guide into the guide\'s folder', argv: ['export', '--manifest', guideT3, '--guide', guideT3, '--guidance', '2', '--out', otherT], message: /that is the source chain file of this run/ },
];

test('imagebart chain: bad inputs are refused before any work, and no chain file changes', async () => {
  await checkBadInputs(chainCommand, CASES, [models, otherT]);
});
