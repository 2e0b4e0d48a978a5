import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tidy, randint, zeros } from '../../src/torch/index.js';
import { makeSchedule } from '../../src/diffusion/index.js';
import {
  XTransformer, GPT, EncoderDecoderDenoiser, DecoderOnlyDenoiser, ResidualScaledXTransformer, createDenoiser, inputVocab, type ChainShape,
} from '../../src/chain/index.js';
import { loadFixture, assertClose } from '../diffusion/fixtures.js';

const xfx = loadFixture('xtransformer_tiny.safetensors');
const gfx = loadFixture('gpt_tiny.safetensors');
const model = (f: typeof xfx, drop: RegExp) => new Map([...f.tensors].filter(([k]) => !drop.test(k)));

test('encoder-decoder denoiser: [t, x_t] → encoder, [SOS=0, x_{t-1}[:-1]] → decoder, as DenoisingXTransformer', () => {
  noGrad(() => tidy(() => {
    const kw = xfx.meta.xtransformer_kwargs as Record<string, number>;
    const xt = new XTransformer({
      dim: kw.dim,
      encoder: { numTokens: kw.enc_num_tokens, maxSeqLen: kw.enc_max_seq_len, depth: kw.enc_depth, heads: kw.enc_heads },
      decoder: { numTokens: kw.dec_num_tokens, maxSeqLen: kw.dec_max_seq_len, depth: kw.dec_depth, heads: kw.dec_heads },
    });
    xt.loadStateDict(model(xfx, /^(input|output|aux)\.|^log_scalors$/));
    const shape: ChainShape = { K: 37, T: 4, tokens: 16 };
    const ts = xfx.get('input.scale').toNumbers();
    ts.forEach((t, b) => {
      const d = new EncoderDecoderDenoiser(t, shape, xt);
      const row = (name: string) => xfx.get(name).narrow(0, b, 1);
      assert.deepEqual(d.encoderInput(row('input.x_t')).toNumbers(), row('input.src').toNumbers());
      assertClose(d.logits(row('input.x_t'), row('input.x_tm1')), row('output.logits'), 1e-4, `scale ${t}`);
      assert.ok(d.stateDict().has('transformer.encoder.token_emb.weight'), 'official checkpoint prefix transformer.*');
    });
  }));
});

test('decoder-only denoiser: [t, class, x_{T-1}[:-1]] → GPT, logits from position len(c)-1, x_T ignored', () => {
  noGrad(() => tidy(() => {
    const kw = gfx.meta.gpt_kwargs as Record<string, number>;
    const gpt = new GPT({ vocabSize: kw.vocab_size, blockSize: kw.block_size, nLayer: kw.n_layer, nHead: kw.n_head, nEmbd: kw.n_embd, inputVocabSize: kw.input_vocab_size });
    gpt.loadStateDict(model(gfx, /^(input|output|n_unmasked2)\./));
    const c = gfx.get('input.c');
    const d = new DecoderOnlyDenoiser(4, { K: 37, T: 4, tokens: 16, condLength: 1, condVocab: 40 }, gpt);
    const z = gfx.get('input.z');
    const noise = randint(0, 37, z.shape);
    assertClose(d.logits(noise, z, c.narrow(1, 1, 1)), gfx.get('output.u0.logits_denoiser'), 1e-4, 'logits_denoiser');
    assert.deepEqual(d.prefix(2, c.narrow(1, 1, 1)).toNumbers(), c.toNumbers());
    assert.throws(() => d.logits(noise, z), /expected 1 conditioning tokens per example, got 0/);
  }));
});

test('createDenoiser sizes the tables from the chain; official weight-decay groups per model kind', () => {
  const shape: ChainShape = { K: 16, T: 3, tokens: 9, condLength: 1, condVocab: 10 };
  const s = makeSchedule('geometric', 3);
  assert.equal(inputVocab(shape), 16);
  assert.equal(inputVocab({ K: 4, T: 5, tokens: 4 }), 6);
  const ed = createDenoiser(1, { type: 'xtransformer', dim: 32, heads: 2, encoderDepth: 2, decoderDepth: 1 }, shape, s) as EncoderDecoderDenoiser;
  assert.equal(ed.transformer.encoder.pos_emb.maxSeqLen, 11);
  assert.deepEqual(ed.transformer.decoder.to_logits.weight.shape, [16, 32]);
  assert.deepEqual(ed.transformer.encoder.attn_layers.layers.at(0).children().map(([n]) => n), ['0', '1']);
  const groups = ed.decayGroups(0.01);
  assert.equal(groups[0].params.length, ed.parameters().length, 'DenoisingXTransformer: AdamW over all parameters (default decay 0.01)');

  const g = createDenoiser(3, { type: 'gpt', dim: 32, heads: 2, depth: 2 }, shape, s) as DecoderOnlyDenoiser;
  assert.equal(g.transformer.cfg.blockSize, 10);
  assert.equal(g.transformer.cfg.nUnmasked, 2, 'the [t, class] prefix attends both ways, so cached sampling matches training');
  const [decay, noDecay] = g.decayGroups(0.01);
  assert.equal(decay.params.length, 2 * 4 + 2 * 2 + 1, 'Linear weights only: 4 attention + 2 mlp per block, and the head');
  assert.equal(decay.weightDecay, 0.01);
  assert.equal(noDecay.weightDecay, 0);
  assert.ok(noDecay.params.includes(g.transformer.pos_emb));

  const rs = createDenoiser(2, { type: 'residual-xtransformer', dim: 32, heads: 2, dimHead: 16, encoderDepth: 1, decoderDepth: 1 }, shape, s) as EncoderDecoderDenoiser;
  assert.ok(rs.transformer instanceof ResidualScaledXTransformer);
  assert.deepEqual(rs.transformer.cfg.xtStart, 2);
  noGrad(() => {
    const x = randint(0, 16, [2, 9]);
    assert.deepEqual(rs.logits(x, x, zeros([2, 1], { dtype: 'int64' })).shape, [2, 9, 16]);
  });
  assert.throws(() => createDenoiser(4, { type: 'gpt', dim: 32, heads: 2, depth: 1 }, shape, s), /outside 1\.\.3/);
  assert.throws(() => createDenoiser(1, { type: 'gpt', dim: 32, heads: 2, depth: 1 }, shape, makeSchedule('geometric', 2)), /T = 2/);
});
