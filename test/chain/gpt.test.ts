import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, noGrad, tidy, stack } from '../../src/torch/index.js';
import { GPT, KVCache, type GPTConfig } from '../../src/chain/index.js';
import { loadFixture, assertClose } from '../diffusion/fixtures.js';

const fx = loadFixture('gpt_tiny.safetensors');
const kw = fx.meta.gpt_kwargs as Record<string, number>;
const cfg = (nUnmasked: number): GPTConfig => ({
  vocabSize: kw.vocab_size, blockSize: kw.block_size, nLayer: kw.n_layer, nHead: kw.n_head, nEmbd: kw.n_embd, nUnmasked, inputVocabSize: kw.input_vocab_size,
});
const weights = new Map([...fx.tensors].filter(([k]) => !/^(input|output|n_unmasked2)\./.test(k)));
const c = fx.get('input.c'), z = fx.get('input.z'), idx = fx.get('input.idx');

/** [n_layer, (k, v), B, heads, L, headDim] from a cache, as the official `presents`. */
const presents = (cache: KVCache, nLayer: number): Tensor =>
  stack(Array.from({ length: nLayer }, (_, l) => stack([cache.slot(l).k!, cache.slot(l).v!])));

test('GPT: state-dict keys equal the official ones, the mask buffer included; the constructor builds both masks', () => {
  const m = new GPT(cfg(0));
  assert.deepEqual([...m.stateDict().keys()].sort(), [...weights.keys()].sort());
  assertClose(m.blocks.at(0).attn.mask, fx.get('blocks.0.attn.mask'), 0, 'n_unmasked=0 mask');
  assertClose(new GPT(cfg(2)).blocks.at(1).attn.mask, fx.get('n_unmasked2.mask'), 0, 'n_unmasked=2 mask');
});

for (const variant of ['u0', 'u2'] as const) {
  test(`GPT parity (${variant}): logits, denoiser slice and the forward_with_past path (atol 1e-4)`, (ctx) => {
    noGrad(() => tidy(() => {
      const m = new GPT(cfg(0)).eval();
      // the checkpoint's mask decides: load the n_unmasked=2 mask into a model built with 0
      const sd = new Map(weights);
      if (variant === 'u2') for (let l = 0; l < kw.n_layer; l++) sd.set(`blocks.${l}.attn.mask`, fx.get('n_unmasked2.mask'));
      m.loadStateDict(sd);
      const out = (k: string) => fx.get(`output.${variant}.${k}`);
      const logits = m.forward(idx);
      const errs = [assertClose(logits, out('logits'), 1e-4, 'logits')];
      errs.push(assertClose(logits.narrow(1, c.size(1) - 1, z.size(1)), out('logits_denoiser'), 1e-4, 'logits_denoiser'));

      const cache = new KVCache();
      const next: Tensor[] = [];
      const prefix = m.forward(c, cache);
      errs.push(assertClose(prefix, out('kv.prefix_logits'), 1e-4, 'kv.prefix_logits'));
      errs.push(assertClose(presents(cache, kw.n_layer), out('kv.past_after_prefix'), 1e-4, 'kv.past_after_prefix'));
      next.push(prefix.select(1, -1));
      for (let n = 1; n <= 4; n++) next.push(m.forward(z.narrow(1, n - 1, 1), cache).select(1, -1));
      assert.equal(cache.length, 6);
      errs.push(assertClose(stack(next, 1), out('kv.next_logits'), 1e-4, 'kv.next_logits'));
      errs.push(assertClose(presents(cache, kw.n_layer), out('kv.past_all'), 1e-4, 'kv.past_all'));
      cache.dispose();
      ctx.diagnostic(`${variant} max abs error over logits and the kv path: ${Math.max(...errs)}`);
      // cached sampling matches training only when the prefix attends both ways in training too
      const gap = stack(next, 1).sub(logits.narrow(1, 1, 5)).abs().max().item();
      if (variant === 'u2') assert.ok(gap < 1e-4, `u2: cached = full forward (${gap})`);
      else assert.ok(gap > 0.1, `u0: cached differs from the full forward, as in the official code (${gap})`);
    }));
  });
}

test('GPT refuses inputs longer than its block', () => {
  const m = new GPT(cfg(0));
  assert.throws(() => noGrad(() => m.forward(stack([idx, idx], 1).flatten(1))), /exceed block size 18/);
});
