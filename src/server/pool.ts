/**
 * The model pool: `workers` worker threads, each owning a copy of the model (worker.ts), and one
 * bounded FIFO queue in front of them. A job that finds every worker busy and `maxQueue` jobs
 * already waiting is refused at once (`Busy`: HTTP 503, retry later) rather than left to wait.
 * Cancelling a job (its AbortSignal: client gone or asked) removes it from the queue, or sets its
 * shared flag so that the worker stops before the next token.
 */
import { Worker } from 'node:worker_threads';
import type { DoneMessage, FromWorker, Job, ProgressMessage, ServedModel, ToWorker } from './protocol.js';

export class Busy extends Error {}
/** The job's request was wrong (bad image, class, setting): a 4xx. */
export class JobRejected extends Error {}
export class JobCancelled extends Error {}

interface Pending {
  id: number;
  job: Job;
  cancel: Int32Array;
  onProgress?: (p: ProgressMessage) => void;
  resolve: (d: DoneMessage) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  current?: Pending;
}

export interface PoolOptions {
  /** The models every worker loads: a name and a model directory or chain manifest each. */
  models: { name: string; path: string }[];
  /** Where the models run (cpu, cuda, cuda:N). */
  device?: string;
  workers?: number;
  /** Jobs allowed to wait while every worker is busy. */
  maxQueue?: number;
}

export class ModelPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  readonly maxQueue: number;

  private constructor(readonly models: ServedModel[], maxQueue: number) {
    this.maxQueue = maxQueue;
  }

  /** Starts the workers and waits until each has loaded the models. */
  static async start(o: PoolOptions): Promise<ModelPool> {
    const n = o.workers ?? 1;
    const url = new URL('./worker.js', import.meta.url);
    const workers = Array.from({ length: n }, () => new Worker(url, { workerData: { models: o.models.map((m) => ({ ...m, device: o.device })) } }));
    let models: ServedModel[];
    try {
      [models] = await Promise.all(workers.map((w) => new Promise<ServedModel[]>((resolve, reject) => {
        w.once('message', (m: FromWorker) => (m.type === 'ready' ? resolve(m.models) : reject(new Error(m.type === 'failed' ? m.message : 'worker failed to start'))));
        w.once('error', reject);
      })));
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    const pool = new ModelPool(models, o.maxQueue ?? 8);
    for (const worker of workers) pool.attach(worker);
    return pool;
  }

  get running(): number {
    return this.slots.filter((s) => s.current).length;
  }

  get queued(): number {
    return this.queue.length;
  }

  get workers(): number {
    return this.slots.length;
  }

  /** Runs a job; rejects with Busy at once when the queue is full, JobCancelled when the signal fires. */
  run(job: Job, o: { signal?: AbortSignal; onProgress?: (p: ProgressMessage) => void } = {}): Promise<DoneMessage> {
    if (this.closed) return Promise.reject(new Error('the model pool is closed'));
    if (o.signal?.aborted) return Promise.reject(new JobCancelled('cancelled'));
    const idle = this.slots.find((s) => !s.current);
    if (!idle && this.queue.length >= this.maxQueue) {
      return Promise.reject(new Busy(`busy: ${this.running} request(s) running and ${this.queue.length} waiting; retry later`));
    }
    return new Promise<DoneMessage>((resolve, reject) => {
      const p: Pending = { id: this.nextId++, job, cancel: new Int32Array(new SharedArrayBuffer(4)), onProgress: o.onProgress, resolve, reject };
      o.signal?.addEventListener('abort', () => this.cancel(p), { once: true });
      if (idle) this.dispatch(idle, p);
      else this.queue.push(p);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new JobCancelled('the server is shutting down'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private cancel(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) {
      this.queue.splice(i, 1);
      p.reject(new JobCancelled('cancelled'));
    } else {
      Atomics.store(p.cancel, 0, 1);
    }
  }

  private dispatch(slot: Slot, p: Pending): void {
    slot.current = p;
    const m: ToWorker = { type: 'run', id: p.id, job: p.job, cancel: p.cancel.buffer as SharedArrayBuffer };
    slot.worker.postMessage(m);
  }

  private attach(worker: Worker): void {
    const slot: Slot = { worker };
    this.slots.push(slot);
    worker.on('message', (m: FromWorker) => {
      const p = slot.current;
      if (!p || !('id' in m) || m.id !== p.id) return;
      if (m.type === 'progress') {
        p.onProgress?.(m);
        return;
      }
      slot.current = undefined;
      if (m.type === 'done') p.resolve(m);
      else if (m.type === 'error') p.reject(m.kind === 'request' ? new JobRejected(m.message) : m.kind === 'aborted' ? new JobCancelled(m.message) : new Error(m.message));
      const next = this.queue.shift();
      if (next) this.dispatch(slot, next);
    });
    worker.on('error', (e) => {
      slot.current?.reject(new Error(`model worker failed: ${e.message}`));
      slot.current = undefined;
    });
  }
}
