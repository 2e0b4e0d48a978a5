/** `imagebart serve`'s API over real HTTP on the shipped model: limits, bad input, concurrency, cancellation. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { encodePng } from '../../src/data/index.js';
import { join } from 'node:path';
import { readManifest } from '../../src/chain/index.js';
import { EXAMPLE, SHIPPED, events, postJson, serve, untilIdle } from './helpers.js';

const server = await serve({ workers: 2, maxQueue: 1, maxBody: 64 << 10, maxSide: 256, maxPixels: 128 * 128 });
after(() => server.close());
const { url } = server;
const { T } = readManifest(join(SHIPPED, 'chain.json'));

const form = (fields: Record<string, string | Blob>) => {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v, ...(v instanceof Blob ? ['upload.png'] : []) as []);
  return f;
};
const png = (w: number, h: number) => new Blob([new Uint8Array(encodePng(new Uint8Array(w * h * 4).fill(255), w, h))], { type: 'image/png' });
const example = () => new Blob([new Uint8Array(readFileSync(EXAMPLE))], { type: 'image/png' });

test('health, model and examples answer', async () => {
  const h = await (await fetch(`${url}/api/health`)).json() as any;
  assert.deepEqual([h.ok, h.running, h.workers], [true, 0, 2]);
  const { models: [m], limits } = await (await fetch(`${url}/api/models`)).json() as any;
  assert.deepEqual([m.name, m.T, m.resolution, m.conditioning.kind, m.manifest], ['mnist', T, 32, 'none', undefined], 'no server path leaks');
  assert.equal(limits.maxCount, 16);
  const { examples } = await (await fetch(`${url}/api/examples/mnist`)).json() as any;
  assert.ok(examples.length >= 3);
  assert.equal((await fetch(`${url}/api/examples/nosuchmodel`)).status, 404);
  const r = await fetch(`${url}/api/examples/mnist/${examples[0]}`);
  assert.equal(r.headers.get('content-type'), 'image/png');
});

test('bad requests get a 4xx with a clear message, and the server stays up', async () => {
  const cases: [Promise<Response>, number, RegExp][] = [
    [fetch(`${url}/api/sample`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"count": 2,' }), 400, /not valid JSON/],
    [postJson(`${url}/api/sample`, { pad: 'x'.repeat(100_000) }), 413, /too large/],
    [postJson(`${url}/api/sample`, [1, 2]), 400, /JSON object/],
    [postJson(`${url}/api/sample`, { count: 0 }), 400, /count must be an integer in 1\.\.16/],
    [postJson(`${url}/api/sample`, { temperature: -1 }), 400, /temperature must be/],
    [postJson(`${url}/api/sample`, { seed: '18446744073709551616' }), 400, /seed must be an integer in \[0, 2\^64\)/],
    [postJson(`${url}/api/sample`, { class: 3 }), 400, /unconditional/],
    [postJson(`${url}/api/sample`, { model: '../mnist' }), 400, /model must be one of mnist, got "\.\.\/mnist"/],
    [fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: new Blob(['hello, not a picture']), maskName: 'center' }) }), 400, /image: not a PNG or JPEG image/],
    [fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: png(300, 10), maskName: 'center' }) }), 400, /image: 300×10 is too large/],
    [fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: png(200, 200), maskName: 'center' }) }), 400, /too large \(at most 256 pixels a side and 16384 pixels in all\)/],
    [fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: new Blob([new Uint8Array(200_000)]), maskName: 'center' }) }), 413, /too large/],
    [fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: example(), maskName: 'everything' }) }), 400, /no mask/],
    [fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: example(), mask: new Blob(['GIF89a']) }) }), 400, /mask: not a PNG or JPEG image/],
    [postJson(`${url}/api/edit`, {}), 400, /multipart/],
  ];
  for (const [request, status, why] of cases) {
    const r = await request;
    const body = await r.json() as any;
    assert.equal(r.status, status, `${why}: ${JSON.stringify(body)}`);
    assert.match(body.error, why);
  }
  // a PNG header that claims a huge image is refused before any pixel is decoded
  const bomb = new Uint8Array(readFileSync(EXAMPLE));
  new DataView(bomb.buffer).setUint32(16, 100_000);
  new DataView(bomb.buffer).setUint32(20, 100_000);
  const r = await fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: new Blob([bomb]), maskName: 'center' }) });
  assert.equal(r.status, 400);
  assert.match((await r.json() as any).error, /100000×100000 is too large/);
  assert.equal((await fetch(`${url}/api/health`)).status, 200, 'still up');
});

test('no file outside the model directory is readable', async () => {
  for (const path of ['/api/examples/mnist/../chain.json', '/api/examples/mnist/..%2fchain.json', '/api/examples/mnist/%2e%2e/%2e%2e/package.json', '/api/examples/..%2f..%2fpackage.json', '/../package.json', '/app/../../package.json', '/%2e%2e/%2e%2e/etc/passwd']) {
    const r = await fetch(`${url}${path}`);
    const text = await r.text();
    assert.ok(r.status === 403 || r.status === 404, `${path}: ${r.status}`);
    assert.doesNotMatch(text, /"scales"|"dependencies"|root:/, path);
  }
});

test('two concurrent requests with the same seed give the images each gives alone', async () => {
  const body = { count: 3, seed: '12345678901234567890', temperature: 0.9, topK: 50 };
  const result = async () => (await events(await postJson(`${url}/api/sample`, body))).find((e) => e.event === 'result')!.data;
  const alone = await result();
  const [a, b] = await Promise.all([result(), result()]); // one per worker, interleaved
  assert.deepEqual(a.images, alone.images);
  assert.deepEqual(b.images, alone.images);
  assert.equal(alone.sidecar.seed, body.seed);
  const other = (await events(await postJson(`${url}/api/sample`, { ...body, seed: '12345678901234567891' }))).find((e) => e.event === 'result')!.data;
  assert.notDeepEqual(other.images, alone.images, 'a neighbouring seed draws other images');
});

test('an edit streams one progress event per scale and repeat, then images, input and mask', async () => {
  const r = await fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: example(), maskName: 'upper-half', count: '2', seed: '3', composite: 'true' }) });
  assert.equal(r.status, 200);
  const es = await events(r);
  const progress = es.filter((e) => e.event === 'progress');
  // scale T once, every lower scale three times (the official defaults for a geometric schedule)
  const expected = [[T, 0], ...Array.from({ length: T - 1 }, (_, k) => [0, 1, 2].map((i) => [T - 1 - k, i])).flat()];
  assert.deepEqual(progress.map((e) => [e.data.t, e.data.repeat]), expected);
  const result = es.at(-1)!;
  assert.equal(result.event, 'result');
  assert.equal(result.data.images.length, 2);
  assert.match(result.data.input, /^data:image\/png;base64,/);
  assert.deepEqual([result.data.sidecar.mask, result.data.sidecar.keptTokens, result.data.sidecar.tokens], ['upper-half', 32, 64]);
});

test('a full server answers 503 busy, health stays fast, and a closed connection stops the work within one scale', async () => {
  const abort = [new AbortController(), new AbortController(), new AbortController()];
  const long = (i: number) => fetch(`${url}/api/edit`, { method: 'POST', body: form({ image: example(), maskName: 'center', count: '8', repeats: '4', seed: String(i) }), signal: abort[i].signal });
  const first = await long(0), second = await long(1);
  const waiting = await postJson(`${url}/api/sample`, { count: 1 }, abort[2].signal); // queued: both workers busy, queue of 1
  const busy = await postJson(`${url}/api/sample`, { count: 1 });
  assert.equal(busy.status, 503);
  assert.match((await busy.json() as any).error, /busy: 2 request\(s\) running and 1 waiting; retry later/);
  const h = await (await fetch(`${url}/api/health`)).json() as any;
  assert.deepEqual([h.running, h.queued], [2, 1]);
  await events(waiting, (e) => e.event === 'queued');
  abort[2].abort();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await (await fetch(`${url}/api/health`)).json() as any).queued, 0, 'a cancelled queued request leaves the queue');
  // measure one scale of the first request, then close both connections mid-run
  const seen = await events(first, (e) => e.event === 'progress' && e.data.done === 3);
  const scaleMs = seen.at(-1)!.at - seen.at(-2)!.at;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await (await fetch(`${url}/api/health`)).json();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  // 100 ms on a machine of its own; a small fraction of a scale where other jobs starve this process of CPU
  assert.ok(times[2] < Math.max(100, scaleMs / 10), `health answers in ${times[2].toFixed(1)} ms (median of 5) while every worker is busy; a scale takes ${scaleMs.toFixed(0)} ms`);
  abort[0].abort();
  abort[1].abort();
  const stopMs = await untilIdle(url);
  assert.ok(stopMs < scaleMs, `stopped ${stopMs.toFixed(0)} ms after the close; one scale takes ${scaleMs.toFixed(0)} ms`);
  void second;
  const after = await events(await postJson(`${url}/api/sample`, { count: 1 }));
  assert.equal(after.at(-1)!.event, 'result', 'and the server serves the next request');
});
