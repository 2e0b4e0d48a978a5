/**
 * `imagebart import SAMPLING.yaml --out MODEL_DIR` and `imagebart import --inspect SAMPLING.yaml`:
 * a door onto src/release (importRelease, readRelease + summarizeRelease).
 */
import { parseArgs } from 'node:util';
import { UsageError, need } from './args.js';
import { formatSummary, importRelease, readRelease, summarizeRelease, type ReleaseSummary } from '../release/index.js';

const HELP = `imagebart import SAMPLING.yaml --out MODEL_DIR [options]
imagebart import --inspect SAMPLING.yaml [--json]

Imports an official ImageBART release as it is published — a sampling YAML naming one training YAML
and one Lightning checkpoint per scale, a VQGAN checkpoint and a vqgan_indices/*.npy remap, every
path relative to the release root — into a model directory (chain.json, scale<t>.safetensors,
vqgan.safetensors, README.md) that sample and edit load like any chain. The EMA weights are taken;
checkpoints are read safely (no pickle code runs) and converted one tensor at a time. Every config
key is used, refused by name, or listed as training-only.

--inspect reads the configs alone (no weights needed) and prints T, K_eff, the schedule, each
scale's architecture and parameter count, the conditioning and the memory sampling needs.

Options:
  --out DIR      the model directory to create (must not exist, or be empty)
  --root DIR     the release root (default: the nearest folder above the YAML that holds its configs)
  --half         store the weights as float16 (half the size)
  --inspect      describe the release instead of importing it
  --json         with --inspect: the summary as JSON
  -h, --help     this text

Examples:
  imagebart import --inspect configs/sampling/imagenet/imagenet_4_scales_geometric.yaml
  imagebart import configs/sampling/ffhq/ffhq_4_scales_geometric.yaml --out models/ffhq-4
  imagebart sample --chain models/ffhq-4/chain.json --count 8 --out faces.png
`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  out: { type: 'string' },
  root: { type: 'string' },
  half: { type: 'boolean' },
  inspect: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

/** `imagebart import …` (the arguments after `import`); resolves to the exit code. */
export async function importCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true });
    if (!parsed.values.help && parsed.positionals.length !== 1) throw new UsageError(`expected one sampling YAML, got ${parsed.positionals.length} arguments`);
  } catch (e) {
    process.stderr.write(`imagebart import: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    const sampling = positionals[0]!;
    if (v.inspect) {
      const s: ReleaseSummary = summarizeRelease(readRelease(sampling, { root: v.root }));
      process.stdout.write(v.json ? `${JSON.stringify(s, null, 2)}\n` : formatSummary(s));
      return 0;
    }
    if (v.json) throw new UsageError('--json goes with --inspect');
    const out = need(v.out, 'out');
    const r = importRelease(sampling, out, { root: v.root, half: v.half, onProgress: (m) => process.stderr.write(`${m}\n`) });
    process.stderr.write(`imported ${r.release.T} scales (K_eff ${r.release.K}) → ${r.manifest}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`imagebart import: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}
