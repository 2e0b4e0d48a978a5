/**
 * No silent defaults: each way a release can disagree with itself, or ask for something this port
 * does not implement, is refused with a message naming the key or file — on altered copies of the
 * tiny official release. And the checkpoints' omegaconf hyper_parameters are read as data only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { openTorchCheckpoint, ZipReader, unpickle, PickledObject } from '../../src/io/index.js';
import { createDenoiser, gptMask } from '../../src/chain/index.js';
import { makeSchedule } from '../../src/diffusion/index.js';
import { configData, importRelease, readRelease, readYaml } from '../../src/release/index.js';
import { zipBytes, P } from '../io/builders.js';
import { TINY, alteredTiny, replaceIn, releasePath, tempDir } from './fixtures.js';

const scaleYaml = (root: string, t: number) => join(root, `configs/tiny/tiny-scale${t}.yaml`);

/** A .npy of int64 codes, as numpy writes version 1.0. */
function npy(codes: number[]): Buffer {
  let header = `{'descr': '<i8', 'fortran_order': False, 'shape': (${codes.length},), }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(BigInt64Array.from(codes, BigInt).buffer)]);
}
const used = (root: string) => readFileSync(join(root, 'data/vqgan_indices/tiny_indices.npy'));

/** Rewrites one checkpoint's data.pkl (the zip rebuilt, CRCs and all). */
function rewritePickle(path: string, edit: (pkl: Buffer) => Buffer): void {
  const z = ZipReader.open(path);
  const entries = [...z.entries.keys()].map((name) => ({ name, data: z.read(name) }));
  z.close();
  writeFileSync(path, zipBytes(entries.map((e) => (e.name.endsWith('/data.pkl') ? { ...e, data: edit(Buffer.from(e.data)) } : e))));
}

const refusals: [string, (root: string) => void, RegExp][] = [
  ['an unknown config key', (r) => replaceIn(scaleYaml(r, 1), 'dec_depth: 1', 'dec_depth: 1\n        rotary_pos_emb: true'),
    /tiny-scale1\.yaml: config\.model\.params\.transformer_config\.params\.rotary_pos_emb: unknown option/],
  ['an unimplemented option', (r) => replaceIn(scaleYaml(r, 2), 'tie_token_emb: false', 'tie_token_emb: true'),
    /transformer_config\.params\.tie_token_emb: true is not implemented/],
  ['a VQGAN option that changes outputs', (r) => replaceIn(scaleYaml(r, 1), 'dropout: 0.0', 'dropout: 0.0\n          give_pre_end: true'),
    /first_stage_config\.params\.ddconfig\.give_pre_end: only false/],
  ['an unknown VQGAN option', (r) => replaceIn(scaleYaml(r, 3), 'dropout: 0.0', 'dropout: 0.0\n          attn_type: linear'),
    /ddconfig\.attn_type: unknown option/],
  ['a remap file shorter than the codebook', (r) => writeFileSync(join(r, 'data/vqgan_indices/tiny_indices.npy'), npy(readNpyCodes(used(r)).slice(0, 39))),
    /remap file .*tiny_indices\.npy keeps 39 codes, but the transformers' codebook .* is 40/],
  ['scales that disagree on the schedule', (r) => replaceIn(scaleYaml(r, 2), 'redraw_prob: geometric', 'redraw_prob: bernoulli_PSIM'),
    /tiny-scale2\.yaml: redraw_prob "bernoulli_PSIM" differs from scale 1's "geometric"/],
  ['an invalid sampling YAML', (r) => writeFileSync(join(r, 'configs/sampling/tiny_3_scales.yaml'), `${readFileSync(join(r, 'configs/sampling/tiny_3_scales.yaml'), 'utf-8')}>\n`),
    /is not valid YAML at line \d+ \('>'\)/],
];

function readNpyCodes(b: Buffer): number[] {
  const hlen = b.readUInt16LE(8);
  return [...new BigInt64Array(b.buffer.slice(b.byteOffset + 10 + hlen, b.byteOffset + b.length))].map(Number);
}

for (const [what, edit, message] of refusals) {
  test(`refused, naming the key: ${what}`, () => {
    const sampling = alteredTiny(edit);
    assert.throws(() => readRelease(sampling), message);
  });
}

const importRefusals: [string, (root: string) => void, RegExp][] = [
  ['a remap file whose codes disagree with the checkpoint\'s quantize.used', (r) => {
    const codes = readNpyCodes(used(r));
    codes[0] = 0; // 0 is not among the tiny release's kept codes: same length, other values
    writeFileSync(join(r, 'data/vqgan_indices/tiny_indices.npy'), npy(codes));
  }, /remap file .*tiny_indices\.npy \(40 codes\) disagrees with .*scale1\.ckpt's first_stage_model\.quantize\.used \(40 codes\) in their values/],
  ['a YAML that disagrees with the checkpoint\'s hyper_parameters', (r) => replaceIn(scaleYaml(r, 2), 'alpha: 1.0', 'alpha: 0.5'),
    /scale2\.ckpt: hyper_parameters\.alpha \(checkpoint 1, YAML 0\.5\) differs from model\.params/],
  ['a GPT n_unmasked that disagrees with the saved masks', (r) => {
    replaceIn(scaleYaml(r, 3), 'n_unmasked: 2', 'n_unmasked: 1');
    rewritePickle(join(r, 'models/tiny_3_scales/scale3.ckpt'), (pkl) => {
      // the checkpoint's own copy of the config says 1 as well, so only the masks disagree
      const i = pkl.indexOf(Buffer.from('n_unmasked'));
      assert.ok(i >= 0);
      const at = pkl.indexOf(0x4b, i); // BININT1 2
      assert.equal(pkl[at + 1], 2);
      pkl[at + 1] = 1;
      return pkl;
    });
  }, /scale3\.ckpt: transformer\.blocks\.0\.attn\.mask lets the first 2 positions attend both ways, but the config's n_unmasked is 1/],
  ['hyper_parameters holding an object that would run code', (r) => rewritePickle(join(r, 'models/tiny_3_scales/scale1.ckpt'),
    (pkl) => Buffer.from(pkl.toString('latin1').replace('comegaconf.dictconfig\nDictConfig\n', 'cposix\nsystem\n'), 'latin1')),
    /scale1\.ckpt: refusing to unpickle posix\.system: it can execute code/],
  ['hyper_parameters holding an object that is not configuration data', (r) => rewritePickle(join(r, 'models/tiny_3_scales/scale1.ckpt'),
    (pkl) => Buffer.from(pkl.toString('latin1').replace('comegaconf.dictconfig\nDictConfig\n', 'cmymodule\nPayload\n'), 'latin1')),
    /hyper_parameters\.conditioner_config holds an object of class mymodule\.Payload: not configuration data, refused/],
];

for (const [what, edit, message] of importRefusals) {
  test(`import refused, naming the file and key: ${what}`, () => {
    const sampling = alteredTiny(edit);
    const out = join(tempDir(), 'model');
    assert.throws(() => importRelease(sampling, out), message);
    assert.equal(existsSync(out), false, 'nothing is left behind');
  });
}

test('import never writes into an existing model directory', () => {
  const out = tempDir();
  writeFileSync(join(out, 'chain.json'), '{}');
  assert.throws(() => importRelease(TINY(), out), /exists and is not empty/);
  assert.equal(readFileSync(join(out, 'chain.json'), 'utf-8'), '{}');
});

test('the DictConfig hyper_parameters of a scale checkpoint are read as data: they equal the YAML\'s model.params', () => {
  const ck = openTorchCheckpoint(releasePath('tiny/models/tiny_3_scales/scale1.ckpt'), { skipUnknown: true });
  try {
    const hp = (ck.root as Record<string, unknown>).hyper_parameters as Record<string, unknown>;
    const nested = hp.conditioner_config;
    assert.ok(nested instanceof PickledObject && nested.global === 'omegaconf.dictconfig.DictConfig', 'an inert placeholder, never constructed');
    const yaml = readYaml(releasePath('tiny/configs/tiny/tiny-scale1.yaml')) as { model: { params: unknown } };
    assert.deepEqual(configData(hp), yaml.model.params);
  } finally {
    ck.close();
  }
});

test('configData: omegaconf containers and value nodes become plain data; other objects are refused', () => {
  const node = (v: number) => { const o = new PickledObject('omegaconf.nodes.AnyNode', []); o.state = Object.assign(Object.create(null), { _val: v }); return o; };
  const dc = new PickledObject('omegaconf.dictconfig.DictConfig', []);
  dc.state = Object.assign(Object.create(null), { _content: Object.assign(Object.create(null), { a: node(1), b: [node(2)] }) });
  assert.deepEqual(configData(dc), { a: 1, b: [2] });
  // a pickle that reaches for code is refused while it is read, before any conversion
  const evil = new P().proto().global('builtins', 'eval').mark().str('1').tuple().reduce().stop().bytes();
  assert.throws(() => unpickle(evil, { skipUnknown: true }), /refusing to unpickle builtins\.eval: it can execute code/);
});

test('a GPT whose loaded masks disagree with its n_unmasked is refused at load (cached and uncached decoding would differ)', () => {
  const shape = { K: 10, T: 2, tokens: 4, condLength: 1, condVocab: 12 };
  const d = createDenoiser(2, { type: 'gpt', dim: 16, heads: 2, depth: 1, nUnmasked: 2 }, shape, makeSchedule('geometric', 2));
  const sd = d.stateDict();
  sd.set('transformer.blocks.0.attn.mask', gptMask(5, 3));
  assert.throws(() => d.loadStateDict(sd), /transformer\.blocks\.0\.attn\.mask lets the first 3 positions attend both ways, but the config's n_unmasked is 2/);
  sd.set('transformer.blocks.0.attn.mask', gptMask(5, 2));
  d.loadStateDict(sd);
});
