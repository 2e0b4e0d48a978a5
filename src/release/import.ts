/**
 * Importing an official release into a model directory that `sample`, `edit` and `serve` load like
 * any chain of this project:
 *
 *   MODEL_DIR/chain.json          the chain manifest (schedule, K, grid, classes, sampling defaults)
 *   MODEL_DIR/scale<t>.safetensors each scale's EMA weights (+ buffers), the export layout of chain/checkpoint.ts
 *   MODEL_DIR/vqgan.safetensors   the first stage with its remap (`quantize.used`)
 *   MODEL_DIR/README.md           the model card: where it came from, what was read, what was ignored
 *
 * What the official code does, done the same way (DESIGN §6):
 * - weights: sampling uses the EMA shadows, named `'transformer_ema.' + name.replace('.', '')` —
 *   mapped forward from this port's parameter names; buffers (the GPT masks) come from `transformer.*`;
 * - the first stage: the VQGAN checkpoint (its `loss.*` dropped), overridden by scale 1's
 *   `first_stage_model.*` (which holds `quantize.used`); the remap file must agree with it;
 * - the saved `alphats`/`alphacum` must equal the schedule rebuilt from `redraw_prob`;
 * - `hyper_parameters`, when present, is an omegaconf DictConfig pickle: read as data (its
 *   `_content`), it must equal the YAML's `model.params`; any other object in it is refused.
 * Streaming: checkpoints are opened without reading tensor data, and each tensor is read, checked,
 * written and freed before the next, so memory stays at one tensor, whatever the release's size.
 * The directory is built under a temporary name and renamed when complete; an existing one is never touched.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { type Tensor, type DType, onDevice, writeSafetensors, type TensorSource, tensor } from '../torch/index.js';
import { openTorchCheckpoint, TensorRef, PickledObject, StorageHandle, type OpenCheckpoint } from '../io/index.js';
import { classConditioning, createDenoiser, chainManifest, writeManifest, SCALE_CHECKPOINT_FORMAT, unmaskedOf, type ScaleSpec } from '../chain/index.js';
import { VQModel, VQGAN_FORMAT } from '../vqgan/index.js';
import { readRelease, type Release, type ReleaseScale } from './config.js';
import { ReleaseError } from './files.js';
import { summarizeRelease, formatSummary } from './inspect.js';

/** The official sampler's default top-k (`sample_single_scale(top_k=None)`), clamped to K. */
export const OFFICIAL_TOP_K = 100;

export interface ImportOptions {
  root?: string;
  /** Write the weights as float16 (half the size). */
  half?: boolean;
  /** Told of each step (file read or written). */
  onProgress?: (message: string) => void;
}

export interface ImportResult {
  manifest: string;
  release: Release;
  files: string[];
}

const isDict = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof PickledObject) && !(x instanceof TensorRef);

/**
 * omegaconf's pickled DictConfig/ListConfig/value nodes → plain data: a container's items are its
 * `_content`, a node's value its `_val`. Anything else that is not plain data is refused.
 */
export function configData(x: unknown, path = 'hyper_parameters'): unknown {
  if (x instanceof PickledObject) {
    const state = isDict(x.state) ? x.state : undefined;
    if (/^omegaconf\.(dictconfig\.DictConfig|listconfig\.ListConfig)$/.test(x.global) && state && '_content' in state) return configData(state._content, path);
    if (/^omegaconf\.nodes\.\w+$/.test(x.global) && state && '_val' in state) return configData(state._val, path);
    throw new ReleaseError(`${path} holds an object of class ${x.global}: not configuration data, refused (it is never constructed)`);
  }
  if (x instanceof TensorRef) throw new ReleaseError(`${path} holds a tensor, not configuration data`);
  if (Array.isArray(x)) return x.map((v, i) => configData(v, `${path}[${i}]`));
  if (isDict(x)) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, configData(v, `${path}.${k}`)]));
  if (x === null || ['string', 'number', 'boolean'].includes(typeof x)) return x;
  throw new ReleaseError(`${path} holds a ${typeof x}, not configuration data`);
}

/** The first path at which two config values differ, or undefined. */
function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (isDict(a) && isDict(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
    return undefined;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  return a === b ? undefined : `${path} (checkpoint ${JSON.stringify(a)}, YAML ${JSON.stringify(b)})`;
}

/** A checkpoint's state_dict as TensorRefs, its hyper_parameters (as data) and step counters. */
function openScale(path: string): { ck: OpenCheckpoint; sd: Map<string, TensorRef>; hyper?: unknown; step: number } {
  if (!existsSync(path)) throw new ReleaseError(`checkpoint ${path} is missing from the release`);
  const ck = openTorchCheckpoint(path, { skipUnknown: true, verifyCrc: false });
  try {
    const root = ck.root;
    if (!isDict(root)) throw new ReleaseError(`checkpoint ${path}: not a Lightning checkpoint (a dict with state_dict)`);
    const raw = isDict(root.state_dict) ? root.state_dict : Object.values(root).every((v) => v instanceof TensorRef) ? root : undefined;
    if (!raw) throw new ReleaseError(`checkpoint ${path}: has no state_dict (keys: ${Object.keys(root).join(', ')})`);
    const sd = new Map<string, TensorRef>();
    for (const [k, v] of Object.entries(raw)) {
      if (!(v instanceof TensorRef)) throw new ReleaseError(`checkpoint ${path}: state_dict entry '${k}' is not a tensor`);
      sd.set(k, v);
    }
    const hyper = root.hyper_parameters === undefined ? undefined : configData(root.hyper_parameters, `checkpoint ${path}: hyper_parameters`);
    return { ck, sd, hyper, step: typeof root.global_step === 'number' ? root.global_step : 0 };
  } catch (e) {
    ck.close();
    throw e;
  }
}

/** A tensor source read from a checkpoint on demand, checked against the shape the model expects, cast to `dtype`. */
function fromCheckpoint(ck: OpenCheckpoint, ref: TensorRef, key: string, want: readonly number[], dtype: DType | undefined): TensorSource {
  if (ref.size.join(',') !== want.join(',')) throw new ReleaseError(`checkpoint ${ck.path}: ${key} has shape [${ref.size.join(', ')}], the config's model needs [${want.join(', ')}]`);
  const stored = (ref.storage as StorageHandle).dtype;
  const out = dtype && (stored === 'float32' || stored === 'float64' || stored === 'float16' || stored === 'bfloat16') ? dtype : stored;
  return {
    dtype: out, shape: ref.size,
    bytes: () => {
      const t = ck.load(ref);
      const c = out === t.dtype ? t : t.to(out);
      const bytes = c.toArray();
      if (c !== t) c.dispose();
      t.dispose();
      return bytes;
    },
  };
}

/** Reads one tensor (a small buffer) to check it. */
function read(ck: OpenCheckpoint, ref: TensorRef | undefined, key: string): Tensor {
  if (!ref) throw new ReleaseError(`checkpoint ${ck.path}: has no ${key}`);
  return ck.load(ref);
}

function checkSchedule(ck: OpenCheckpoint, sd: Map<string, TensorRef>, release: Release): void {
  for (const [key, want] of [['alphats', release.schedule.alpha], ['alphacum', release.schedule.alphacum]] as const) {
    if (!sd.has(key)) continue; // pruned checkpoints drop the diffusion buffers
    const t = read(ck, sd.get(key), key);
    const got = t.toNumbers();
    t.dispose();
    const off = got.length !== want.length ? -2 : got.findIndex((v, i) => Math.abs(v - want[i]!) > 1e-6);
    if (off !== -1) throw new ReleaseError(`checkpoint ${ck.path}: its saved ${key} [${got.join(', ')}] disagrees with the schedule '${release.schedule.spec}' of the config [${want.join(', ')}]`);
  }
}

/** Scale t's weights → scale<t>.safetensors (EMA parameters as `ema.*`, buffers as `model.*`). */
function importScale(s: ReleaseScale, release: Release, dir: string, o: ImportOptions): { file: string; firstStage?: Map<string, TensorRef>; ck: OpenCheckpoint } {
  const { ck, sd, hyper, step } = openScale(s.checkpoint);
  try {
    if (hyper !== undefined) {
      const d = firstDifference(hyper, s.params, 'hyper_parameters');
      if (d) throw new ReleaseError(`checkpoint ${s.checkpoint}: ${d} differs from model.params of ${s.config}; the release's config and checkpoint disagree`);
    }
    checkSchedule(ck, sd, release);
    const spec: ScaleSpec = { t: s.t, shape: release.shape, schedule: release.schedule.spec, model: s.model };
    const model = onDevice('meta', () => createDenoiser(s.t, s.model, release.shape, release.schedule));
    const params = new Map(model.namedParameters().map(([k, v]) => [k, v.shape]));
    const buffers = new Map(model.namedBuffers(true).map(([k, v]) => [k, v.shape]));
    const out = new Map<string, TensorSource>();
    const dtype: DType | undefined = o.half ? 'float16' : undefined;
    for (const [k, shape] of params) {
      const ema = `transformer_ema.${k.slice('transformer.'.length).replace(/\./g, '')}`;
      const key = s.useEma ? ema : k;
      const ref = sd.get(key);
      if (!ref) throw new ReleaseError(`checkpoint ${s.checkpoint}: has no ${key} (${s.useEma ? `the EMA of ${k}; the config says use_ema: true` : 'the config says use_ema: false'})`);
      out.set(`ema.${k}`, fromCheckpoint(ck, ref, key, shape, dtype));
    }
    for (const [k, shape] of buffers) {
      const ref = sd.get(k);
      if (!ref) throw new ReleaseError(`checkpoint ${s.checkpoint}: has no ${k}`);
      if (k.endsWith('.attn.mask')) {
        const mask = read(ck, ref, k);
        const u = unmaskedOf(mask);
        mask.dispose();
        const want = s.model.type === 'gpt' ? s.model.nUnmasked ?? 0 : 0;
        if (u === undefined || Math.max(u, 1) !== Math.max(want, 1)) {
          throw new ReleaseError(`checkpoint ${s.checkpoint}: ${k} ${u === undefined ? 'is not a causal mask with a bidirectional prefix' : `lets the first ${u} positions attend both ways`}, but the config's n_unmasked is ${want}`);
        }
      }
      out.set(`model.${k}`, fromCheckpoint(ck, ref, k, shape, undefined));
    }
    const known = /^(sos_token|alphats|alphacum|first_stage_model\.|transformer_ema\.(decay|num_updates)$)/;
    const unexpected = [...sd.keys()].filter((k) => !known.test(k) && !(k.startsWith('transformer.') && (params.has(k) || buffers.has(k))) && !(k.startsWith('transformer_ema.') && [...params.keys()].some((p) => `transformer_ema.${p.slice(12).replace(/\./g, '')}` === k)));
    if (unexpected.length) throw new ReleaseError(`checkpoint ${s.checkpoint}: keys the config's model does not have: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? `, … (${unexpected.length})` : ''}`);
    const sos = sd.get('sos_token');
    if (sos) {
      const t = read(ck, sos, 'sos_token');
      const v = t.toNumbers();
      t.dispose();
      if (v.some((x) => x !== 0)) throw new ReleaseError(`checkpoint ${s.checkpoint}: sos_token is ${v.join(', ')}; this port decodes with SOS = 0, as every official config`);
    }
    const updatesRef = sd.get('transformer_ema.num_updates');
    let updates = 0;
    if (updatesRef) { const t = read(ck, updatesRef, 'num_updates'); updates = t.item(); t.dispose(); }
    const file = `scale${s.t}.safetensors`;
    o.onProgress?.(`scale ${s.t}: ${s.checkpoint} → ${file} (${params.size} EMA parameters, ${buffers.size} buffers)`);
    writeSafetensors(join(dir, file), out, {
      format: SCALE_CHECKPOINT_FORMAT, scale: JSON.stringify(spec), step: JSON.stringify(step), ema_updates: JSON.stringify(updates), optim_step: '0',
      exported_from_step: String(step),
      official: JSON.stringify({ config: s.config, checkpoint: s.checkpoint, denoiser: s.denoiser, transformer: s.transformer, alpha: s.lossAlpha, top_k: s.configTopK, use_ema: s.useEma }),
    });
    const firstStage = new Map([...sd].filter(([k]) => k.startsWith('first_stage_model.')).map(([k, v]) => [k.slice('first_stage_model.'.length), v]));
    return { file, firstStage, ck };
  } catch (e) {
    ck.close();
    throw e;
  }
}

/** The first stage → vqgan.safetensors: the VQGAN checkpoint overridden by scale 1's copy, with its remap. */
function importFirstStage(release: Release, scale1: { ck: OpenCheckpoint; firstStage?: Map<string, TensorRef> }, dir: string, o: ImportOptions): string {
  const fs = release.firstStage;
  const vq = fs.checkpoint && existsSync(fs.checkpoint) ? openScale(fs.checkpoint) : undefined;
  if (fs.checkpoint && !vq && !scale1.firstStage?.size) throw new ReleaseError(`the first stage's checkpoint ${fs.checkpoint} is missing, and scale 1's checkpoint holds no first_stage_model`);
  try {
    const model = onDevice('meta', () => {
      const m = new VQModel(fs.config);
      if (fs.used || scale1.firstStage?.has('quantize.used')) m.quantize.setUsed(tensor(BigInt64Array.from([0n]), [1]));
      return m;
    });
    const shapes = new Map([...model.stateDict()].map(([k, v]) => [k, v.shape] as const));
    const ours = scale1.firstStage?.get('quantize.used');
    let used = fs.used;
    if (ours) {
      const t = read(scale1.ck, ours, 'first_stage_model.quantize.used');
      const fromCkpt = t.toNumbers();
      t.dispose();
      if (used && (used.length !== fromCkpt.length || used.some((c, i) => c !== fromCkpt[i]))) {
        throw new ReleaseError(`remap file ${fs.remap} (${used.length} codes) disagrees with ${scale1.ck.path}'s first_stage_model.quantize.used (${fromCkpt.length} codes)${used.length === fromCkpt.length ? ' in their values' : ''}`);
      }
      used = fromCkpt;
    }
    if (fs.remap && !used) throw new ReleaseError(`the config remaps the codebook with ${fs.remap}, but that file is missing and no checkpoint holds quantize.used`);
    if (used && used.length !== release.K) throw new ReleaseError(`the remap keeps ${used.length} codes, but the transformers' codebook is ${release.K}`);
    const out = new Map<string, TensorSource>();
    const dtype: DType | undefined = o.half ? 'float16' : undefined;
    if (vq) {
      const extra = [...vq.sd.keys()].filter((k) => !shapes.has(k) && !k.startsWith('loss.'));
      if (extra.length) throw new ReleaseError(`VQGAN checkpoint ${fs.checkpoint}: keys the config's VQGAN does not have: ${extra.slice(0, 5).join(', ')}`);
    }
    for (const [k, shape] of shapes) {
      if (k === 'quantize.used') {
        const codes = BigInt64Array.from(used!, BigInt);
        out.set(k, { dtype: 'int64', shape: [codes.length], bytes: () => codes });
        continue;
      }
      const fromScale = scale1.firstStage?.get(k);
      const src = fromScale ? { ck: scale1.ck, ref: fromScale } : vq?.sd.get(k) ? { ck: vq.ck, ref: vq.sd.get(k)! } : undefined;
      if (!src) throw new ReleaseError(`the first stage's ${k} is in neither ${fs.checkpoint ?? '(no VQGAN checkpoint)'} nor scale 1's first_stage_model`);
      out.set(k, fromCheckpoint(src.ck, src.ref, k, shape, dtype));
    }
    o.onProgress?.(`first stage: ${fs.checkpoint ?? '-'} + scale 1's first_stage_model → vqgan.safetensors`);
    const config = { ...fs.config, ddconfig: { ...fs.config.ddconfig } };
    writeSafetensors(join(dir, 'vqgan.safetensors'), out, { format: VQGAN_FORMAT, config: JSON.stringify(config), source: JSON.stringify({ vqgan: fs.checkpoint, remap: fs.remap, overridden_by: scale1.ck.path }) });
    return 'vqgan.safetensors';
  } finally {
    vq?.ck.close();
  }
}

function modelCard(release: Release, sampling: string): string {
  const s = summarizeRelease(release);
  return `# ${basename(release.sampling, '.yaml')} (imported official ImageBART release)

Imported by \`imagebart import\` from \`${release.sampling}\` (release root \`${release.root}\`).
ImageBART (Esser, Rombach, Blattmann, Ommer, NeurIPS 2021): the official code and weights are CompVis's; see their licence.

- T = ${release.T} scales, K_eff = ${release.K} codes, ${release.tokenShape.join('×')} tokens, ${release.firstStage.config.ddconfig.resolution}×${release.firstStage.config.ddconfig.resolution} pixels
- conditioning: ${release.classes === null ? 'none' : `class id in 0..${release.classes - 1} (\`--class\`)`}
- weights: the EMA weights of every scale${release.scales.some((x) => !x.useEma) ? ' (training weights where the config says use_ema: false)' : ''}; the first stage is scale 1's, as the official sampler decodes
- sampling default: top-k ${sampling} (the official sampler's 100, clamped to K); flags override it
- first stage: unknown_index 'random' and legacy quantizer loss, which taming's VQModel always builds

\`\`\`
${formatSummary(s).trimEnd()}
\`\`\`

Use it like any chain of this project:

\`\`\`sh
imagebart sample --chain chain.json --count 16${release.classes === null ? '' : ' --class 0'} --out samples.png
imagebart edit --chain chain.json --image photo.png --mask upper-half${release.classes === null ? '' : ' --class 0'} --out edit.png
\`\`\`
`;
}

/** Imports the release of `samplingPath` into `outDir` (which must not exist, or be empty). */
export function importRelease(samplingPath: string, outDir: string, o: ImportOptions = {}): ImportResult {
  const out = resolve(outDir);
  if (existsSync(out) && readdirSync(out).length > 0) throw new ReleaseError(`${out} exists and is not empty: choose a new folder (an import never overwrites a model)`);
  const release = readRelease(samplingPath, { root: o.root });
  const tmp = join(dirname(out), `.${basename(out)}.import-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const opened: OpenCheckpoint[] = [];
  try {
    const scales: { t: number; checkpoint: string }[] = [];
    let scale1: { ck: OpenCheckpoint; firstStage?: Map<string, TensorRef> } | undefined;
    for (const s of release.scales) {
      const r = importScale(s, release, tmp, o);
      opened.push(r.ck);
      if (s.t === 1) scale1 = r;
      else r.ck.close();
      scales.push({ t: s.t, checkpoint: r.file });
    }
    const vqgan = importFirstStage(release, scale1!, tmp, o);
    const topK = Math.min(OFFICIAL_TOP_K, release.K);
    const manifest = { ...chainManifest({ vqgan, remap: null, K: release.K, T: release.T, schedule: release.schedule.spec, tokenShape: release.tokenShape, conditioning: classConditioning(release.classes), scales }), sampling: { topK } };
    writeManifest(join(tmp, 'chain.json'), manifest);
    writeFileSync(join(tmp, 'README.md'), modelCard(release, String(topK)));
    for (const ck of opened) ck.close();
    opened.length = 0;
    if (existsSync(out)) rmSync(out, { recursive: true }); // empty, checked above
    renameSync(tmp, out);
    return { manifest: join(out, 'chain.json'), release, files: ['chain.json', ...scales.map((s) => s.checkpoint), vqgan, 'README.md'].map((f) => join(out, f)) };
  } catch (e) {
    for (const ck of opened) ck.close();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
