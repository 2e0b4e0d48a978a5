/**
 * The server on tiny segmentation chains: a label-map picture (colour-coded or a grey shape) conditions
 * samples and edits, the result carries each image's fidelity (mean IoU), and every bad map is a 400
 * with the library's message before anything is queued.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeImage } from '../../src/data/index.js';
import { Pipeline, pixelsToPng, useLatencyBoundThreads } from '../../src/pipeline/index.js';
import { readLabelMap } from '../../src/sample/index.js';
import { events, pngOf, postJson, serve, tinyModels, untilIdle } from './helpers.js';

const models = tinyModels();
const server = await serve({ models: [models.seg, models.segNull, models.cls, models.plain], workers: 1, maxSide: 256, maxPixels: 128 * 128 });
after(() => server.close());
const { url } = server;

const LABELS = ['background', 'stroke', 'outline'];
/** A 16×16 colour-coded map: a green square with a blue outline on red. */
const coded = pngOf(16, 16, (x, y) => (x > 4 && x < 11 && y > 4 && y < 11 ? (x === 5 || x === 10 || y === 5 || y === 10 ? [0, 0, 255] : [0, 255, 0]) : [255, 0, 0]));
/** A grey light-on-dark disc of another size: its labels come from its shape. */
const shape = pngOf(40, 40, (x, y) => (Math.hypot(x - 20, y - 20) < 12 ? [240, 240, 240] : [0, 0, 0]));
const blob = (b: Uint8Array) => new Blob([b as Uint8Array<ArrayBuffer>], { type: 'image/png' });
const form = (fields: Record<string, string | Uint8Array>) => {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') f.append(k, v);
    else f.append(k, blob(v), `${k}.png`);
  }
  return f;
};
const post = (path: string, fields: Record<string, string | Uint8Array>) => fetch(`${url}${path}`, { method: 'POST', body: form(fields) });
const result = async (r: Response) => {
  assert.equal(r.status, 200, await r.clone().text());
  const last = (await events(r)).at(-1)!;
  assert.equal(last.event, 'result', JSON.stringify(last.data));
  return last.data;
};
const pngBytes = (dataUrl: string) => new Uint8Array(Buffer.from(dataUrl.split(',')[1], 'base64'));

test('/api/models describes a segmentation chain: its labels, map size and null map', async () => {
  const { models: served } = await (await fetch(`${url}/api/models`)).json() as any;
  const byName = Object.fromEntries(served.map((m: any) => [m.name, m.conditioning]));
  assert.deepEqual({ ...byName.seg, description: undefined }, { kind: 'segmentation', labels: LABELS, resolution: 16, nullable: false, description: undefined });
  assert.equal(byName['seg-null'].nullable, true);
  assert.match(byName.seg.description, /segmentation \(label maps of background \/ stroke \/ outline, 8-code VQ model\)/);
});

test('a colour-coded map conditions the samples: the images and fidelity the library gives for that map', async () => {
  const r = await result(await post('/api/sample', { model: 'seg', segmentation: coded, count: '2', seed: '5' }));
  assert.equal(r.images.length, 2);
  const fidelity = r.sidecar.segmentation;
  assert.equal(fidelity.meanIoU.length, 2);
  assert.ok(fidelity.meanIoU.every((x: number) => x >= 0 && x <= 1));
  assert.equal(fidelity.mean, (fidelity.meanIoU[0] + fidelity.meanIoU[1]) / 2);
  assert.equal(r.sidecar.conditions[0].mapTokens.length, 16, 'the map as the label-map model\'s 4×4 tokens');
  useLatencyBoundThreads(); // as the server's workers
  const model = Pipeline.load(models.seg);
  const alone = model.sample({ count: 2, seed: '5', condition: readLabelMap(decodeImage(coded, 'coded'), 16, LABELS) });
  assert.deepEqual(fidelity, alone.sidecar.segmentation);
  assert.deepEqual(r.sidecar.conditions, alone.sidecar.conditions);
  assert.deepEqual(r.images.map(pngBytes), alone.images.map((p) => new Uint8Array(pixelsToPng(p, alone.shape))));
  const other = await result(await post('/api/sample', { model: 'seg', segmentation: shape, count: '2', seed: '5' }));
  assert.notDeepEqual(other.sidecar.conditions, r.sidecar.conditions, 'another map, other map tokens');
});

test('a grey shape of any size is read by its shape; /api/label-map shows the map it holds', async () => {
  const r = await result(await post('/api/sample', { model: 'seg', segmentation: shape, count: '1', seed: '9' }));
  assert.equal(r.sidecar.segmentation.meanIoU.length, 1);
  const shown = await post('/api/label-map', { model: 'seg', segmentation: shape });
  assert.equal(shown.status, 200);
  assert.equal(shown.headers.get('content-type'), 'image/png');
  const picture = decodeImage(new Uint8Array(await shown.arrayBuffer()), 'map');
  assert.deepEqual([picture.width, picture.height], [16, 16]);
  const expected = readLabelMap(decodeImage(shape, 'shape'), 16, LABELS);
  assert.deepEqual(readLabelMap(picture, 16, LABELS), expected, 'the colour-coded map reads back as the labels of the shape');
  assert.ok(new Set(expected.labels).size === 3, 'the disc has background, stroke and outline');
});

test('an edit takes a map too, and the null map samples a nullable chain', async () => {
  const picture = pngOf(16, 16, (x, y) => [(x * 16) % 256, (y * 16) % 256, 128]);
  const e = await result(await post('/api/edit', { model: 'seg', image: picture, maskName: 'upper-half', segmentation: coded, count: '2', seed: '1', composite: 'true' }));
  assert.equal(e.images.length, 2);
  assert.equal(e.sidecar.segmentation.meanIoU.length, 2);
  assert.equal(e.sidecar.keptTokens, 8);
  const n = await result(await postJson(`${url}/api/sample`, { model: 'seg-null', segmentation: 'null', count: '1', guidance: 2 }));
  assert.deepEqual(n.sidecar.conditions, [null]);
  assert.equal(n.sidecar.segmentation, undefined, 'no fidelity is reported when every map is null');
});

test('bad maps are a 400 with the library\'s message, before anything runs, and the server stays up', async () => {
  const small = pngOf(10, 10, () => [255, 0, 0]);
  const odd = pngOf(16, 16, (x, y) => (x === 5 && y === 2 ? [10, 200, 30] : [255, 0, 0]));
  const photo = pngOf(16, 16, () => [90, 90, 90]);
  const cases: [Promise<Response>, RegExp][] = [
    [post('/api/sample', { model: 'seg', segmentation: small }), /segmentation: a colour-coded label map must be 16×16 pixels \(the label-map model's size\), got 10×10/],
    [post('/api/sample', { model: 'seg', segmentation: odd }), /segmentation: unknown label colour rgb\(10, 200, 30\) at pixel \(5, 2\): a label map's pixels are background rgb\(255, 0, 0\), stroke rgb\(0, 255, 0\), outline rgb\(0, 0, 255\)/],
    [post('/api/sample', { model: 'seg', segmentation: new TextEncoder().encode('not a picture') }), /segmentation: not a PNG or JPEG image/],
    [post('/api/sample', { model: 'seg', segmentation: pngOf(200, 100, () => [0, 0, 0]) }), /segmentation: 200×100 is too large/],
    [post('/api/sample', { model: 'cls', class: '1', segmentation: coded }), /segmentation map given, but this model is conditioned on class \(3\)/],
    [post('/api/sample', { model: 'plain', segmentation: coded }), /segmentation map given, but this model is unconditional/],
    [post('/api/sample', { model: 'seg', count: '1' }), /segmentation map is required: this model is conditioned on segmentation .*; send a label-map picture as the file field 'segmentation'$/],
    [postJson(`${url}/api/sample`, { model: 'seg' }), /segmentation map is required/],
    [postJson(`${url}/api/sample`, { model: 'seg', segmentation: 'null' }), /segmentation 'null' \(the null map\) needs a chain trained with dropped label maps/],
    [postJson(`${url}/api/sample`, { model: 'seg', segmentation: 'data:image/png;base64,iVBORw0KGgo=' }), /segmentation must be a label-map picture, sent as the file field 'segmentation' of a multipart\/form-data request/],
    [post('/api/sample', { model: 'seg', image: coded }), /unexpected file field 'image': this request takes 'segmentation'/],
    [post('/api/edit', { model: 'seg', image: photo, maskName: 'center', segmentation: small }), /segmentation: a colour-coded label map must be 16×16 pixels/],
    [post('/api/edit', { model: 'plain', image: photo, maskName: 'center', segmentation: coded }), /segmentation map given, but this model is unconditional/],
    [post('/api/label-map', { model: 'cls', segmentation: coded }), /segmentation map given, but this model is conditioned on class/],
    [post('/api/label-map', { model: 'seg', segmentation: odd }), /unknown label colour/],
  ];
  for (const [request, why] of cases) {
    const r = await request;
    const body = await r.json() as any;
    assert.equal(r.status, 400, `${why}: ${JSON.stringify(body)}`);
    assert.match(body.error, why);
  }
  await untilIdle(url);
  assert.equal((await result(await post('/api/sample', { model: 'seg', segmentation: coded, count: '1' }))).images.length, 1, 'and still serves');
});
