import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, noGrad, tidy, cat } from '../../src/torch/index.js';
import { XTransformer, ResidualScaledXTransformer, KVCache, type XTransformerConfig } from '../../src/chain/index.js';
import { loadFixture, assertClose } from '../diffusion/fixtures.js';

const fx = loadFixture('xtransformer_tiny.safetensors');
const kw = fx.meta.xtransformer_kwargs as Record<string, number>;
const extra = fx.meta.residual_scaled_extra_kwargs as Record<string, number>;
const cfg: XTransformerConfig = {
  dim: kw.dim,
  encoder: { numTokens: kw.enc_num_tokens, maxSeqLen: kw.enc_max_seq_len, depth: kw.enc_depth, heads: kw.enc_heads },
  decoder: { numTokens: kw.dec_num_tokens, maxSeqLen: kw.dec_max_seq_len, depth: kw.dec_depth, heads: kw.dec_heads },
};
const weights = new Map([...fx.tensors].filter(([k]) => !/^(input|output|aux)\./.test(k)));
const xtWeights = new Map([...weights].filter(([k]) => k !== 'log_scalors'));
const src = fx.get('input.src'), tgt = fx.get('input.tgt');

function residualModel(): ResidualScaledXTransformer {
  const m = new ResidualScaledXTransformer({ ...cfg, nScales: extra.n_scales, scalePos: extra.scale_pos, xtStart: extra.xt_start, xtSize: extra.xt_size });
  m.loadStateDict(weights);
  m.setAlphas(fx.get('aux.scale_alphas').toNumbers());
  return m.eval();
}

/** Decodes tgt one token per call through a KV cache; returns the logits of every position. */
function cachedLogits(m: XTransformer, steps: number): Tensor {
  const enc = m.encode(src);
  const cache = new KVCache();
  const out = Array.from({ length: steps }, (_, n) => m.forward(src, tgt.narrow(1, n, 1), { enc, cache }));
  assert.equal(cache.length, steps);
  cache.dispose();
  return cat(out, 1);
}

test('XTransformer: state-dict keys equal the official ones', () => {
  const m = new XTransformer(cfg);
  assert.deepEqual([...m.stateDict().keys()].sort(), [...xtWeights.keys()].sort());
  const r = new ResidualScaledXTransformer({ ...cfg, nScales: 4, scalePos: 0, xtStart: 1, xtSize: 16 });
  assert.deepEqual([...r.stateDict().keys()].sort(), [...weights.keys()].sort(), 'ResidualScaled adds log_scalors only (scale_alphas is not saved)');
  assert.equal(m.encoder.attn_layers.layers.length, 4);
  assert.equal(m.decoder.attn_layers.layers.length, 3);
});

test('XTransformer parity: encoder output, logits, and incremental decoding with a KV cache (atol 1e-4)', (ctx) => {
  noGrad(() => tidy(() => {
    const m = new XTransformer(cfg).eval();
    m.loadStateDict(xtWeights);
    ctx.diagnostic(`enc max abs error ${assertClose(m.encode(src), fx.get('output.enc'), 1e-4, 'enc')}`);
    const logits = m.forward(src, tgt);
    ctx.diagnostic(`logits max abs error ${assertClose(logits, fx.get('output.logits'), 1e-4, 'logits')}`);
    ctx.diagnostic(`incremental max abs error ${assertClose(cachedLogits(m, 4), fx.get('output.incremental_last_logits'), 1e-4, 'incremental_last_logits')}`);
    assertClose(cachedLogits(m, 16), logits, 1e-4, 'cached decoding of every position');
  }));
});

test('ResidualScaledXTransformer parity: residual logits and scaled output, also through the cache', (ctx) => {
  noGrad(() => tidy(() => {
    const m = residualModel();
    const out = m.forward(src, tgt);
    ctx.diagnostic(`residualScaled max abs error ${assertClose(out, fx.get('output.logits_residual_scaled'), 1e-4, 'logits_residual_scaled')}`);
    const t = src.select(1, 0).sub(1);
    const scal = m.log_scalors.index([t]).exp().view(-1, 1, 1);
    ctx.diagnostic(`residual max abs error ${assertClose(out.sub(fx.get('output.logits').mul(scal)), fx.get('output.residual_logits'), 1e-4, 'residual_logits')}`);
    assertClose(cachedLogits(m, 16), out, 1e-4, 'cached residual-scaled decoding');
  }));
});

test('ResidualScaled: log_scalors receive gradients; setAlphas checks its length', () => {
  const m = residualModel().train();
  m.forward(src, tgt).logSoftmax(-1).mean().backward();
  assert.ok(m.log_scalors.grad!.abs().sum().item() > 0);
  assert.throws(() => m.setAlphas([1, 0.5]), /expected 5 values/);
});
