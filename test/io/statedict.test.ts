import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitPrefix, prefixesOf, emaPrefixFor, emaToParameterNames, emaStateDict } from '../../src/io/statedict.js';

const sd = new Map<string, string>([
  ['transformer.encoder.token_emb.weight', 'train-emb'],
  ['transformer.encoder.norm.weight', 'train-norm'],
  ['transformer.mask', 'buffer'],
  ['transformer_ema.encodertoken_embweight', 'ema-emb'],
  ['transformer_ema.encodernormweight', 'ema-norm'],
  ['transformer_ema.decay', 'decay'],
  ['transformer_ema.num_updates', 'n'],
  ['first_stage_model.quantize.used', 'used'],
  ['alphats', 'a'],
]);

test('splitPrefix and prefixesOf', () => {
  assert.deepEqual([...splitPrefix(sd, 'first_stage_model.')], [['quantize.used', 'used']]);
  assert.deepEqual([...prefixesOf(sd)], [['transformer.', 3], ['transformer_ema.', 4], ['first_stage_model.', 1], ['alphats', 1]]);
  assert.equal(emaPrefixFor('transformer.'), 'transformer_ema.');
  assert.equal(emaPrefixFor('model'), 'model_ema.');
});

test('LitEma names map back to parameter names; buffers keep training values', () => {
  const r = emaStateDict(sd, 'transformer.');
  assert.deepEqual([...r.weights], [['encoder.token_emb.weight', 'ema-emb'], ['encoder.norm.weight', 'ema-norm'], ['mask', 'buffer']]);
  assert.deepEqual(r.fromTraining, ['mask']);
  assert.deepEqual(r.missing, ['mask']);
  assert.deepEqual(r.unused, [], 'decay and num_updates are LitEma bookkeeping');
  const only = emaStateDict(sd, 'transformer.', ['encoder.norm.weight']);
  assert.deepEqual([...only.weights], [['encoder.norm.weight', 'ema-norm']]);
  assert.deepEqual(only.unused, ['encodertoken_embweight']);
});

test('two keys that collapse to one dot-less name are reported, not silently mixed up', () => {
  assert.throws(() => emaToParameterNames(new Map(), ['layers.1.0.weight', 'layers.10.weight']), /'layers\.1\.0\.weight' and 'layers\.10\.weight' both become 'layers10weight'/);
});
