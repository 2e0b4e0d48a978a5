import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unpickle, PickleError, PickledObject, TensorRef, StorageType, BufferSource } from '../../src/io/pickle.js';
import { P } from './builders.js';

const latin = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

test('protocol 2: ints of every width, big longs, floats, strings, None/True/False, lists, tuples, memo sharing', () => {
  const p = new P().proto().emptyDict().put(0).mark()
    .str('small').int(7).str('u16').int(50000).str('neg').int(-5).str('i32').int(2 ** 31 - 1)
    .str('big').long(2n ** 70n).str('negbig').long(-(2n ** 63n)).str('neg1').long(-1n).str('zero').long(0n)
    .str('f').float(-1.25).str('none').none().str('t').bool(true).str('u').str('ünï €')
    .str('list').emptyList().put(1).mark().int(1).int(2).appends()
    .str('again').get(1)
    .str('tup').mark().int(1).str('x').tuple()
    .setitems().stop();
  const d = unpickle(p.bytes()) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(d), null);
  assert.equal(d.small, 7);
  assert.equal(d.u16, 50000);
  assert.equal(d.neg, -5);
  assert.equal(d.i32, 2 ** 31 - 1);
  assert.equal(d.big, 2n ** 70n);
  assert.equal(d.negbig, -(2n ** 63n));
  assert.equal(d.neg1, -1);
  assert.equal(d.zero, 0);
  assert.equal(d.f, -1.25);
  assert.equal(d.none, null);
  assert.equal(d.t, true);
  assert.equal(d.u, 'ünï €');
  assert.deepEqual(d.list, [1, 2]);
  assert.equal(d.again, d.list, 'a memo GET returns the same object');
  assert.deepEqual(d.tup, [1, 'x']);
});

test('protocol 4 opcodes: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, sets, bytes', () => {
  const p = new P().proto(4).raw(0x95, new Uint8Array(8)) // FRAME with a length hint
    .raw(0x8c, 11).text('collections').raw(0x94).raw(0x8c, 11).text('OrderedDict').raw(0x94).raw(0x93).emptyTuple().reduce().raw(0x94)
    .mark().raw(0x8c, 1).text('s').raw(0x8f).mark().int(1).int(2).raw(0x90)
    .raw(0x8c, 1).text('f').mark().int(3).raw(0x91)
    .raw(0x8c, 1).text('b').raw(0x43, 3, 1, 2, 255)
    .raw(0x8c, 1).text('c').global('_codecs', 'encode').mark().str('\u00ff\u0001').str('latin1').tuple().reduce()
    .setitems().stop();
  const d = unpickle(p.bytes()) as Record<string, unknown>;
  assert.deepEqual(d.s, new Set([1, 2]));
  assert.deepEqual(d.f, new Set([3]));
  assert.deepEqual(d.b, Uint8Array.of(1, 2, 255));
  assert.deepEqual(d.c, Uint8Array.of(255, 1));
});

test('protocol 0 text opcodes: dict, INT (with 01 as True), LONG, FLOAT, STRING, UNICODE, PUT/GET', () => {
  const src = "(dp0\nS'a'\np1\nI42\nsVb\u00e9\np2\nI01\nsS'c'\np3\nF1.5\nsS'd'\nL123456789012345678901L\nsS'e'\ng1\nsS'f'\n(lp4\nI1\naI2\nas.";
  const d = unpickle(latin(src)) as Record<string, unknown>;
  assert.equal(d.a, 42);
  assert.equal(d['bé'], true);
  assert.equal(d.c, 1.5);
  assert.equal(d.d, 123456789012345678901n);
  assert.equal(d.e, 'a');
  assert.deepEqual(d.f, [1, 2]);
});

test('globals that run code are refused by name, even with skipUnknown, and nothing is called', () => {
  const call = (m: string, n: string) => new P().proto().global(m, n).mark().str('echo hi').tuple().reduce().stop().bytes();
  for (const [m, n] of [['posix', 'system'], ['os', 'system'], ['subprocess', 'Popen'], ['builtins', 'eval'], ['__builtin__', 'exec'], ['builtins', 'getattr']] as const) {
    assert.throws(() => unpickle(call(m, n)), new RegExp(`refusing to unpickle ${m}\\.${n}`));
    assert.throws(() => unpickle(call(m, n), { skipUnknown: true }), new RegExp(`refusing to unpickle ${m}\\.${n}: it can execute code`));
  }
  assert.throws(() => unpickle(new P().proto().raw(0x82, 1).stop().bytes()), /extension-registry/);
});

test('unknown classes: refused by default; with skipUnknown an inert placeholder keeps args and state', () => {
  const data = new P().proto().emptyDict().mark().str('cfg')
    .global('omegaconf.dictconfig', 'DictConfig').emptyTuple().newobj()
    .emptyDict().mark().str('_content').emptyDict().mark().str('dim').int(64).setitems().setitems().build()
    .str('n').int(1).setitems().stop().bytes();
  assert.throws(() => unpickle(data), (e: Error) => e instanceof PickleError && /refusing to unpickle omegaconf\.dictconfig\.DictConfig: not on the allow-list/.test(e.message));
  const seen: string[] = [];
  const d = unpickle(data, { skipUnknown: true, onUnknownGlobal: (g) => seen.push(g) }) as Record<string, unknown>;
  const cfg = d.cfg as PickledObject;
  assert.ok(cfg instanceof PickledObject);
  assert.equal(cfg.global, 'omegaconf.dictconfig.DictConfig');
  assert.equal(((cfg.state as Record<string, Record<string, unknown>>)._content!).dim, 64);
  assert.equal(d.n, 1);
  assert.deepEqual(seen, ['omegaconf.dictconfig.DictConfig']);
});

test('torch tensors come back as TensorRefs over whatever the persistent loader returns', () => {
  const data = new P().proto().global('torch._utils', '_rebuild_tensor_v2').mark()
    .mark().str('storage').global('torch', 'BFloat16Storage').str('7').str('cuda:0').int(6).tuple().binpersid()
    .int(1).ints([2, 2]).ints([1, 2]).bool(true).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce().stop().bytes();
  const ref = unpickle(data, { persistentLoad: (pid) => pid }) as TensorRef;
  assert.ok(ref instanceof TensorRef);
  const [kind, type, key, loc, numel] = ref.storage as unknown[];
  assert.equal(kind, 'storage');
  assert.ok(type instanceof StorageType && type.dtype === 'bfloat16');
  assert.deepEqual([key, loc, numel], ['7', 'cuda:0', 6]);
  assert.deepEqual([ref.offset, ref.size, ref.stride, ref.requiresGrad], [1, [2, 2], [1, 2], true]);
  assert.throws(() => unpickle(data), /persistent id/);
});

test('malformed data: truncation, unknown opcodes, stack underflow and a leftover stack are clear errors', () => {
  const good = new P().proto().emptyDict().mark().str('key').str('value').setitems().stop().bytes();
  assert.throws(() => unpickle(good.subarray(0, good.length - 4)), /ends unexpectedly.*truncated/);
  assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0xff)), /unknown pickle opcode 0xff at byte 2/);
  assert.throws(() => unpickle(new P().proto().reduce().stop().bytes()), /stack underflow/);
  assert.throws(() => unpickle(new P().proto().int(1).int(2).stop().bytes()), /STOP with 2 objects/);
  assert.throws(() => unpickle(new P().proto(6).none().stop().bytes()), /unsupported pickle protocol 6/);
});

test('dict keys cannot pollute prototypes; consecutive pickles read from one source', () => {
  const one = new P().proto().emptyDict().mark().str('__proto__').emptyDict().mark().str('polluted').bool(true).setitems().setitems().stop().bytes();
  const two = new P().proto().int(5).stop().bytes();
  const src = new BufferSource(new P().raw(one, two).bytes());
  const d = unpickle(src) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(d), null);
  assert.ok(Object.prototype.hasOwnProperty.call(d, '__proto__'));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(unpickle(src), 5);
  assert.equal(src.pos, one.length + two.length);
});
