/**
 * The chain manifest: one JSON file tying a trained chain together — the VQGAN that makes the tokens,
 * its codebook remap, the noise schedule and each scale's checkpoint. Paths are relative to the
 * manifest's folder, so a chain directory can be moved as a whole.
 *
 * {
 *   "format": "imagebart-chain/1",
 *   "vqgan": "vqgan.safetensors", "remap": null,
 *   "K": 64, "T": 3, "schedule": "geometric", "beta": [0, 0.333…, 0.5, 1],
 *   "tokenShape": [8, 8], "conditioning": { "kind": "none" },
 *   "scales": [{ "t": 1, "checkpoint": "scale1/checkpoint.safetensors" }, …]
 * }
 */
import { writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { readJsonFile, parseWith } from '../io/schema.js';
import { makeSchedule, type Schedule, type ScheduleSpec } from '../diffusion/index.js';
import type { Denoiser } from './denoiser.js';
import { ConditioningSchema, classConditioning, conditioningShape, describeConditioning, type Conditioning } from './conditioning.js';
import { loadScaleCheckpoint, exportScaleCheckpoint } from './checkpoint.js';

export const CHAIN_MANIFEST_FORMAT = 'imagebart-chain/1';
/** The label-map VQ model's file name in a release copy of a segmentation chain. */
export const SEGMENTATION_VQGAN = 'seg-vqgan.safetensors';

export interface ChainManifest {
  format: typeof CHAIN_MANIFEST_FORMAT;
  /** The VQGAN weights that encode images to tokens and decode them back. */
  vqgan: string | null;
  /** A used-code list, when it is not inside the VQGAN file. */
  remap: string | null;
  K: number;
  T: number;
  schedule: ScheduleSpec;
  /** β_0..β_T of the schedule, recorded for readers and checked on load. */
  beta: number[];
  /** Token grid [h, w]. */
  tokenShape: [number, number];
  /** What the chain is conditioned on (manifests written before this field say `classes: n | null`). */
  conditioning: Conditioning;
  scales: { t: number; checkpoint: string }[];
  /** Sampling defaults the model comes with (an imported release: the official top-k of 100, clamped to K); flags override them. */
  sampling?: { topK?: number };
  /**
   * Autoguidance the model comes with (Karras et al. 2024): a weaker chain of the same process (fewer
   * parameters, shorter training), one checkpoint per scale, and the guidance scale s used by default.
   */
  guide?: ChainGuide;
}

/** A manifest's weaker chain and its default guidance scale. */
export interface ChainGuide {
  scale: number;
  scales: { t: number; checkpoint: string }[];
}

const positiveInt = z.number().int().positive();

/** The manifest's schema: every field typed, unknown fields refused (a new optional field is one line here). */
export const ChainManifestSchema = z.strictObject({
  format: z.literal(CHAIN_MANIFEST_FORMAT),
  vqgan: z.string().min(1).nullable(),
  remap: z.string().min(1).nullable(),
  K: z.number().int().min(2),
  T: positiveInt,
  schedule: z.union([z.string(), z.number()]),
  beta: z.array(z.number()),
  tokenShape: z.tuple([positiveInt, positiveInt]),
  conditioning: ConditioningSchema,
  scales: z.array(z.strictObject({ t: positiveInt, checkpoint: z.string().min(1) })),
  sampling: z.strictObject({ topK: positiveInt.optional() }).optional(),
  guide: z.strictObject({
    scale: z.number().min(0).max(20),
    scales: z.array(z.strictObject({ t: positiveInt, checkpoint: z.string().min(1) })),
  }).optional(),
}) satisfies z.ZodType<ChainManifest>;

/**
 * What a file may hold: the manifest, or one written before `conditioning`, which said `classes: n | null`
 * (read as a class conditioning; whether it is nullable is read off the models in loadChain).
 */
const StoredManifestSchema = z.preprocess((v) => {
  if (!v || typeof v !== 'object' || 'conditioning' in v || !('classes' in v)) return v;
  const { classes, ...rest } = v as { classes: unknown };
  return { ...rest, conditioning: typeof classes === 'number' ? classConditioning(classes) : classes === null ? classConditioning(null) : { kind: 'class', classes } };
}, ChainManifestSchema);

/** A manifest for a chain; `beta` is filled in from the schedule. */
export function chainManifest(m: Omit<ChainManifest, 'format' | 'beta'>): ChainManifest {
  return { format: CHAIN_MANIFEST_FORMAT, ...m, beta: [...makeSchedule(m.schedule, m.T).beta] };
}

/** Writes the manifest atomically (temporary file, then rename). */
export function writeManifest(path: string, m: ChainManifest): void {
  checkManifest(m, path);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(m, null, 2)}\n`);
  renameSync(tmp, path);
}

export function readManifest(path: string): ChainManifest {
  const m = readJsonFile(StoredManifestSchema, path, 'chain manifest') as ChainManifest;
  checkManifest(m, path);
  return m;
}

/** Every file a manifest at `path` names (VQGAN, remap, checkpoints), resolved, with the manifest itself. */
export function chainFiles(path: string, m: ChainManifest): string[] {
  const named = [m.vqgan, m.remap, m.conditioning.kind === 'segmentation' ? m.conditioning.vqgan : null, ...[...m.scales, ...(m.guide?.scales ?? [])].map((s) => s.checkpoint)]
    .filter((p): p is string => !!p);
  return [resolve(path), ...named.map((p) => resolve(dirname(path), p))];
}

/**
 * Loads every scale of a manifest's chain (EMA weights unless `ema: false`), ordered by t, and the
 * weaker chain of its autoguidance when it has one.
 */
export function loadChain(path: string, o: { ema?: boolean } = {}): {
  manifest: ChainManifest; schedule: Schedule; denoisers: Denoiser[]; guide?: { scale: number; denoisers: Denoiser[] }; resolve: (p: string) => string;
} {
  const manifest = readManifest(path);
  const at = (p: string) => resolve(dirname(path), p);
  const schedule = makeSchedule(manifest.schedule, manifest.T);
  const load = (scales: ChainManifest['scales']) => [...scales].sort((a, b) => a.t - b.t).map(({ t, checkpoint }) => {
    const { denoiser, spec } = loadScaleCheckpoint(at(checkpoint), o);
    const [h, w] = manifest.tokenShape;
    const clash = spec.t !== t ? `it holds scale ${spec.t}, not ${t}`
      : spec.shape.K !== manifest.K || spec.shape.T !== manifest.T || JSON.stringify(spec.schedule) !== JSON.stringify(manifest.schedule)
        ? `its chain (K ${spec.shape.K}, T ${spec.shape.T}, schedule ${spec.schedule}) differs from the manifest's`
        : spec.shape.tokens !== h * w ? `it models ${spec.shape.tokens} tokens, the manifest ${h}×${w}` : '';
    if (clash) throw new Error(`chain manifest ${path}: checkpoint ${checkpoint}: ${clash}`);
    return denoiser;
  });
  const denoisers = load(manifest.scales);
  const guide = manifest.guide && { scale: manifest.guide.scale, denoisers: load(manifest.guide.scales) };
  const c = manifest.conditioning;
  if (c.kind === 'class' && !c.nullable && denoisers[0].shape.condVocab === c.classes + 1) manifest.conditioning = { ...c, nullable: true };
  const want = conditioningShape(manifest.conditioning);
  for (const d of [...denoisers, ...(guide?.denoisers ?? [])]) {
    if ((d.shape.condLength ?? 0) !== want.condLength || (d.shape.condVocab ?? 0) !== want.condVocab || (d.shape.mapVocab ?? 0) !== want.mapVocab) {
      throw new Error(`chain manifest ${path}: scale ${d.t} takes ${d.shape.condLength ?? 0} conditioning tokens of ${d.shape.condVocab ?? 0} ids and label maps of ${d.shape.mapVocab ?? 0} ids, ` +
        `but the manifest's conditioning (${describeConditioning(manifest.conditioning)}) means ${want.condLength} of ${want.condVocab} and maps of ${want.mapVocab}`);
    }
  }
  return { manifest, schedule, denoisers, ...(guide ? { guide } : {}), resolve: at };
}

/** A weaker chain (its manifest at `path`) as `m`'s guide: checked to be a chain of the same process; checkpoint paths resolved. */
export function guideFrom(m: ChainManifest, path: string, scale: number): ChainGuide {
  const g = readManifest(path);
  const same = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`guide ${path}: its ${what} ${JSON.stringify(b)} differs from the chain's ${JSON.stringify(a)}`);
  };
  same('K', m.K, g.K);
  same('T', m.T, g.T);
  same('β', m.beta, g.beta);
  same('token grid', m.tokenShape, g.tokenShape);
  same('conditioning', m.conditioning, g.conditioning);
  if (!(Number.isFinite(scale) && scale >= 0 && scale <= 20)) throw new RangeError(`guidance scale must be a number in [0, 20], got ${scale}`);
  return { scale, scales: g.scales.map((s) => ({ t: s.t, checkpoint: resolve(dirname(path), s.checkpoint) })) };
}

/** The schema, then what it cannot say: beta agrees with the schedule, one checkpoint per scale. */
function checkManifest(m: ChainManifest, path: string): void {
  const bad = (why: string) => new Error(`chain manifest ${path}: ${why}`);
  parseWith(ChainManifestSchema, m, `chain manifest ${path}`);
  let beta: readonly number[];
  try {
    beta = makeSchedule(m.schedule, m.T).beta;
  } catch (e) {
    throw bad(`field "schedule": ${(e as Error).message}`);
  }
  if (JSON.stringify(beta) !== JSON.stringify(m.beta)) throw bad(`beta ${JSON.stringify(m.beta)} does not match schedule '${m.schedule}' (${JSON.stringify(beta)})`);
  for (const [scales, what] of [[m.scales, ''], [m.guide?.scales, 'its guide (autoguidance) ']] as const) {
    if (!scales) continue;
    const ts = scales.map((s) => s.t).sort((a, b) => a - b);
    if (ts.length !== m.T || ts.some((t, i) => t !== i + 1)) throw bad(`${what}needs one checkpoint per scale 1..${m.T}, has scales [${ts.join(', ')}]`);
  }
}

/**
 * A self-contained release copy of a chain in `outDir`: the VQGAN's weights (via `copyVQGAN`, which
 * the caller supplies so that this layer needs no VQGAN code), each scale's EMA weights
 * (exportScaleCheckpoint) and a manifest with paths relative to outDir. Its autoguidance comes along
 * (guide-scale<t>.safetensors), or is set by `guide`: a weaker chain checked by `guideFrom`, its
 * checkpoint paths resolved.
 */
export function exportChain(manifestPath: string, outDir: string, o: { half?: boolean; copyVQGAN: (src: string, dst: string) => void; guide?: ChainGuide }): string {
  const m = readManifest(manifestPath);
  const from = (p: string) => resolve(dirname(manifestPath), p);
  const guideSource = o.guide ?? (m.guide && { scale: m.guide.scale, scales: m.guide.scales.map((s) => ({ t: s.t, checkpoint: from(s.checkpoint) })) });
  mkdirSync(outDir, { recursive: true });
  const scales = m.scales.map((s) => {
    const file = `scale${s.t}.safetensors`;
    exportScaleCheckpoint(from(s.checkpoint), resolve(outDir, file), { half: o.half });
    return { ...s, checkpoint: file };
  });
  const guide = guideSource && {
    scale: guideSource.scale,
    scales: guideSource.scales.map((s) => {
      const file = `guide-scale${s.t}.safetensors`;
      exportScaleCheckpoint(s.checkpoint, resolve(outDir, file), { half: o.half });
      return { t: s.t, checkpoint: file };
    }),
  };
  let vqgan = m.vqgan, conditioning = m.conditioning;
  if (vqgan) {
    o.copyVQGAN(from(vqgan), resolve(outDir, 'vqgan.safetensors'));
    vqgan = 'vqgan.safetensors';
  }
  if (conditioning.kind === 'segmentation') {
    o.copyVQGAN(from(conditioning.vqgan), resolve(outDir, SEGMENTATION_VQGAN));
    conditioning = { ...conditioning, vqgan: SEGMENTATION_VQGAN };
  }
  const out = resolve(outDir, 'chain.json');
  writeManifest(out, { ...m, vqgan, conditioning, scales, ...(guide ? { guide } : {}) });
  return out;
}
