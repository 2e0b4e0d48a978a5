/**
 * Messages between the server and its model workers (worker.ts). A job carries its request and a
 * one-word SharedArrayBuffer: the server sets it to 1 to cancel, and the worker reads it before every
 * token (a worker busy in a synchronous token loop cannot receive messages).
 */
import type { EditSidecar, ModelInfo, RequestCondition, SampleSidecar } from '../pipeline/index.js';
import type { RGBAImage } from '../data/index.js';

/** A sample request as JSON carries it (seed as a decimal string). */
export interface SampleJob {
  kind: 'sample';
  /** Which of the served models. */
  model: string;
  count: number;
  seed?: string;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** One class id, caption, label map (read by the server) or null (the null condition) for every image; absent for an unconditional chain. */
  condition?: RequestCondition;
  /** Guidance scale (classifier-free, or autoguidance by the model's weaker chain); default the model's. */
  guidance?: number;
}

/** An edit request: the uploaded image and mask, decoded and checked by the server (upload.ts), or a named mask. */
export interface EditJob extends Omit<SampleJob, 'kind'> {
  kind: 'edit';
  image: RGBAImage;
  mask: RGBAImage | string;
  invert?: boolean;
  composite?: boolean;
  repeats?: number;
}

export type Job = SampleJob | EditJob;

export type ToWorker = { type: 'run'; id: number; job: Job; cancel: SharedArrayBuffer };

export interface ProgressMessage {
  type: 'progress';
  id: number;
  t: number;
  repeat: number;
  done: number;
  total: number;
  /** PNG bytes of the batch's decoded x_{t-1}. */
  images: Uint8Array[];
}

export interface DoneMessage {
  type: 'done';
  id: number;
  /** PNG bytes of the results (sample: the images; edit: the edits). */
  images: Uint8Array[];
  /** Edits only: the input as the model sees it and the mask (white = keep), as PNGs. */
  input?: Uint8Array;
  mask?: Uint8Array;
  sidecar: SampleSidecar | EditSidecar;
}

export interface ErrorMessage {
  type: 'error';
  id: number;
  /** 'request': the caller's mistake (4xx); 'aborted': cancelled; 'internal': a server fault. */
  kind: 'request' | 'aborted' | 'internal';
  message: string;
}

/** A served model: its name (the directory's) and what a client needs to know of it. */
export interface ServedModel {
  name: string;
  info: ModelInfo;
}

export type FromWorker = { type: 'ready'; models: ServedModel[] } | { type: 'failed'; message: string } | ProgressMessage | DoneMessage | ErrorMessage;
