/** Shared by the server tests: the shipped model served on a free loopback port, tiny conditional models, pictures, and an SSE reader. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng } from '../../src/data/index.js';
import { startServer, type EditorServer, type ServerOptions } from '../../src/server/app.js';
import { saveTinyChain } from '../sample/tiny.js';

export const SHIPPED = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'mnist');
export const EXAMPLE = join(SHIPPED, 'examples', 'test-0000-digit-7.png');

export async function serve(o: Partial<ServerOptions> = {}): Promise<EditorServer & { url: string }> {
  const s = await startServer({ models: [SHIPPED], ...o });
  const url = await s.app.listen({ port: 0, host: '127.0.0.1' });
  return { ...s, url };
}

export interface Event {
  event: string;
  data: any;
  at: number;
}

/** Reads a server-sent-event response to its end (or until `until` returns true: then it stops reading). */
export async function events(r: Response, until?: (e: Event) => boolean): Promise<Event[]> {
  const out: Event[] = [];
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return out;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const e = { event: /^event: (.*)$/m.exec(block)![1], data: JSON.parse(/^data: (.*)$/m.exec(block)![1]), at: performance.now() };
      out.push(e);
      if (until?.(e)) {
        await reader.cancel();
        return out;
      }
    }
  }
}

export const postJson = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });

/** Waits until the server reports nothing running; returns the milliseconds it took. */
export async function untilIdle(url: string, timeoutMs = 20000): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    const h = await (await fetch(`${url}/api/health`)).json() as any;
    if (h.running === 0 && h.queued === 0) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the server stayed busy');
}

/**
 * Tiny random chains (test/sample/tiny.ts) in model directories of a temporary folder, removed at exit:
 * `seg` (segmentation, 8-code label-map model, 16×16 maps), `seg-null` (the same with a null map),
 * `cls` (3 classes) and `plain` (unconditional).
 */
export function tinyModels(): Record<'seg' | 'segNull' | 'cls' | 'plain', string> {
  const root = mkdtempSync(join(tmpdir(), 'imagebart-server-models-'));
  process.on('exit', () => rmSync(root, { recursive: true, force: true }));
  const at = (name: string, o: Parameters<typeof saveTinyChain>[1]) => {
    const dir = join(root, name);
    mkdirSync(dir);
    saveTinyChain(dir, o);
    return dir;
  };
  return {
    seg: at('seg', { segmentation: { K: 8, nullable: false } }), segNull: at('seg-null', { segmentation: { K: 8, nullable: true } }),
    cls: at('cls', { classes: 3 }), plain: at('plain', {}),
  };
}

/** A w×h PNG whose pixel (x, y) is colour(x, y) (RGB). */
export function pngOf(w: number, h: number, colour: (x: number, y: number) => readonly number[]): Uint8Array {
  const rgba = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) rgba.set([...colour(p % w, Math.floor(p / w)), 255], 4 * p);
  return new Uint8Array(encodePng(rgba, w, h));
}
