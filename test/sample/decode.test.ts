/** Next-token logits: truncation filters, the KV cache against the official uncached loop, sliding windows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Tensor, tensor, randint, noGrad, tidy, native } from '../../src/torch/index.js';
import {
  openDecoder, openWindow, windowOf, topKLogits, topPLogits, drawTokens, resolveSettings, type SamplingChain, type Decoding,
} from '../../src/sample/index.js';
import { tinyChain, assertClose, ids } from './tiny.js';

test('top-k keeps ties with the k-th value; top-p keeps the code that crosses p; settings are checked', () => {
  tidy(() => {
    const l = tensor([[1, 3, 2, 3, 0]]);
    assert.deepEqual(topKLogits(l, 1).toNumbers(), [-Infinity, 3, -Infinity, 3, -Infinity], 'both 3s survive top-1');
    assert.deepEqual(topKLogits(l, 3).toNumbers(), [-Infinity, 3, 2, 3, -Infinity]);
    const p = tensor([[Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]]);
    const kept = (x: Tensor) => x.toNumbers().map((v) => (v === -Infinity ? 0 : 1));
    assert.deepEqual(kept(topPLogits(p, 0.45)), [1, 0, 0, 0]);
    assert.deepEqual(kept(topPLogits(p, 0.6)), [1, 1, 0, 0], 'the code that crosses p is kept');
    assert.deepEqual(kept(topPLogits(p, 0.9)), [1, 1, 1, 0]);
    assert.deepEqual(kept(topPLogits(p, 0.01)), [1, 0, 0, 0], 'at least one code');
    const s = resolveSettings({ topK: 1 }, 5);
    for (let i = 0; i < 5; i++) assert.ok([1, 3].includes(drawTokens(l, s).item()));
    assert.equal(drawTokens(tensor([[0, 0, 50, 0]]), resolveSettings({ temperature: 0.01 }, 4)).item(), 2);
  });
  assert.deepEqual(resolveSettings({}, 7), { temperature: 1, topK: 7, topP: 1 });
  assert.throws(() => resolveSettings({ temperature: 0 }, 7), /temperature must be a positive number/);
  assert.throws(() => resolveSettings({ topK: 2.5 }, 7), /top-k must be a positive integer/);
  assert.throws(() => resolveSettings({ topP: 1.5 }, 7), /top-p must be in \(0, 1\]/);
});

/**
 * Feeds teacher tokens through a cached and an uncached decoder, asking for the positions in `order`,
 * and compares the logits with each other and with the teacher-forced model at every position.
 */
function compareDecodings(chain: SamplingChain, o: { cond?: Tensor; order?: number[]; B?: number } = {}): number {
  const [h, w] = chain.tokenShape, N = h * w, B = o.B ?? 2;
  const K = chain.denoisers[0].shape.K;
  let worst = 0;
  noGrad(() => tidy(() => {
    const xs = [randint(0, K, [B, N]), randint(0, K, [B, N])]; // x_t, x_{t-1}
    for (const d of chain.denoisers) {
      const full = d.logits(xs[0], xs[1], o.cond); // [B, N, K] teacher forced
      const open = (decoding: Decoding) => openDecoder(d, xs[0], { cond: o.cond, decoding });
      const [cached, uncached, official] = [open('cached'), open('uncached'), open('official')];
      for (const n of o.order ?? Array.from({ length: N }, (_, i) => i)) {
        const a = cached.logitsAt(xs[1], n), b = uncached.logitsAt(xs[1], n);
        worst = Math.max(worst, assertClose(a, b, 1e-4, `scale ${d.t} position ${n}: cached vs uncached`));
        worst = Math.max(worst, assertClose(b, full.select(1, n), 1e-4, `scale ${d.t} position ${n}: uncached vs teacher forcing`));
        assertClose(official.logitsAt(xs[1], n), b, 1e-4, `scale ${d.t} position ${n}: official`);
      }
      for (const dec of [cached, uncached, official]) dec.dispose();
    }
  }));
  return worst;
}

test('KV cache: cached logits equal the official uncached loop and teacher forcing at every step of every scale', (t) => {
  const chains = { plain: tinyChain({ T: 3 }), residual: tinyChain({ T: 3, residual: true }), conditional: tinyChain({ T: 2, classes: 5 }), wide: tinyChain({ T: 2, shape: [3, 5] }) };
  const cond = ids([3, 1], [2, 1]);
  const live = native.liveTensors();
  t.diagnostic(`plain: max relative diff ${compareDecodings(chains.plain).toExponential(2)}`);
  t.diagnostic(`residual-scaled: ${compareDecodings(chains.residual).toExponential(2)}`);
  t.diagnostic(`class-conditional: ${compareDecodings(chains.conditional, { cond }).toExponential(2)}`);
  // skipped positions (kept tokens in an edit) are fed to the cache in one chunk
  t.diagnostic(`chunked: ${compareDecodings(chains.wide, { order: [2, 3, 7, 8, 14] }).toExponential(2)}`);
  assert.equal(native.liveTensors(), live, 'every tensor of the decoders is freed');
});

test('sliding window: geometry, and at the trained size it is the uncached decoder', () => {
  assert.deepEqual(windowOf(0, 0, [8, 8], [4, 4]), { r0: 0, c0: 0, local: 0 });
  assert.deepEqual(windowOf(5, 4, [8, 8], [4, 4]), { r0: 3, c0: 2, local: 2 * 4 + 2 }, 'centred away from the borders');
  assert.deepEqual(windowOf(7, 7, [8, 8], [4, 4]), { r0: 4, c0: 4, local: 15 }, 'clamped at the far corner');
  assert.deepEqual(windowOf(1, 6, [3, 9], [3, 5]), { r0: 0, c0: 4, local: 5 + 2 });
  const chain = tinyChain({ T: 2, shape: [3, 3] });
  noGrad(() => tidy(() => {
    const xt = randint(0, 16, [2, 3, 3]), xtm1 = randint(0, 16, [2, 9]);
    for (const d of chain.denoisers) {
      const win = openWindow(d, xt, { tokenShape: [3, 3] });
      const ref = openDecoder(d, xt.view(2, 9), { decoding: 'uncached' });
      for (let n = 0; n < 9; n++) assertClose(win.logitsAt(xtm1, n), ref.logitsAt(xtm1, n), 1e-5, `scale ${d.t} position ${n}`);
      win.dispose();
      ref.dispose();
    }
  }));
});

test('a GPT whose unmasked block reaches into the image tokens cannot be sampled token by token', () => {
  const chain = tinyChain({ T: 1 });
  const gpt = chain.denoisers[0] as unknown as { transformer: { cfg: { nUnmasked?: number } } };
  gpt.transformer.cfg.nUnmasked = 3;
  assert.throws(() => openDecoder(chain.denoisers[0], randint(0, 16, [1, 16]), { decoding: 'cached' }), /first 3 positions attend both ways but the conditioning prefix has 1/);
});
