/** Every shipped model (models/<name>/chain.json) loads and samples, conditioned the way its manifest says. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadSamplingChain, sample, decodeTokens } from '../../src/sample/index.js';
import { encodeConditions, nullCondition, readManifest, type Condition } from '../../src/chain/index.js';
import { shippedModels } from '../../src/cli/serve.js';

const MODELS = join(process.cwd(), 'models');
const shipped = readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'chain.json')));

test('there are shipped models', () => assert.ok(shipped.length >= 1, 'models/*/chain.json'));

for (const name of shipped) {
  test(`models/${name} loads and samples two images`, () => {
    const { chain, firstStage, manifest } = loadSamplingChain(join(MODELS, name, 'chain.json'));
    const c = manifest.conditioning;
    const conditions: Condition[] = c.kind === 'class' ? [0, c.classes - 1] : c.kind === 'text' ? ['a red heart', 'a yellow star'] : [null, null];
    const cond = encodeConditions(c, conditions);
    const guidance = c.kind !== 'none' && c.nullable ? { scale: 2, nullCond: nullCondition(c) } : undefined;
    const r = sample(chain, { batch: 2, seed: 1, cond, guidance });
    assert.deepEqual(r.tokens.shape, [2, ...chain.tokenShape]);
    const images = decodeTokens(firstStage, r.tokens);
    assert.equal(images.data.length, 2 * images.channels * images.height * images.width);
    assert.ok(images.data.every(Number.isFinite));
    const spread = Math.max(...images.data) - Math.min(...images.data);
    assert.ok(spread > 0.5, `a sample is not a blank image (range ${spread})`);
  });
}

test('serve offers every shipped model, the conditional chains first (the page opens on the first)', () => {
  const order = shippedModels().map((d) => readManifest(join(d, 'chain.json')).conditioning.kind !== 'none');
  assert.equal(order.length, shipped.length);
  assert.ok(order.indexOf(false) === -1 || !order.slice(order.indexOf(false)).includes(true), `conditional first: ${order}`);
});
