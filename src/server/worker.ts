/**
 * A model worker thread: loads every served model once (workerData.models: name → directory), then
 * runs jobs one at a time on the model each names, posting progress after every scale and the result
 * at the end. Cancellation is a shared flag read
 * before every token (protocol.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pipeline, RequestError, pixelsToPng, useLatencyBoundThreads, type ImageShape, type MaskSpec, type Pixels, type RunSettings } from '../pipeline/index.js';
import type { FromWorker, Job, ToWorker } from './protocol.js';

class Aborted extends Error {}

const port = parentPort!;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const pngs = (images: Pixels[], shape: ImageShape) => images.map((p) => new Uint8Array(pixelsToPng(p, shape)));

useLatencyBoundThreads();
const models = new Map<string, Pipeline>();
try {
  for (const { name, path, device } of workerData.models as { name: string; path: string; device?: string }[]) models.set(name, Pipeline.load(path, { device }));
  post({ type: 'ready', models: [...models].map(([name, m]) => ({ name, info: m.info })) });
} catch (e) {
  post({ type: 'failed', message: (e as Error).message });
  process.exit(1);
}

function settingsOf(job: Job): RunSettings {
  return { seed: job.seed, condition: job.condition, guidance: job.guidance, settings: { temperature: job.temperature, topK: job.topK, topP: job.topP } };
}

function run(id: number, job: Job, cancel: SharedArrayBuffer): void {
  const model = models.get(job.model);
  if (!model) throw new RequestError(`no model named '${job.model}': this server has ${[...models.keys()].join(', ')}`);
  const flag = new Int32Array(cancel);
  const control = {
    signal: { throwIfAborted: () => { if (Atomics.load(flag, 0) !== 0) throw new Aborted('cancelled'); } },
    onProgress: (p: { t: number; repeat: number; done: number; total: number; images: Pixels[]; shape: ImageShape }) => {
      const images = pngs(p.images, p.shape);
      post({ type: 'progress', id, t: p.t, repeat: p.repeat, done: p.done, total: p.total, images }, images.map((b) => b.buffer as ArrayBuffer));
    },
  };
  if (job.kind === 'sample') {
    const r = model.sample({ ...settingsOf(job), count: job.count }, control);
    const images = pngs(r.images, r.shape);
    post({ type: 'done', id, images, sidecar: r.sidecar });
    return;
  }
  const r = model.edit({ ...settingsOf(job), image: job.image, mask: job.mask as MaskSpec, count: job.count, invert: job.invert, composite: job.composite, repeats: job.repeats }, control);
  const grey: ImageShape = { channels: 1, height: r.shape.height, width: r.shape.width };
  post({
    type: 'done', id, images: pngs(r.images, r.shape), sidecar: r.sidecar,
    input: new Uint8Array(pixelsToPng(r.input, r.shape)), mask: new Uint8Array(pixelsToPng(Float32Array.from(r.keep, (k) => 2 * k - 1), grey)),
  });
}

port.on('message', (m: ToWorker) => {
  try {
    run(m.id, m.job, m.cancel);
  } catch (e) {
    const kind = e instanceof Aborted ? 'aborted' : e instanceof RequestError ? 'request' : 'internal';
    post({ type: 'error', id: m.id, kind, message: (e as Error).message });
  }
});
