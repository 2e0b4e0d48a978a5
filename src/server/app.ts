/**
 * `imagebart serve`: the editor's HTTP server (fastify). The web page (web/) and its compiled script
 * are served statically; the API:
 *
 * | method | path | answer |
 * |---|---|---|
 * | GET  | /api/health | `{ ok, running, queued, workers, maxQueue }` at once, however busy the model is |
 * | GET  | /api/model | the model (K, T, classes, resolution, channels, named masks) and the server's limits |
 * | GET  | /api/examples | example image names; `/api/examples/NAME` the PNG (the model directory's examples/) |
 * | POST | /api/sample | JSON settings → a stream of server-sent events: `progress` per scale, then `result` |
 * | POST | /api/edit | multipart: `image` file, `mask` file (white = keep) or `maskName`, settings fields → events |
 *
 * Settings (JSON fields or form fields): count, seed (decimal string, 64-bit), temperature, topK,
 * topP, class, and for edits invert, composite, repeats. Errors are JSON `{ error }` with a 4xx
 * (bad input; 413 too large) or 503 (queue full: retry later); once a stream has started they come
 * as an `error` event. Closing the connection cancels the request's work within one token.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import fastifyMultipart from '@fastify/multipart';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestPath, parseSeed } from '../pipeline/index.js';
import { isNamedMask } from '../sample/index.js';
import { Busy, JobCancelled, JobRejected, ModelPool } from './pool.js';
import { UploadError, decodeUpload, type ImageLimits } from './upload.js';
import type { DoneMessage, EditJob, Job, ProgressMessage, SampleJob } from './protocol.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface ServerOptions extends Partial<ImageLimits> {
  /** Model directory (chain.json, its VQGAN, optionally examples/*.png). */
  model: string;
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

/** Settings from JSON or form fields (strings), checked: the same rules for both doors. */
function readSettings(f: Record<string, unknown>, maxCount: number, classes: number | null): Omit<SampleJob, 'kind'> {
  const num = (k: string, ok: (x: number) => boolean, rule: string): number | undefined => {
    const v = f[k];
    if (v === undefined || v === '') return undefined;
    const x = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    if (!(Number.isFinite(x) && ok(x))) throw new BadRequest(`${k} must be ${rule}, got ${JSON.stringify(v)}`);
    return x;
  };
  const count = num('count', (x) => Number.isInteger(x) && x >= 1 && x <= maxCount, `an integer in 1..${maxCount}`) ?? 1;
  let seed: string | undefined;
  if (f.seed !== undefined && f.seed !== '') {
    try {
      seed = parseSeed(f.seed as string).toString();
    } catch (e) {
      throw new BadRequest((e as Error).message);
    }
  }
  const cls = num('class', (x) => Number.isInteger(x) && x >= 0 && classes !== null && x < classes, classes === null ? 'absent: this model is unconditional' : `an integer in 0..${classes - 1}`);
  if (classes !== null && cls === undefined) throw new BadRequest(`class is required: this model is conditional on ${classes} classes`);
  return {
    count, seed, classes: cls === undefined ? undefined : [cls],
    temperature: num('temperature', (x) => x > 0 && x <= 10, 'a number in (0, 10]'),
    topK: num('topK', (x) => Number.isInteger(x) && x >= 1, 'a positive integer'),
    topP: num('topP', (x) => x > 0 && x <= 1, 'a number in (0, 1]'),
  };
}

const flag = (v: unknown) => v === true || v === 'true' || v === 'on' || v === '1';

export async function startServer(o: ServerOptions): Promise<EditorServer> {
  const modelDir = dirname(manifestPath(o.model));
  const limits: ImageLimits = { maxSide: o.maxSide ?? 2048, maxPixels: o.maxPixels ?? 2048 * 2048 };
  const maxBody = o.maxBody ?? 8 << 20, maxCount = o.maxCount ?? 16;
  const pool = await ModelPool.start({ model: o.model, workers: o.workers, maxQueue: o.maxQueue });
  const info = pool.info;
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: maxBody });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) app.log.error(err);
    reply.code(status).send({ error: status >= 500 ? `internal error: ${err.message}` : err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no such resource: ${req.method} ${req.url}` }));

  await app.register(fastifyMultipart, { limits: { fileSize: maxBody, files: 2, fields: 20, fieldSize: 1024, parts: 24 } });
  await app.register(fastifyStatic, { root: join(ROOT, 'web'), prefix: '/', index: 'index.html' });
  await app.register(fastifyStatic, { root: join(ROOT, 'dist', 'web'), prefix: '/app/', decorateReply: false });
  const examples = join(modelDir, 'examples');
  if (existsSync(examples)) await app.register(fastifyStatic, { root: examples, prefix: '/api/examples/', decorateReply: false, index: false, list: false });

  app.get('/api/health', async () => ({ ok: true, running: pool.running, queued: pool.queued, workers: pool.workers, maxQueue: pool.maxQueue }));
  app.get('/api/model', async () => ({ ...info, manifest: undefined, limits: { ...limits, maxBody, maxCount } }));
  app.get('/api/examples', async () => ({ examples: existsSync(examples) ? readdirSync(examples).filter((f) => /\.png$/i.test(f)).sort() : [] }));

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
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) throw new BadRequest('the body must be a JSON object of settings');
    await stream(req, reply, { kind: 'sample', ...readSettings(req.body as Record<string, unknown>, maxCount, info.classes) });
  });

  app.post('/api/edit', async (req, reply) => {
    if (!req.isMultipart()) throw new BadRequest('an edit is a multipart/form-data upload: an image file, a mask file or maskName, and settings fields');
    const fields: Record<string, unknown> = {};
    const files: Record<string, Uint8Array> = {};
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'image' && part.fieldname !== 'mask') throw new BadRequest(`unexpected file field '${part.fieldname}': send 'image' and optionally 'mask'`);
        files[part.fieldname] = new Uint8Array(await part.toBuffer());
      } else {
        fields[part.fieldname] = part.value;
      }
    }
    if (!files.image) throw new BadRequest("no image: send the picture to edit as the file field 'image'");
    try {
      const image = decodeUpload(files.image, 'image', limits);
      let mask: EditJob['mask'];
      if (files.mask) mask = decodeUpload(files.mask, 'mask', limits);
      else if (typeof fields.maskName === 'string' && isNamedMask(fields.maskName)) mask = fields.maskName;
      else throw new BadRequest(`no mask: send a mask image as the file field 'mask' or maskName, one of ${info.masks.join(', ')}`);
      const repeats = fields.repeats === undefined || fields.repeats === '' ? undefined : Number(fields.repeats);
      if (repeats !== undefined && !(Number.isInteger(repeats) && repeats >= 1 && repeats <= 10)) throw new BadRequest(`repeats must be an integer in 1..10, got ${JSON.stringify(fields.repeats)}`);
      const job: EditJob = { kind: 'edit', ...readSettings(fields, maxCount, info.classes), image, mask, invert: flag(fields.invert), composite: flag(fields.composite), repeats };
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
