/**
 * A device everywhere: sampling and editing create x_T, prefixes, masks and caches on the models'
 * device. On a CPU-only machine the `meta` device stands in for an accelerator: with the binding's
 * device check on (setDeviceCheck / IMAGEBART_CHECK_DEVICES=1), any operator that mixes a tensor
 * created on the CPU with the meta models fails with "tensor inputs on different devices"; a run
 * that creates everything on the models' device gets further, to the first operator that has no
 * meta kernel. IMAGEBART_TEST_DEVICE=cuda (scripts/gpu-check.sh) also runs the imported tiny release
 * on that device and compares it with the CPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type Tensor, onDevice, setDeviceCheck, setThreads, tensor, zeros, noGrad, tidy, loadSafetensors } from '../../src/torch/index.js';
import { loadChain } from '../../src/chain/index.js';
import { loadSamplingChain, maskedEdit, sample, decodeTokens, type SamplingChain } from '../../src/sample/index.js';
import { importRelease } from '../../src/release/index.js';
import { TINY, releasePath, tempDir } from '../release/fixtures.js';

setThreads({ intraOp: 1, blas: 1 });
const manifest = importRelease(TINY(), join(tempDir(), 'tiny')).manifest;
const cond = tensor(BigInt64Array.from([45n, 7n]), [2, 1]);

function withDeviceCheck<T>(fn: () => T): T {
  const prev = setDeviceCheck(true);
  try {
    return fn();
  } finally {
    setDeviceCheck(prev);
  }
}

test('the device check refuses an operator whose tensor inputs live on different devices (0-dim CPU scalars excepted)', () => {
  withDeviceCheck(() => {
    assert.throws(() => zeros([2], { device: 'meta' }).add(zeros([2])), /aten::add\.Tensor: tensor inputs on different devices \(meta, cpu\)/);
    assert.doesNotThrow(() => zeros([2], { device: 'meta' }).add(zeros([])));
  });
});

/** The chain built on `meta` (libtorch cannot move a CPU parameter there in place). */
const metaChain = (): SamplingChain => onDevice('meta', () => loadSamplingChain(manifest)).chain;
/** The run got past every device boundary: it stops only where meta has no kernel. */
const onlyMissingKernels = (e: unknown): boolean => {
  const m = (e as Error).message;
  assert.doesNotMatch(m, /different devices|Expected all tensors to be on the same device/);
  return /Meta/.test(m);
};

test('sampling on a meta chain creates x_T, the GPT prefix and the decoder state on the models\' device', () => {
  const chain = metaChain();
  withDeviceCheck(() => assert.throws(() => sample(chain, { batch: 2, cond, seed: 1 }), onlyMissingKernels));
});

test('editing on a meta chain moves the image tokens, the mask and the start state to the models\' device', () => {
  const chain = metaChain();
  const x0 = zeros([2, 8, 8], { dtype: 'int64' });
  const keep = tensor(Uint8Array.from({ length: 64 }, (_, i) => (i >= 32 ? 1 : 0)), [1, 8, 8]).bool();
  withDeviceCheck(() => assert.throws(() => maskedEdit(chain, x0, keep, { cond, seed: 1 }), onlyMissingKernels));
});

const DEVICE = process.env.IMAGEBART_TEST_DEVICE ?? 'cpu';

test(`the imported tiny release on ${DEVICE}: logits equal the CPU's, sampling and decoding run there`, () => {
  const expected = loadSafetensors(releasePath('tiny/expected.safetensors')).tensors;
  const cpu = loadChain(manifest).denoisers;
  const { chain, firstStage } = loadSamplingChain(manifest, { device: DEVICE });
  assert.equal(firstStage.device.split(':')[0], DEVICE.split(':')[0]);
  withDeviceCheck(() => noGrad(() => {
    for (const d of chain.denoisers) {
      const xt = expected.get(`scale${d.t}.x_t`)!.reshape(2, 64), xtm1 = expected.get(`scale${d.t}.x_tm1`)!.reshape(2, 64);
      const err = tidy(() => {
        const here = d.logits(xt.to(DEVICE), xtm1.to(DEVICE), cond.to(DEVICE)).to('cpu');
        const there = cpu[d.t - 1]!.logits(xt, xtm1, cond);
        return here.sub(there).abs().max().item();
      });
      assert.ok(err < 1e-4, `scale ${d.t} on ${DEVICE}: max |Δ| = ${err}`);
    }
    const r = sample(chain, { batch: 2, cond, seed: 2 });
    assert.equal(r.tokens.device.split(':')[0], DEVICE.split(':')[0]);
    const img = decodeTokens(firstStage, r.tokens as Tensor);
    assert.ok(img.data.every(Number.isFinite));
  }));
});
