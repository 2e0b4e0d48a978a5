/**
 * An official ImageBART release, read from its configs alone (DESIGN §6): a sampling YAML naming one
 * checkpoint and one training YAML per scale, every path relative to the release root.
 *
 * Each scale YAML is translated into this port's terms — ScaleModelConfig, ChainShape, the schedule,
 * the VQGAN's VQModelConfig — and every key is accounted for: options that shape the model or its
 * outputs are implemented or refused with the key's name; training-only keys (optimiser, data,
 * logging) are listed as ignored; anything unknown is refused. What the official code derives
 * rather than reads is derived the same way:
 * - K_eff = len(remap) (the quantizer's re_embed with unknown_index 'random', the only one taming's
 *   VQModel builds: it passes neither unknown_index nor legacy, so they are 'random' and true);
 * - β from `redraw_prob`: geometric, a constant, or a measured curve `[<dataset>_]<dist>_<metric>`
 *   read from `data/<dataset or in>_schedule_vs_metric.p` when the release has it (else the copy
 *   built into src/diffusion/curves.ts);
 * - class conditioning (ClassProvider): ids share the input table, whose size is the class count.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { betasFromCurve, fromBetas, makeSchedule, MEASURED_CURVES, type Schedule, type ScheduleSpec } from '../diffusion/index.js';
import { inputVocab, type ChainShape, type ScaleModelConfig } from '../chain/index.js';
import { ddconfigFromTaming, latentSize, makeConfig, type VQModelConfig } from '../vqgan/index.js';
import { ReleaseError, readNpyInts, readScheduleCurve, readYaml } from './files.js';

type Dict = Record<string, unknown>;

export interface ReleaseScale {
  t: number;
  /** The scale's training YAML and checkpoint, resolved against the root. */
  config: string;
  checkpoint: string;
  /** The official classes (`model.target`, `transformer_config.target`), last path part. */
  denoiser: string;
  transformer: string;
  model: ScaleModelConfig;
  /** The loss mix α (training only) and the config's top_k (the official code logs with it only). */
  lossAlpha: number;
  configTopK: number;
  useEma: boolean;
  /** The scale's `model.params` as read (hyper_parameters in a checkpoint are compared with it). */
  params: Dict;
}

export interface FirstStageSpec {
  config: VQModelConfig;
  /** The VQGAN checkpoint and the remap list, resolved (null when the config names none). */
  checkpoint: string | null;
  remap: string | null;
  /** The remap list when its file is present. */
  used: number[] | null;
}

export interface Release {
  root: string;
  sampling: string;
  T: number;
  K: number;
  tokenShape: [number, number];
  /** Class count of a class-conditional release, else null. */
  classes: number | null;
  schedule: Schedule;
  /** Where the schedule's curve came from (a file of the release, or built in). */
  scheduleSource: string;
  shape: ChainShape;
  firstStage: FirstStageSpec;
  scales: ReleaseScale[];
  /** Keys read and deliberately not used, with why; shown by --inspect and in the model card. */
  ignored: string[];
}

const isDict = (x: unknown): x is Dict => x !== null && typeof x === 'object' && !Array.isArray(x);
const last = (target: string) => target.split('.').pop() ?? target;

/** Reads a config mapping key by key: `take` marks a key used, `done` refuses the rest. */
class Keys {
  private readonly used = new Set<string>();
  constructor(readonly d: Dict, readonly where: string, private readonly file: string) {}
  fail(key: string, why: string): never {
    throw new ReleaseError(`${this.file}: ${this.where}.${key}: ${why}`);
  }
  take(key: string): unknown {
    this.used.add(key);
    return this.d[key];
  }
  need<T>(key: string, check: (v: unknown) => v is T, what: string): T {
    const v = this.take(key);
    if (!check(v)) this.fail(key, v === undefined ? `missing (${what})` : `expected ${what}, got ${JSON.stringify(v)}`);
    return v;
  }
  int(key: string, min = 1): number {
    return this.need(key, (v): v is number => Number.isInteger(v) && (v as number) >= min, `an integer ≥ ${min}`);
  }
  optional<T>(key: string, check: (v: unknown) => v is T, what: string, fallback: T): T {
    return this.d[key] === undefined ? (this.take(key), fallback) : this.need(key, check, what);
  }
  dict(key: string): Keys {
    return new Keys(this.need(key, isDict, 'a mapping'), `${this.where}.${key}`, this.file);
  }
  /** Keys that only matter for training: accepted, recorded as ignored. */
  trainingOnly(keys: string[], ignored: string[]): void {
    for (const k of keys) if (this.d[k] !== undefined) { this.take(k); ignored.push(`${this.where}.${k} (training only)`); }
  }
  /** Refuses keys nobody took. */
  done(): void {
    const rest = Object.keys(this.d).filter((k) => !this.used.has(k));
    if (rest.length) this.fail(rest[0]!, 'unknown option: this importer does not implement it, so it refuses the release rather than guess');
  }
}

const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isIntList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x > 0);
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.length > 0 && v.every(isStr);

/** The release root: `root` if given, else the nearest folder above the YAML against which its first config resolves. */
function findRoot(sampling: string, firstConfig: string, root?: string): string {
  if (root) return resolve(root);
  for (let dir = dirname(resolve(sampling)); ; dir = dirname(dir)) {
    if (existsSync(resolve(dir, firstConfig))) return dir;
    if (dirname(dir) === dir) throw new ReleaseError(`${sampling}: cannot find the release root (no folder above it holds ${firstConfig}); pass --root`);
  }
}

/** taming's ddconfig keys; `tanh_out` is read by nothing (taming's Decoder takes **ignorekwargs). */
const DDCONFIG_KEYS = ['double_z', 'z_channels', 'resolution', 'in_channels', 'out_ch', 'ch', 'ch_mult', 'num_res_blocks', 'attn_resolutions', 'dropout'];

function firstStage(k: Keys, root: string, ignored: string[]): FirstStageSpec & { ddKeys: Dict } {
  const target = k.need('target', isStr, 'a class path');
  if (!['imagebart.models.vqgan.VQGANWrapper', 'taming.models.vqgan.VQModel'].includes(target)) k.fail('target', `${target} is not a VQGAN this port implements (VQGANWrapper, VQModel)`);
  const p = k.dict('params');
  const dd = p.dict('ddconfig');
  const ddRead: Dict = {};
  for (const key of DDCONFIG_KEYS) if (dd.d[key] !== undefined) ddRead[key] = dd.take(key);
  if (dd.d.tanh_out !== undefined) {
    dd.take('tanh_out');
    ignored.push(`${dd.where}.tanh_out (taming's Decoder ignores it: no tanh, as in the official code)`);
  }
  if (dd.d.resamp_with_conv !== undefined && dd.take('resamp_with_conv') !== true) dd.fail('resamp_with_conv', 'only true (the default) is implemented');
  if (dd.d.give_pre_end !== undefined && dd.take('give_pre_end') !== false) dd.fail('give_pre_end', 'only false (the default) is implemented');
  dd.done();
  const ckpt = p.optional('ckpt_path', (v): v is string | null => v === null || isStr(v), 'a path', null);
  const remap = p.optional('remap', (v): v is string | null => v === null || isStr(v), 'a path', null);
  const sane = p.optional('sane_index_shape', isBool, 'true or false', false);
  const nEmbed = p.int('n_embed');
  const embedDim = p.int('embed_dim');
  const ignoreKeys = p.optional('ignore_keys', (v): v is unknown[] => Array.isArray(v), 'a list', []);
  if (ignoreKeys.length) p.fail('ignore_keys', 'dropping checkpoint keys is not implemented');
  p.trainingOnly(['lossconfig', 'monitor', 'image_key', 'colorize_nlabels'], ignored);
  p.done();
  k.done();
  let config: VQModelConfig;
  try {
    config = makeConfig({ ddconfig: ddconfigFromTaming(ddRead), nEmbed, embedDim, beta: 0.25, legacy: true, saneIndexShape: sane, unknownIndex: 'random' });
  } catch (e) {
    throw new ReleaseError(`${k.where}.params.ddconfig: ${(e as Error).message}`);
  }
  const remapPath = remap === null ? null : resolve(root, remap);
  const used = remapPath && existsSync(remapPath) ? readNpyInts(remapPath) : null;
  if (used) {
    const badAt = used.findIndex((c, i) => !(c >= 0 && c < nEmbed) || (i > 0 && c <= used[i - 1]!));
    if (badAt >= 0) throw new ReleaseError(`remap file ${remapPath}: entry ${badAt} (${used[badAt]}) is not a code of the ${nEmbed}-entry codebook in ascending order`);
  }
  return { config, checkpoint: ckpt === null ? null : resolve(root, ckpt), remap: remapPath, used, ddKeys: { ...ddRead, n_embed: nEmbed, embed_dim: embedDim, remap, sane } };
}

/** The official `redraw_prob` → schedule spec, checking a measured curve against the release's own file. */
function schedule(redraw: string | number, T: number, root: string): { schedule: Schedule; source: string } {
  if (typeof redraw === 'number' || redraw === 'geometric') return { schedule: makeSchedule(redraw, T), source: 'config' };
  const parts = redraw.split('_');
  if (parts.length < 2 || parts.length > 3) throw new ReleaseError(`redraw_prob '${redraw}': expected geometric, a number, or [<dataset>_]<distribution>_<metric>`);
  const [dataset, dist, metric] = parts.length === 2 ? ['in', ...parts] : parts;
  const file = resolve(root, `data/${dataset}_schedule_vs_metric.p`);
  const builtIn = MEASURED_CURVES[`${dataset}_${dist}_${metric}`];
  if (!existsSync(file)) {
    if (!builtIn) throw new ReleaseError(`redraw_prob '${redraw}': the release has no ${file} and no such curve is built in`);
    return { schedule: makeSchedule(redraw, T), source: `built-in copy of data/${dataset}_schedule_vs_metric.p (absent from the release)` };
  }
  const curve = readScheduleCurve(file, dist!, metric!);
  const mine = fromBetas(redraw, betasFromCurve(curve, T));
  if (builtIn && JSON.stringify(makeSchedule(redraw, T).beta) === JSON.stringify(mine.beta)) return { schedule: makeSchedule(redraw, T), source: file };
  // The release's curve differs from the built-in one: keep its ᾱ explicitly.
  const spec: ScheduleSpec = `alphacum:${mine.alphacum.join(',')}`;
  return { schedule: makeSchedule(spec, T), source: `${file} (differs from the built-in curve; kept as explicit ᾱ)` };
}

interface ScaleRead {
  scale: ReleaseScale;
  T: number;
  K: number;
  classes: number | null;
  redraw: string | number;
  stage: ReturnType<typeof firstStage>;
}

function readScale(file: string, checkpoint: string, t: number, root: string, ignored: string[]): ScaleRead {
  const raw = readYaml(file);
  if (!isDict(raw)) throw new ReleaseError(`${file}: expected a mapping with 'model'`);
  const top = new Keys(raw, 'config', file);
  const model = top.dict('model');
  top.trainingOnly(['data', 'lightning'], ignored);
  top.done();
  const denoiser = model.need('target', isStr, 'a class path');
  model.trainingOnly(['base_learning_rate'], ignored);
  const p = model.dict('params');
  model.done();
  const kind = { 'imagebart.models.diffusion.DenoisingXTransformer': 'xt', 'imagebart.models.diffusion.DecoderOnlyDenoiser': 'gpt' }[denoiser];
  if (!kind) model.fail('target', `${denoiser} is not a denoiser this port implements (DenoisingXTransformer, DecoderOnlyDenoiser)`);
  const T = p.int('n_scales');
  if (p.int('single_scale') !== t) p.fail('single_scale', `is ${String(p.d.single_scale)}, but the sampling config lists this file as scale ${t}`);
  const configTopK = p.int('top_k');
  const lossAlpha = p.need('alpha', (v): v is number => isNum(v) && v >= 0 && v <= 1, 'a number in [0, 1]');
  const redraw = p.need('redraw_prob', (v): v is string | number => isStr(v) || isNum(v), 'a schedule name or a number');
  const useEma = p.optional('use_ema', isBool, 'true or false', false);
  p.trainingOnly(['first_stage_key', 'monitor', 'scheduler_config', 'ckpt_path', 'ignore_keys'], ignored);
  let classes: number | null = null;
  if (p.d.conditioner_config !== undefined && p.d.conditioner_config !== null) {
    const c = p.dict('conditioner_config');
    const target = c.need('target', isStr, 'a class path');
    if (target !== 'imagebart.util.ClassProvider') c.fail('target', `${target} is not implemented (only class conditioning, imagebart.util.ClassProvider)`);
    const cp = c.d.params === undefined ? undefined : c.dict('params');
    const key = cp?.optional('key', isStr, 'a batch key', 'class') ?? 'class';
    cp?.done();
    c.done();
    ignored.push(`${c.where}.params.key = ${key} (the batch field classes come from in training)`);
    classes = 0; // the count is the input table's, below
  } else p.take('conditioner_config');
  const tc = p.dict('transformer_config');
  const stage = firstStage(p.dict('first_stage_config'), root, ignored);
  p.done();
  const transformer = tc.need('target', isStr, 'a class path');
  const tp = tc.dict('params');
  tc.done();
  const cond = classes === null ? 0 : 1;
  let m: ScaleModelConfig, K: number;
  const N = latentSize(stage.config.ddconfig) ** 2;
  const expect = (k: Keys, key: string, want: number, why: string) => {
    const v = k.int(key, 0);
    if (v !== want) k.fail(key, `is ${v}, but ${why} makes it ${want}: not a layout this port implements`);
  };
  if (kind === 'xt') {
    const residual = transformer === 'imagebart.modules.xtransformers.x_transformer.ResidualScaledXTransformer';
    if (!residual && transformer !== 'imagebart.modules.xtransformers.x_transformer.XTransformer') tc.fail('target', `${transformer} is not implemented (XTransformer, ResidualScaledXTransformer)`);
    const dim = tp.int('dim');
    K = tp.int('dec_num_tokens', 2);
    const heads = tp.int('enc_heads');
    if (tp.int('dec_heads') !== heads) tp.fail('dec_heads', `differs from enc_heads ${heads}: one head count for both stacks is implemented`);
    if (tp.optional('wrap_decoder', isBool, 'true or false', false)) tp.fail('wrap_decoder', 'true is not implemented');
    if (tp.optional('tie_token_emb', isBool, 'true or false', false)) tp.fail('tie_token_emb', 'true is not implemented');
    const encoderDepth = tp.int('enc_depth');
    const decoderDepth = tp.int('dec_depth');
    const encTokens = tp.int('enc_num_tokens', 2);
    if (classes !== null) classes = encTokens;
    const shape = { K, T, tokens: N, condLength: cond, condVocab: classes ?? undefined };
    if (encTokens !== inputVocab(shape)) tp.fail('enc_num_tokens', `is ${encTokens}, but codes, scale ids${classes === null ? '' : ' and classes'} need ${inputVocab(shape)}: not a layout this port implements`);
    const atLeast = (key: string, want: number, why: string) => {
      const v = tp.int(key);
      if (v < want) tp.fail(key, `is ${v}, shorter than ${why} (${want} positions)`);
      return v;
    };
    const encoderMaxSeqLen = atLeast('enc_max_seq_len', 1 + cond + N, `[t${cond ? ', class' : ''}, x_t] of a ${N}-token grid`);
    const decoderMaxSeqLen = atLeast('dec_max_seq_len', N, `a ${N}-token grid`);
    if (residual) {
      expect(tp, 'scale_pos', 0, 't first in the encoder input');
      expect(tp, 'n_scales', T, 'n_scales of the model');
      expect(tp, 'xt_start', 1 + cond, `[t${cond ? ', class' : ''}, x_t]`);
      expect(tp, 'xt_size', N, `a ${N}-token grid`);
    }
    tp.done();
    m = { type: residual ? 'residual-xtransformer' : 'xtransformer', dim, heads, encoderDepth, decoderDepth, encoderMaxSeqLen, decoderMaxSeqLen };
  } else {
    if (transformer !== 'imagebart.modules.transformer.mingpt.GPT') tc.fail('target', `${transformer} is not implemented (minGPT GPT)`);
    K = tp.int('vocab_size', 2);
    const nEmbd = tp.int('n_embd');
    const heads = tp.int('n_head');
    if (nEmbd % heads) tp.fail('n_head', `${heads} does not divide n_embd ${nEmbd}`);
    const depth = tp.int('n_layer');
    const blockSize = tp.int('block_size');
    const nUnmasked = tp.optional('n_unmasked', (v): v is number => Number.isInteger(v) && (v as number) >= 0, 'an integer ≥ 0', 0);
    const inTokens = tp.optional('input_vocab_size', (v): v is number => Number.isInteger(v) && (v as number) >= 2, 'an integer ≥ 2', K);
    if (classes !== null) classes = inTokens;
    const shape = { K, T, tokens: N, condLength: cond, condVocab: classes ?? undefined };
    if (inTokens !== inputVocab(shape)) tp.fail(tp.d.input_vocab_size === undefined ? 'vocab_size' : 'input_vocab_size', `is ${inTokens}, but codes, scale ids${classes === null ? '' : ' and classes'} need ${inputVocab(shape)}: not a layout this port implements`);
    if (blockSize < cond + N) tp.fail('block_size', `is ${blockSize}, shorter than the input [t${cond ? ', class' : ''}, x[:-1]] of ${cond + N} positions`);
    if (nUnmasked > 1 + cond) tp.fail('n_unmasked', `is ${nUnmasked}, beyond the ${1 + cond}-token prefix: image tokens would see later ones, which token-by-token sampling cannot reproduce`);
    for (const k of ['embd_pdrop', 'resid_pdrop', 'attn_pdrop']) if (tp.d[k] !== undefined) { tp.need(k, isNum, 'a probability'); ignored.push(`${tp.where}.${k} (dropout: training only)`); }
    tp.done();
    m = { type: 'gpt', dim: nEmbd, heads, depth, nUnmasked, blockSize };
  }
  const scale: ReleaseScale = {
    t, config: file, checkpoint, denoiser: last(denoiser), transformer: last(transformer), model: m, lossAlpha, configTopK, useEma, params: p.d,
  };
  return { scale, T, K, classes, redraw, stage };
}

/** Reads and checks a release's sampling YAML and every scale YAML it names (no weights are read). */
export function readRelease(samplingPath: string, o: { root?: string } = {}): Release {
  const raw = readYaml(samplingPath);
  if (!isDict(raw)) throw new ReleaseError(`${samplingPath}: expected a mapping with 'checkpoints' and 'configs'`);
  const top = new Keys(raw, 'sampling', samplingPath);
  const checkpoints = top.need('checkpoints', isStrList, 'a list of checkpoint paths');
  const configs = top.need('configs', isStrList, 'a list of config paths');
  top.done();
  if (checkpoints.length !== configs.length) throw new ReleaseError(`${samplingPath}: ${checkpoints.length} checkpoints but ${configs.length} configs; a release has one of each per scale`);
  const root = findRoot(samplingPath, configs[0]!, o.root);
  const ignored: string[] = [];
  const reads = configs.map((c, i) => readScale(resolve(root, c), resolve(root, checkpoints[i]!), i + 1, root, ignored));
  const T = reads.length;
  const disagree = (what: string, f: (r: ScaleRead) => unknown) => {
    const first = JSON.stringify(f(reads[0]!));
    const j = reads.findIndex((r) => JSON.stringify(f(r)) !== first);
    if (j >= 0) throw new ReleaseError(`${reads[j]!.scale.config}: ${what} ${JSON.stringify(f(reads[j]!))} differs from scale 1's ${first}`);
  };
  for (const r of reads) if (r.T !== T) throw new ReleaseError(`${r.scale.config}: model.params.n_scales is ${r.T}, but the sampling config lists ${T} scales`);
  disagree('the codebook size (dec_num_tokens / vocab_size)', (r) => r.K);
  disagree('the conditioning (classes)', (r) => r.classes);
  disagree('redraw_prob', (r) => r.redraw);
  disagree('the first stage', (r) => r.stage.ddKeys);
  disagree('the first-stage checkpoint', (r) => r.stage.checkpoint);
  for (const r of reads.slice(0, -1)) if (r.scale.model.type === 'gpt') throw new ReleaseError(`${r.scale.config}: scale ${r.scale.t} is decoder-only; only the last scale T may be`);
  if (reads[T - 1]!.scale.model.type !== 'gpt') throw new ReleaseError(`${reads[T - 1]!.scale.config}: the last scale must be the decoder-only GPT (DecoderOnlyDenoiser)`);
  const { K, classes } = reads[0]!;
  const stage = reads[0]!.stage;
  const reEmbed = stage.used ? stage.used.length : stage.remap ? undefined : stage.config.nEmbed;
  if (reEmbed !== undefined && reEmbed !== K) {
    throw new ReleaseError(stage.used
      ? `remap file ${stage.remap} keeps ${reEmbed} codes, but the transformers' codebook (dec_num_tokens / vocab_size) is ${K}`
      : `first_stage_config names no remap, so the codebook has n_embed = ${reEmbed} codes, but the transformers' is ${K}`);
  }
  const side = latentSize(stage.config.ddconfig);
  const { schedule: s, source } = schedule(reads[0]!.redraw, T, root);
  if (s.beta[T] !== 1) throw new ReleaseError(`redraw_prob ${JSON.stringify(reads[0]!.redraw)}: β_T = ${s.beta[T]}, but sampling starts from uniform noise (β_T = 1)`);
  const { ddKeys: _, ...firstStageSpec } = stage;
  return {
    root, sampling: resolve(samplingPath), T, K, tokenShape: [side, side], classes, schedule: s, scheduleSource: source,
    shape: { K, T, tokens: side * side, condLength: classes === null ? 0 : 1, condVocab: classes ?? undefined },
    firstStage: firstStageSpec, scales: reads.map((r) => r.scale), ignored: [...new Set(ignored)],
  };
}
