/** The server on the shipped class-conditional chain: conditions and guidance are checked per model, and reach the samples. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { events, postJson, serve } from './helpers.js';

const MODEL = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'mnist-class');
const server = await serve({ models: [MODEL], workers: 1 });
after(() => server.close());
const { url } = server;

test('the model says what it is conditioned on', async () => {
  const { models: [m] } = await (await fetch(`${url}/api/models`)).json() as any;
  assert.equal(m.name, 'mnist-class');
  assert.deepEqual([m.conditioning.kind, m.conditioning.classes, m.conditioning.nullable], ['class', 10, true]);
});

test('class, prompt and guidance are checked against the chain', async () => {
  for (const [body, why] of [
    [{ count: 1 }, /class is required: this model is conditioned on class \(10, nullable\)/],
    [{ class: 10 }, /class must be an integer in 0\.\.9 or 'null', got 10/],
    [{ class: 'seven' }, /class must be an integer in 0\.\.9/],
    [{ class: 1, prompt: 'a seven' }, /prompt given, but this model is conditioned on class/],
    [{ class: 1, guidance: 50 }, /guidance must be a number in \[0, 20\]/],
  ] as const) {
    const r = await postJson(`${url}/api/sample`, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match((await r.json() as any).error, why);
  }
});

test('a guided sample of a class and one of the null class', async () => {
  for (const [cls, expected] of [[7, 7], ['null', null]] as const) {
    const es = await events(await postJson(`${url}/api/sample`, { count: 2, class: cls, guidance: cls === 'null' ? undefined : 2, seed: '42' }));
    const result = es.at(-1)!;
    assert.equal(result.event, 'result', JSON.stringify(result.data));
    assert.equal(result.data.images.length, 2);
    assert.deepEqual(result.data.sidecar.conditions, [expected, expected]);
    assert.equal(result.data.sidecar.guidance, cls === 'null' ? null : 2);
  }
});
