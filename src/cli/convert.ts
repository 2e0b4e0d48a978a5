/**
 * `imagebart convert IN.ckpt OUT.safetensors`: an official PyTorch (Lightning) checkpoint to a
 * safetensors file with PyTorch's key names, read without Python and without running pickle code.
 */
import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import { Tensor, saveSafetensors } from '../torch/index.js';
import { BYTES } from '../torch/dtype.js';
import { readTorchCheckpoint, stateDictFromCheckpoint, disposeCheckpoint } from '../io/torchckpt.js';
import { PickledObject, TensorRef } from '../io/pickle.js';
import { splitPrefix, prefixesOf, emaStateDict, emaPrefixFor } from '../io/statedict.js';
import { OutputPlan } from '../io/output.js';

export const IMPORT_FORMAT = 'imagebart-torch-import/1';

const HELP = `imagebart convert IN.ckpt OUT.safetensors [options]

Reads a torch.save / PyTorch Lightning checkpoint (zip or legacy format) safely: only tensors and
plain data are unpickled, never code. Writes the state_dict tensors (or one model's, with --prefix)
under PyTorch's names.

Options:
  --prefix P               keep keys starting with P and strip it (e.g. transformer. or first_stage_model.)
  --ema                    with --prefix: take the EMA weights (LitEma's P_ema.*, dot-less names mapped
                           back to the parameter names); buffers keep their training values
  --allow-unknown-globals  read past objects of unknown classes (e.g. omegaconf DictConfig in
                           hyper_parameters) as placeholders; code-running globals stay refused
  --meta KEY=VALUE         add a metadata entry (repeatable), e.g. --meta n_embed=1024 for loadVQModel
  --force                  replace OUT when it exists
  -h, --help               this text

OUT must end in .safetensors and must not be IN; an existing OUT is replaced only with --force.
Both are checked before IN is read, and OUT is written whole (temporary file, then rename).
Example:
  imagebart convert last.ckpt vqgan.safetensors --prefix first_stage_model. --meta n_embed=16384
`;

/** JSON for checkpoint metadata: bigints as numbers/strings, tensors and placeholders summarised. */
function jsonSafe(x: unknown, depth = 0): unknown {
  if (depth > 32) return '…';
  if (typeof x === 'bigint') return Number.isSafeInteger(Number(x)) ? Number(x) : String(x);
  if (typeof x === 'number' && !Number.isFinite(x)) return String(x);
  if (x === null || typeof x !== 'object') return x;
  if (x instanceof TensorRef) return `<tensor [${x.size.join(', ')}]>`;
  if (x instanceof Uint8Array) return `<${x.length} bytes>`;
  if (x instanceof PickledObject) return { __global__: x.global, args: jsonSafe(x.args, depth + 1), state: jsonSafe(x.state, depth + 1) };
  if (x instanceof Set) return [...x].map((v) => jsonSafe(v, depth + 1));
  if (Array.isArray(x)) return x.map((v) => jsonSafe(v, depth + 1));
  if (x instanceof Tensor) return `<tensor [${x.shape.join(', ')}]>`;
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, jsonSafe(v, depth + 1)]));
}

export async function convertCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        prefix: { type: 'string' },
        ema: { type: 'boolean' },
        'allow-unknown-globals': { type: 'boolean' },
        meta: { type: 'string', multiple: true },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    console.error(`imagebart convert: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const [input, output, ...extra] = positionals;
  if (!input || !output || extra.length) {
    console.error(`imagebart convert: expected IN.ckpt and OUT.safetensors\n\n${HELP}`);
    return 2;
  }
  if (v.ema && !v.prefix) {
    console.error('imagebart convert: --ema needs --prefix (the model whose EMA to take, e.g. --prefix transformer.)');
    return 2;
  }
  try {
    new OutputPlan({ force: v.force }).protect('input checkpoint (IN)', input).add(output, 'safetensors', 'OUT');
  } catch (e) {
    console.error(`imagebart convert: ${(e as Error).message}`);
    return 2;
  }
  const extraMeta: Record<string, string> = {};
  for (const kv of v.meta ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) {
      console.error(`imagebart convert: --meta expects KEY=VALUE, got '${kv}'`);
      return 2;
    }
    extraMeta[kv.slice(0, eq)] = kv.slice(eq + 1);
  }

  const unknown = new Set<string>();
  let ck: unknown;
  try {
    ck = readTorchCheckpoint(input, {
      skipUnknown: v['allow-unknown-globals'] ?? false,
      onUnknownGlobal: (name) => unknown.add(name),
      // Only the weights: a Lightning state_dict, or a bare one at the top (optimizer states stay unread).
      select: (path) => path.length === 1 || (path.length === 2 && path[0] === 'state_dict'),
    });
  } catch (e) {
    const hint = /allow-list/.test((e as Error).message) ? '\n(if the file is trusted to hold only data, --allow-unknown-globals reads past it)' : '';
    console.error(`imagebart convert: ${(e as Error).message}${hint}`);
    return 1;
  }
  try {
    const sd = stateDictFromCheckpoint(ck);
    let out: Map<string, Tensor>;
    const notes: string[] = [];
    if (v.ema) {
      const r = emaStateDict(sd, v.prefix!);
      if (r.weights.size === 0 || r.fromTraining.length === r.weights.size) {
        throw new Error(`no EMA weights under '${emaPrefixFor(v.prefix!)}' for the keys under '${v.prefix}'`);
      }
      if (r.unused.length) throw new Error(`EMA entries match no parameter under '${v.prefix}': ${r.unused.slice(0, 5).join(', ')}`);
      out = r.weights;
      notes.push(`${r.weights.size - r.fromTraining.length} EMA weights, ${r.fromTraining.length} buffers from the training weights`);
    } else {
      out = v.prefix ? splitPrefix(sd, v.prefix) : sd;
    }
    if (out.size === 0) {
      const have = [...prefixesOf(sd)].map(([p, n]) => `${p} (${n})`).join(', ');
      throw new Error(`no tensors under prefix '${v.prefix}'; the state_dict has: ${have}`);
    }
    const top = ck as Record<string, unknown>;
    const meta: Record<string, string> = { format: IMPORT_FORMAT, source: basename(input) };
    if (v.prefix) meta.prefix = v.prefix;
    if (v.ema) meta.ema = 'true';
    for (const k of ['epoch', 'global_step', 'pytorch-lightning_version', 'hyper_parameters']) {
      if (top[k] !== undefined) meta[k] = JSON.stringify(jsonSafe(top[k]));
    }
    Object.assign(meta, extraMeta);
    saveSafetensors(output, out, meta);
    const bytes = [...out.values()].reduce((a, t) => a + t.numel * BYTES[t.dtype], 0);
    console.log(`wrote ${out.size} tensors (${(bytes / 2 ** 20).toFixed(1)} MiB) to ${output}${notes.length ? `: ${notes.join('; ')}` : ''}`);
    if (unknown.size) console.log(`skipped objects of unknown classes: ${[...unknown].join(', ')}`);
    return 0;
  } catch (e) {
    console.error(`imagebart convert: ${input}: ${(e as Error).message}`);
    return 1;
  } finally {
    disposeCheckpoint(ck);
  }
}
