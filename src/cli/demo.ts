/**
 * `imagebart demo`: the shipped default model (models/mnist: a VQGAN and a T=3 chain trained here
 * on MNIST) samples digits, shows them coarse to fine, and repaints the upper half of a held-out
 * digit from its lower half. Everything goes through the same commands a user runs.
 */
import { mkdirSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadMnist, fromCHW, encodePng } from '../data/index.js';
import { sampleCommand, editCommand } from './sample.js';
import { writeAtomic } from '../io/output.js';

const HELP = `imagebart demo [--out DIR] [--seed N]

Runs the shipped MNIST model: 16 samples (and their coarse-to-fine steps) and upper-half completions
of a held-out digit, written as PNG files to DIR (default demo/). The demo's own files in DIR are
replaced on every run.
`;

const MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'mnist', 'chain.json');

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!existsSync(MODEL)) throw new Error(`the shipped model ${MODEL} is missing: reinstall the package`);
  const out = values.out ?? 'demo';
  const seed = values.seed ?? '0';
  mkdirSync(out, { recursive: true });
  const samples = join(out, 'samples.png');
  let code = await sampleCommand(['--chain', MODEL, '--count', '16', '--seed', seed, '--out', samples, '--intermediates', '--force']);
  if (code !== 0) return code;
  // A held-out digit: the model never saw the test split.
  const test = loadMnist({ split: 'test' });
  const digit = join(out, 'digit.png');
  writeAtomic(digit, encodePng(fromCHW(test.get(Number(seed) % test.size).image, 1, 32, 32).rgba, 32, 32));
  const completion = join(out, 'completion.png');
  code = await editCommand(['--chain', MODEL, '--image', digit, '--mask', 'upper-half', '--count', '6', '--seed', seed, '--out', completion, '--force']);
  if (code !== 0) return code;
  console.log(`\ndemo: ${samples} (and -steps.png: x_T … x_0), ${completion} (input, masked input, reconstruction, completions)`);
  return 0;
}
