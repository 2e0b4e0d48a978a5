import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, loadSafetensors, noGrad, tidy } from '../../src/torch/index.js';
import { loadVQModel } from '../../src/vqgan/model.js';
import { convertCommand, IMPORT_FORMAT } from '../../src/cli/convert.js';
import { fixturePath, tempDir } from './fixtures.js';

const dir = tempDir();

/** Runs the command with its console output captured. */
async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => { out.push(a.join(' ')); };
  console.error = (...a: unknown[]) => { err.push(a.join(' ')); };
  try {
    return { code: await convertCommand(argv), out: out.join('\n'), err: err.join('\n') };
  } finally {
    [console.log, console.error] = [log, error];
  }
}

const same = (a: Tensor, b: Tensor): boolean => a.dtype === b.dtype && Buffer.from(a.toArray().buffer).equals(Buffer.from(b.toArray().buffer));

test('convert: a VQGAN .ckpt becomes a safetensors file that loadVQModel reads and that reproduces output.rec', async () => {
  const fx = loadSafetensors(fixturePath('vqgan_tiny.safetensors'));
  const out = join(dir, 'vqgan.safetensors');
  const meta = ['ddconfig', 'n_embed', 'embed_dim', 'beta', 'legacy', 'sane_index_shape'].flatMap((k) => ['--meta', `${k}=${fx.metadata[k]}`]);
  const r = await run([fixturePath('vqgan_tiny_legacy.ckpt'), out, ...meta]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /wrote 160 tensors/);
  const { tensors, metadata } = loadSafetensors(out);
  assert.equal(metadata.format, IMPORT_FORMAT);
  assert.equal(metadata.global_step, '1234');
  assert.ok(same(tensors.get('quantize.used')!, fx.tensors.get('quantize.used')!));
  const model = loadVQModel(out); // drops loss.* itself
  noGrad(() => tidy(() => {
    const err = model.forward(fx.tensors.get('input.x')!).rec.sub(fx.tensors.get('output.rec')!).abs().max().item();
    assert.ok(err <= 1e-4, `rec: max |Δ| = ${err}`);
  }));
});

test('convert: --prefix transformer. --ema writes the EMA weights under the parameter names', async () => {
  const input = fixturePath('imagebart_scale_tiny.ckpt');
  const out = join(dir, 'ema.safetensors');
  const refused = await run([input, out, '--prefix', 'transformer.', '--ema']);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /DictConfig[\s\S]*--allow-unknown-globals/);
  assert.equal(existsSync(out), false);

  const r = await run([input, out, '--prefix', 'transformer.', '--ema', '--allow-unknown-globals']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /skipped objects of unknown classes: omegaconf\.dictconfig\.DictConfig/);
  const fx = loadSafetensors(fixturePath('xtransformer_tiny.safetensors')).tensors;
  const { tensors, metadata } = loadSafetensors(out);
  const want = [...fx.keys()].filter((k) => !/^(input|output|aux)\./.test(k)).sort();
  assert.deepEqual([...tensors.keys()].sort(), want);
  for (const k of want) assert.ok(same(tensors.get(k)!, fx.get(k)!), `${k} differs from the fixture`);
  assert.equal(metadata.ema, 'true');
  assert.match(metadata.hyper_parameters!, /omegaconf\.dictconfig\.DictConfig/);

  const training = join(dir, 'training.safetensors');
  assert.equal((await run([input, training, '--prefix', 'transformer.', '--allow-unknown-globals'])).code, 0);
  const tw = loadSafetensors(training).tensors;
  assert.ok(!same(tw.get('encoder.token_emb.weight')!, fx.get('encoder.token_emb.weight')!), 'training weights are the noisy ones');
});

test('convert: refuses malicious files, reports unknown prefixes, and checks its arguments', async () => {
  const out = join(dir, 'x.safetensors');
  const bad = await run([fixturePath('malicious.ckpt'), out, '--allow-unknown-globals']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /refusing to unpickle posix\.system/);
  assert.equal(existsSync('/tmp/imagebart-pickle-code-ran'), false);
  const none = await run([fixturePath('vqgan_tiny.ckpt'), out, '--prefix', 'nope.']);
  assert.equal(none.code, 1);
  assert.match(none.err, /no tensors under prefix 'nope\.'; the state_dict has: .*encoder\. \(\d+\)/);
  assert.equal((await run([fixturePath('vqgan_tiny.ckpt')])).code, 2);
  assert.equal((await run([fixturePath('vqgan_tiny.ckpt'), out, '--ema'])).code, 2);
  assert.equal((await run([fixturePath('vqgan_tiny.ckpt'), out, '--meta', 'novalue'])).code, 2);
  assert.equal((await run(['--help'])).code, 0);
});
