/**
 * `imagebart serve`: the editor's HTTP server (fastify). The web page (web/) and its compiled script
 * are served statically; the API:
 *
 * | method | path | answer |
 * |---|---|---|
 * | GET  | /api/health | `{ ok, running, queued, workers, maxQueue }` at once, however busy the model is |
 * | GET  | /api/models | the served models (name, K, T, conditioning, resolution, channels, named masks) and the server's limits |
 * | GET  | /api/examples/MODEL | a model's example image names; `/api/examples/MODEL/NAME` the PNG (the model directory's examples/) |
 * | POST | /api/sample | JSON settings, or multipart: settings fields and a `segmentation` file → a stream of server-sent events: `progress` per scale, then `result` |
 * | POST | /api/edit | multipart: `image` file, `mask` file (white = keep) or `maskName`, a `segmentation` file, settings fields → events |
 * | POST | /api/label-map | multipart: `model` field, `segmentation` file → the R×R colour-coded PNG of the label map it holds |
 *
 * Settings (JSON fields or form fields): model (a served model's name; default the first), count, seed (decimal string, 64-bit), temperature, topK,
 * topP, class (class chains: an id or 'null') or prompt (text chains) or segmentation (segmentation chains: a
 * label-map picture as the multipart file `segmentation`, read by sample/segmentation.ts `readLabelMap` —
 * colour-coded at the map size R of /api/models, or a grey shape of any size —, or 'null'), guidance (chains trained with
 * dropped conditions, or shipped with a weaker chain: /api/models says which, with its default), and for edits invert, composite, repeats. A segmentation chain's `result` sidecar
 * carries `segmentation: { meanIoU, mean }`, each image's fidelity to the map. Errors are JSON `{ error }` with a 4xx
 * (bad input; 413 too large) or 503 (queue full: retry later); once a stream has started they come
 * as an `error` event. Closing the connection cancels the request's work within one token.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import fastifyMultipart from '@fastify/multipart';
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { encodePng } from '../data/index.js';
import { manifestPath, parseSeed, type ConditioningInfo, type ModelInfo } from '../pipeline/index.js';
import { LabelMapError, isNamedMask, labelMapImage, readLabelMap, type LabelMap } from '../sample/index.js';
import { Busy, JobCancelled, JobRejected, ModelPool } from './pool.js';
import { UploadError, decodeUpload, type ImageLimits } from './upload.js';
import type { DoneMessage, EditJob, Job, ProgressMessage, SampleJob } from './protocol.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface ServerOptions extends Partial<ImageLimits> {
  /** Model directories (chain.json, its VQGAN, optionally examples/*.png) or manifests; each is served under its directory's name. */
  models: string[];
  /** Where the models run (cpu, cuda, cuda:N). */
  device?: string;
  workers?: number;
  maxQueue?: number;
  /** Largest request body in bytes (JSON and multipart alike). */
  maxBody?: number;
  /** Most images one request may ask for. */
  maxCount?: number;
  /** Log requests (fastify's logger). */
  logger?: boolean;
}

export interface EditorServer {
  app: FastifyInstance;
  pool: ModelPool;
  close(): Promise<void>;
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
const dataUrl = (png: Uint8Array) => `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;

/** A 400 with a message a person can act on. */
class BadRequest extends Error {
  readonly statusCode = 400;
}

const blank = (v: unknown) => (v === '' ? undefined : v);
const asNumber = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : blank(v));
/** An optional number field (JSON number or form string) with one message for every way it can be wrong. */
const numberField = (name: string, rule: string, ok: (x: number) => boolean) => {
  const error = `${name} must be ${rule}`;
  return z.preprocess(asNumber, z.number({ error }).refine(ok, { error }).optional());
};

/**
 * The label map an uploaded picture holds, for a segmentation chain: decoded within the upload limits
 * (upload.ts), then read by the library's rules (sample/segmentation.ts `readLabelMap`); a BadRequest
 * with their message otherwise.
 */
function labelMapUpload(bytes: Uint8Array, c: ConditioningInfo, limits: ImageLimits): LabelMap {
  if (c.kind !== 'segmentation') throw new BadRequest(`segmentation map given, but this model is ${modelKind(c)}`);
  try {
    return readLabelMap(decodeUpload(bytes, 'segmentation', limits), c.resolution, c.labels);
  } catch (e) {
    if (e instanceof UploadError) throw new BadRequest(e.message);
    if (e instanceof LabelMapError) throw new BadRequest(`segmentation: ${e.message}`);
    throw e;
  }
}

const modelKind = (c: ConditioningInfo) => (c.kind === 'none' ? 'unconditional' : `conditioned on ${c.description}`);

/**
 * The settings of a request, for this model: JSON fields and form fields (strings) alike. Conditions
 * follow the chain: `class` (an id, or 'null' for the null class) for a class chain, `prompt` for a
 * text chain, `segmentation` (an uploaded label-map picture, or 'null' for the null map) for a
 * segmentation chain, none for an unconditional one; `guidance` needs a chain trained with dropped conditions
 * or shipped with a weaker chain (autoguidance).
 */
function settingsSchema(maxCount: number, info: ModelInfo, limits: ImageLimits) {
  const c = info.conditioning;
  const nullable = c.kind !== 'none' && c.nullable;
  const classes = c.kind === 'class' ? c.classes : 0;
  const classRule = c.kind === 'class' ? `class must be an integer in 0..${classes - 1}${nullable ? " or 'null'" : ''}` : 'class must be an integer';
  const other = modelKind(c);
  return z.object({
    count: numberField('count', `an integer in 1..${maxCount}`, (x) => Number.isInteger(x) && x >= 1 && x <= maxCount),
    seed: z.preprocess(blank, z.union([z.string(), z.number()], { error: 'seed must be a decimal string' }).optional()).transform((v, ctx) => {
      if (v === undefined) return undefined;
      try {
        return parseSeed(v).toString();
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    }),
    temperature: numberField('temperature', 'a number in (0, 10]', (x) => x > 0 && x <= 10),
    topK: numberField('topK', 'a positive integer', (x) => Number.isInteger(x) && x >= 1),
    topP: numberField('topP', 'a number in (0, 1]', (x) => x > 0 && x <= 1),
    guidance: numberField('guidance', 'a number in [0, 20]', (x) => x >= 0 && x <= 20)
      .refine((g) => g === undefined || info.guidance !== null, { error: `guidance needs a chain trained with dropped conditions or shipped with a weaker chain; this one is ${other}, with neither` }),
    class: z.preprocess((v) => (v === 'null' || v === null ? null : asNumber(v)), z.union([z.null(), z.number()], { error: classRule }).optional()),
    prompt: z.preprocess(blank, z.string({ error: 'prompt must be text' }).max(MAX_PROMPT, { error: `prompt must be at most ${MAX_PROMPT} characters` }).optional()),
    segmentation: z.preprocess((v) => (v === 'null' ? null : blank(v)), z.union([z.null(), z.instanceof(Uint8Array)], {
      error: "segmentation must be a label-map picture, sent as the file field 'segmentation' of a multipart/form-data request, or 'null' for the null map",
    }).optional()).transform((v, ctx): LabelMap | null | undefined => {
      if (v === undefined) return undefined;
      if (c.kind !== 'segmentation') ctx.addIssue({ code: 'custom', message: `segmentation map given, but this model is ${other}` });
      else if (v === null) return null;
      else {
        try {
          return labelMapUpload(v, c, limits);
        } catch (e) {
          if (!(e instanceof BadRequest)) throw e;
          ctx.addIssue({ code: 'custom', message: e.message });
        }
      }
      return z.NEVER;
    }),
  }).superRefine((v, ctx) => {
    const issue = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (v.class !== undefined && c.kind !== 'class') issue(`class given, but this model is ${other}`);
    if (v.prompt !== undefined && c.kind !== 'text') issue(`prompt given, but this model is ${other}`);
    if (v.class === undefined && c.kind === 'class') issue(`class is required: this model is ${other}`);
    if (v.prompt === undefined && c.kind === 'text') issue(`prompt is required: this model is ${other}`);
    if (v.segmentation === undefined && c.kind === 'segmentation') issue(`segmentation map is required: this model is ${other}; send a label-map picture as the file field 'segmentation'${nullable ? " or 'null' for the null map" : ''}`);
    if (v.segmentation === null && !nullable) issue(`segmentation 'null' (the null map) needs a chain trained with dropped label maps; this model is ${other}`);
    if (c.kind === 'class' && v.class !== undefined && (v.class === null ? !nullable : !(Number.isInteger(v.class) && v.class >= 0 && v.class < classes))) {
      issue(`${classRule}, got ${JSON.stringify(v.class)}`);
    }
  });
}

const MAX_PROMPT = 300;

/** Settings from JSON or form fields, checked by the model's schema: the same rules for both doors. */
function readSettings(schema: ReturnType<typeof settingsSchema>, f: Record<string, unknown>): Omit<SampleJob, 'kind' | 'model'> {
  const r = schema.safeParse(f);
  if (!r.success) throw new BadRequest(r.error.issues.map((i) => i.message).join('; '));
  const v = r.data;
  return {
    count: v.count ?? 1, seed: v.seed, temperature: v.temperature, topK: v.topK, topP: v.topP, guidance: v.guidance,
    condition: v.class !== undefined ? v.class : v.prompt !== undefined ? v.prompt : v.segmentation,
  };
}

/**
 * A multipart request's text fields and files; a file field outside `files` is refused. The files
 * are returned beside the fields (`settings` reads a `segmentation` file as the label map).
 */
async function readForm(req: FastifyRequest, files: readonly string[]): Promise<{ fields: Record<string, unknown>; files: Record<string, Uint8Array> }> {
  const out = { fields: {} as Record<string, unknown>, files: {} as Record<string, Uint8Array> };
  for await (const part of req.parts()) {
    if (part.type === 'file') {
      if (!files.includes(part.fieldname)) throw new BadRequest(`unexpected file field '${part.fieldname}': this request takes ${files.map((f) => `'${f}'`).join(', ')}`);
      out.files[part.fieldname] = new Uint8Array(await part.toBuffer());
    } else {
      out.fields[part.fieldname] = part.value;
    }
  }
  return out;
}

const flag = (v: unknown) => v === true || v === 'true' || v === 'on' || v === '1';

/** Each model under its directory's name; two directories of one name are refused. */
function nameModels(paths: string[]): { name: string; path: string; dir: string }[] {
  if (paths.length === 0) throw new Error('no model to serve');
  const out = paths.map((path) => {
    const dir = dirname(manifestPath(path));
    return { name: basename(dir), path, dir };
  });
  for (const m of out) if (!/^[\w.-]+$/.test(m.name)) throw new Error(`model directory name '${m.name}' must be letters, digits, '.', '_' or '-' (it names the model in URLs)`);
  const names = out.map((m) => m.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new Error(`two model directories are named '${twice}': each served model needs its own name`);
  return out;
}

export async function startServer(o: ServerOptions): Promise<EditorServer> {
  const served = nameModels(o.models);
  const limits: ImageLimits = { maxSide: o.maxSide ?? 2048, maxPixels: o.maxPixels ?? 2048 * 2048 };
  const maxBody = o.maxBody ?? 8 << 20, maxCount = o.maxCount ?? 16;
  const pool = await ModelPool.start({ models: served.map(({ name, path }) => ({ name, path })), device: o.device, workers: o.workers, maxQueue: o.maxQueue });
  const models = new Map(pool.models.map(({ name, info }) => [name, {
    info, settings: settingsSchema(maxCount, info, limits), examples: join(served.find((m) => m.name === name)!.dir, 'examples'),
  }]));
  /** The model a request names (field `model`), default the first. */
  const modelOf = (f: Record<string, unknown>) => {
    const name = f.model === undefined || f.model === '' ? pool.models[0].name : f.model;
    const m = typeof name === 'string' ? models.get(name) : undefined;
    if (!m) throw new BadRequest(`model must be one of ${[...models.keys()].join(', ')}, got ${JSON.stringify(name)}`);
    return { name: name as string, ...m };
  };
  const exampleNames = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => /\.png$/i.test(f)).sort() : []);
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: maxBody });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) app.log.error(err);
    reply.code(status).send({ error: status >= 500 ? `internal error: ${err.message}` : err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no such resource: ${req.method} ${req.url}` }));

  await app.register(fastifyMultipart, { limits: { fileSize: maxBody, files: 3, fields: 20, fieldSize: 1024, parts: 24 } });
  await app.register(fastifyStatic, { root: join(ROOT, 'web'), prefix: '/', index: 'index.html' });
  await app.register(fastifyStatic, { root: join(ROOT, 'dist', 'web'), prefix: '/app/', decorateReply: false });
  for (const [name, m] of models) {
    if (existsSync(m.examples)) await app.register(fastifyStatic, { root: m.examples, prefix: `/api/examples/${name}/`, decorateReply: false, index: false, list: false });
  }

  app.get('/api/health', async () => ({ ok: true, running: pool.running, queued: pool.queued, workers: pool.workers, maxQueue: pool.maxQueue }));
  app.get('/api/models', async () => ({
    models: pool.models.map(({ name, info }) => ({ name, ...info, manifest: undefined })), limits: { ...limits, maxBody, maxCount },
  }));
  app.get<{ Params: { model: string } }>('/api/examples/:model', async (req, reply) => {
    const m = models.get(req.params.model);
    if (!m) return reply.code(404).send({ error: `no model named ${JSON.stringify(req.params.model)}: this server has ${[...models.keys()].join(', ')}` });
    return { examples: exampleNames(m.examples) };
  });

  /** Queues a job and streams its progress and result as server-sent events; a closed connection cancels it. */
  async function stream(req: FastifyRequest, reply: FastifyReply, job: Job): Promise<void> {
    if (pool.running >= pool.workers && pool.queued >= pool.maxQueue) {
      reply.code(503).header('retry-after', '5').send({ error: `busy: ${pool.running} request(s) running and ${pool.queued} waiting; retry later` });
      return;
    }
    const abort = new AbortController();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.write(sse('queued', { position: pool.queued }));
    let finished = false;
    res.on('close', () => { if (!finished) abort.abort(); });
    const onProgress = (p: ProgressMessage) => res.write(sse('progress', { t: p.t, repeat: p.repeat, done: p.done, total: p.total, images: p.images.map(dataUrl) }));
    try {
      const d: DoneMessage = await pool.run(job, { signal: abort.signal, onProgress });
      res.write(sse('result', { images: d.images.map(dataUrl), input: d.input && dataUrl(d.input), mask: d.mask && dataUrl(d.mask), sidecar: d.sidecar }));
    } catch (e) {
      const status = e instanceof JobRejected ? 400 : e instanceof JobCancelled ? 499 : e instanceof Busy ? 503 : 500;
      if (status === 500) app.log.error(e);
      if (!res.destroyed) res.write(sse('error', { status, error: (e as Error).message }));
    } finally {
      finished = true;
      res.end();
    }
  }

  app.post('/api/sample', async (req, reply) => {
    let body: Record<string, unknown>;
    if (req.isMultipart()) {
      const { fields, files } = await readForm(req, ['segmentation']);
      body = { ...fields, ...files };
    } else {
      if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) throw new BadRequest('the body must be a JSON object of settings');
      body = req.body as Record<string, unknown>;
    }
    const model = modelOf(body);
    await stream(req, reply, { kind: 'sample', ...readSettings(model.settings, body), model: model.name });
  });

  app.post('/api/label-map', async (req, reply) => {
    if (!req.isMultipart()) throw new BadRequest("a label map is a multipart/form-data upload: the picture as the file field 'segmentation' and the model's name as 'model'");
    const { fields, files } = await readForm(req, ['segmentation']);
    const model = modelOf(fields);
    if (!files.segmentation) throw new BadRequest("no label map: send the picture as the file field 'segmentation'");
    const map = labelMapImage(labelMapUpload(files.segmentation, model.info.conditioning, limits));
    return reply.type('image/png').header('cache-control', 'no-store').send(encodePng(map.rgba, map.width, map.height));
  });

  app.post('/api/edit', async (req, reply) => {
    if (!req.isMultipart()) throw new BadRequest('an edit is a multipart/form-data upload: an image file, a mask file or maskName, and settings fields');
    const { fields, files } = await readForm(req, ['image', 'mask', 'segmentation']);
    if (!files.image) throw new BadRequest("no image: send the picture to edit as the file field 'image'");
    const model = modelOf(fields);
    try {
      const image = decodeUpload(files.image, 'image', limits);
      let mask: EditJob['mask'];
      if (files.mask) mask = decodeUpload(files.mask, 'mask', limits);
      else if (typeof fields.maskName === 'string' && isNamedMask(fields.maskName)) mask = fields.maskName;
      else throw new BadRequest(`no mask: send a mask image as the file field 'mask' or maskName, one of ${model.info.masks.join(', ')}`);
      const repeats = fields.repeats === undefined || fields.repeats === '' ? undefined : Number(fields.repeats);
      if (repeats !== undefined && !(Number.isInteger(repeats) && repeats >= 1 && repeats <= 10)) throw new BadRequest(`repeats must be an integer in 1..10, got ${JSON.stringify(fields.repeats)}`);
      const job: EditJob = { kind: 'edit', ...readSettings(model.settings, { ...fields, ...files }), model: model.name, image, mask, invert: flag(fields.invert), composite: flag(fields.composite), repeats };
      await stream(req, reply, job);
    } catch (e) {
      if (e instanceof UploadError) throw new BadRequest(e.message);
      throw e;
    }
  });

  return {
    app, pool,
    async close() {
      await app.close();
      await pool.close();
    },
  };
}
