/**
 * Data parallelism on c10d (Gloo on loopback): two ranks on half-batches against one process on the
 * whole batch (gradients averaged by c10d::Reducer during the backward pass, its all-reduces launched
 * before the pass ends; with accumulated micro-batches too), collectives on lists of tensors, failures
 * (a rank dying or hanging, during a collective or a backward pass, a port in use, no rendezvous) as
 * clear errors within the timeout, and the ranks' data shards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, loadSafetensors } from '../../src/torch/index.js';
import { ProcessGroup, Reducer, ShardSampler, availableBackends, buckets, launchEnv, rankSeed } from '../../src/distributed/index.js';
import { tinyStep, tinyVQGANStep, freePort, run, rankEnv, RANK_SCRIPT, BATCH } from './fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'imagebart-dist-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const skip = availableBackends().includes('gloo') ? false : 'the binding was built without c10d (install libgloo-dev and run npm run setup)';

type Result = Map<string, ReturnType<typeof tensor>>;

/** Each of `ranks`' results equals `whole`'s within float tolerance, and the ranks' are bit-identical. */
function assertSameStep(ranks: Result[], whole: Record<string, ReturnType<typeof tensor>>): void {
  const names = Object.keys(whole);
  assert.ok(names.some((n) => n.startsWith('grad.')) && names.some((n) => n.startsWith('ema.')));
  // the same parameters have gradients (one no loss reaches keeps none on every rank)
  for (const r of ranks) assert.deepEqual([...r.keys()].filter((n) => n.startsWith('grad.')).sort(), names.filter((n) => n.startsWith('grad.')).sort());
  for (const n of names) {
    const ref = whole[n]!;
    for (const g of ranks) {
      const diff = g.get(n)!.sub(ref).abs().max().item();
      assert.ok(diff <= 1e-5 * Math.max(1, ref.abs().max().item()), `${n}: ranks differ from one process by ${diff}`);
    }
    // bit-identical across ranks: same averaged gradients, same step, same EMA
    assert.equal(ranks[0]!.get(n)!.sub(ranks[1]!.get(n)!).abs().max().item(), 0, `${n} differs between the ranks`);
  }
}

/** Starts `world` ranks of rank.js in `mode`; returns their exits. */
async function ranks(mode: string, world: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ outs: string[]; exits: Awaited<ReturnType<typeof run>>[] }> {
  const port = await freePort();
  const outs = Array.from({ length: world }, (_, r) => join(dir, `${mode}-${port}-${r}.safetensors`));
  const exits = await Promise.all(outs.map((out, r) => run(process.execPath, [RANK_SCRIPT, mode, out], { ...rankEnv(r, world, port), ...extraEnv })));
  return { outs, exits };
}

test('two ranks on half-batches take the step one process takes on the whole batch; collectives on lists', { skip }, async () => {
  const { outs, exits } = await ranks('step', 2);
  for (const e of exits) assert.equal(e.code, 0, e.out);
  const got = outs.map((o) => loadSafetensors(o).tensors);
  const [r0, r1] = got as [Map<string, ReturnType<typeof tensor>>, Map<string, ReturnType<typeof tensor>>];
  // collectives: sum of a list (each tensor on its own), mean, max, broadcast from rank 1
  for (const g of got) {
    assert.deepEqual(g.get('c.sum_a')!.toNumbers(), [3, 30]);
    assert.deepEqual(g.get('c.sum_b')!.toNumbers(), [1, -1, 2, 2]);
    assert.deepEqual(g.get('c.mean_c')!.toNumbers(), [0.5]);
    assert.deepEqual(g.get('c.max_m')!.toNumbers(), [1, 5]);
    assert.deepEqual(g.get('c.bcast_d')!.toNumbers(), [2, 3, 5]);
  }
  const whole = tinyStep(0, BATCH);
  assertSameStep([r0, r1], whole);
  const names = Object.keys(whole);
  // the Reducer: small buckets, the first all-reduce launched before the last gradient was ready
  const seen = JSON.parse(exits[0]!.out.split('\n').find((l) => l.startsWith('{'))!) as {
    buckets: { bytes: number; parameters: string[] }[];
    timeline: { commStartMs: number; lastGradReadyMs: number; computeEndMs: number; commEndMs: number; overlapMs: number };
  };
  const order = names.filter((n) => n.startsWith('weight.')).map((n) => n.slice(7)); // definition order
  assert.ok(seen.buckets.length >= 4, `${seen.buckets.length} buckets`);
  assert.deepEqual(seen.buckets.flatMap((b) => b.parameters).sort(), [...order].sort());
  // reduced in reverse definition order: each bucket's parameters come after the next bucket's
  const at = (b: { parameters: string[] }) => b.parameters.map((p) => order.indexOf(p));
  for (let i = 1; i < seen.buckets.length; i++) assert.ok(Math.min(...at(seen.buckets[i - 1]!)) > Math.max(...at(seen.buckets[i]!)), `bucket ${i - 1} before ${i}`);
  const t = seen.timeline;
  assert.ok(t.commStartMs < t.lastGradReadyMs, `first all-reduce launched at ${t.commStartMs} ms, the last gradient was ready at ${t.lastGradReadyMs} ms`);
  assert.ok(t.overlapMs > 0 && t.commStartMs < t.computeEndMs && t.computeEndMs <= t.commEndMs, JSON.stringify(t));
  // the gradients really changed something: half-batch gradients alone differ from the whole batch's
  const half = tinyStep(0, BATCH / 2);
  assert.ok(names.filter((n) => n.startsWith('grad.')).some((n) => half[n]!.sub(whole[n]!).abs().max().item() > 1e-4));
});

test('gradient accumulation: two ranks × two micro-batches (the first not synced, DDP\'s no_sync) take the whole batch\'s step', { skip }, async () => {
  const { outs, exits } = await ranks('accumulate', 2);
  for (const e of exits) assert.equal(e.code, 0, e.out);
  assertSameStep(outs.map((o) => loadSafetensors(o).tensors), tinyStep(0, BATCH));
});

test('the VQGAN trainer: two ranks on half-batches get the whole batch\'s autoencoder gradients; with the discriminator on, identical weights', { skip }, async () => {
  const { outs, exits } = await ranks('vqgan', 2);
  for (const e of exits) assert.equal(e.code, 0, e.out);
  const whole = tinyVQGANStep(mkdtempSync(join(dir, 'vqgan-')), { batchSize: 16, discStart: 1_000_000 });
  const got = outs.map((o) => loadSafetensors(o).tensors);
  const names = Object.keys(whole).filter((n) => n.startsWith('grad.model.'));
  assert.ok(names.length > 10);
  for (const n of names) {
    const ref = whole[n]!;
    for (const g of got) {
      const diff = g.get(n)!.sub(ref).abs().max().item();
      assert.ok(diff <= 1e-4 * Math.max(1e-3, ref.abs().max().item()), `${n}: ranks differ from one process by ${diff}`);
    }
  }
  // rank 0's half-batch alone would not have given them
  const half = tinyVQGANStep(mkdtempSync(join(dir, 'vqgan-')), { batchSize: 8, discStart: 1_000_000 });
  assert.ok(names.some((n) => half[n]!.sub(whole[n]!).abs().max().item() > 1e-2 * whole[n]!.abs().max().item()));
  // the discriminator's update (its own Reducer) too: both parts bit-identical across the ranks
  const [d0, d1] = outs.map((o) => loadSafetensors(`${o}.disc`).tensors) as [Map<string, ReturnType<typeof tensor>>, Map<string, ReturnType<typeof tensor>>];
  assert.ok([...d0.keys()].some((n) => n.startsWith('grad.disc.')));
  for (const [n, t] of d0) if (n.startsWith('weight.')) assert.equal(t.sub(d1.get(n)!).abs().max().item(), 0, `${n} differs between the ranks`);
});

test('a rank that dies or hangs makes the other fail with a clear message within the timeout', { skip }, async () => {
  const timeoutMs = 3000;
  const env = { TEST_TIMEOUT_MS: String(timeoutMs) };
  const [die, hang, dieBackward] = await Promise.all([ranks('die', 2, env), ranks('hang', 2, env), ranks('die-backward', 2, env)]);
  for (const r of [die, dieBackward]) assert.equal(r.exits[1]!.code, 3, r.exits[1]!.out);
  for (const [what, r] of [['die', die], ['hang', hang], ['die-backward', dieBackward]] as const) {
    const line = r.exits[0]!.out.split('\n').find((l) => l.startsWith('{'));
    assert.ok(line, `${what}: rank 0 printed no result: ${r.exits[0]!.out}`);
    const { error, ms } = JSON.parse(line) as { error: string | null; ms: number };
    assert.ok(error, `${what}: rank 0's all-reduce did not fail`);
    assert.equal(r.exits[0]!.code, 0, r.exits[0]!.out);
    assert.match(error, /^c10d rank 0\/2 \(gloo, master 127\.0\.0\.1:\d+\): /);
    assert.ok(ms < timeoutMs + 2000, `${what}: failed after ${ms} ms, the timeout is ${timeoutMs} ms`);
    // Gloo reports a dead peer as a closed connection or, when the op was posted after the close, a timeout
    assert.match(error, what === 'hang' ? /timed out/i : /closed|reset|peer|timed out/i);
    assert.match(error, /a rank exited or stopped responding/);
  }
});

test('in one process: a world of one, a port in use, no rendezvous, bad arguments', { skip }, async () => {
  const port = await freePort();
  const g = new ProcessGroup({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 2000 });
  const x = tensor([1, 2, 3]);
  g.allReduce([x], 'mean');
  g.broadcast([x]);
  g.barrier();
  assert.deepEqual(x.toNumbers(), [1, 2, 3]);
  assert.throws(() => g.allReduce([x], 'avg' as 'sum'), /c10d rank 0\/1 .*op must be sum, mean, max or min/);
  assert.throws(() => g.allReduce([x.expand(2, 3).transpose(0, 1)]), /contiguous/);
  // a Reducer in a world of one: the averages are the local gradients; an unreached parameter
  const a = tensor([1, 2]).requiresGrad_(true), b = tensor([3]).requiresGrad_(true);
  const strict = new Reducer(g, [['a', a], ['b', b]]);
  assert.throws(() => strict.backward(a.mul(a).sum()), /c10d rank 0\/1 .*the backward pass did not reach every parameter of the reducer \(among: .*\bb\b.*findUnusedParameters/);
  strict.dispose();
  a.grad = undefined;
  const lenient = new Reducer(g, [['a', a], ['b', b], ['a again', a]], { findUnusedParameters: true });
  assert.deepEqual(lenient.names, ['a', 'b']);
  lenient.backward(a.mul(a).sum(), { sync: false });
  lenient.backward(a.mul(a).sum());
  assert.deepEqual(a.grad!.toNumbers(), [4, 8]);
  assert.equal(b.grad, undefined);
  assert.equal(lenient.bytesPerStep, 12);
  lenient.dispose();
  assert.throws(() => lenient.backward(a.sum()), /the reducer was disposed/);
  assert.throws(() => new Reducer(g, [['x', tensor([1])]]), /parameter x is not a leaf tensor that requires grad/);
  g.destroy();
  assert.throws(() => g.barrier(), /destroyed/);

  const busy = createServer();
  await new Promise<void>((done) => busy.listen(port, '127.0.0.1', done));
  try {
    assert.throws(() => new ProcessGroup({ rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: port, timeoutMs: 1000 }),
      new RegExp(`c10d rank 0/2 \\(gloo, master 127\\.0\\.0\\.1:${port}\\): cannot host the rendezvous store on 127\\.0\\.0\\.1:${port}`));
  } finally {
    busy.close();
  }
  const t0 = performance.now();
  const nobody = await freePort();
  assert.throws(() => new ProcessGroup({ rank: 1, worldSize: 2, masterAddr: '127.0.0.1', masterPort: nobody, timeoutMs: 1000 }),
    new RegExp(`c10d rank 1/2 .*cannot join the rendezvous store at 127\\.0\\.0\\.1:${nobody}`));
  assert.ok(performance.now() - t0 < 5000);
  assert.throws(() => new ProcessGroup({ rank: 2, worldSize: 2, masterAddr: '127.0.0.1', masterPort: nobody }), /rank must lie in 0\.\.1/);
  assert.throws(() => new ProcessGroup({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: nobody, backend: 'mpi' as 'gloo' }), /backend mpi is not in this build/);
});

test('shards: disjoint across ranks and micro-batches, covering the epoch; one process with W·B sees their union', () => {
  const n = 96, B = 4;
  for (const [W, A] of [[2, 1], [3, 2], [1, 1]] as const) {
    const samplers = Array.from({ length: W }, (_, r) => new ShardSampler({ n, batchSize: B, seed: 7, rank: r, worldSize: W, accumulate: A }));
    const steps = samplers[0]!.stepsPerEpoch;
    assert.equal(steps, Math.floor(n / (W * A * B)));
    for (const epoch of [0, 1]) {
      const seen: number[] = [];
      for (let s = epoch * steps; s < (epoch + 1) * steps; s++) for (const smp of samplers) for (let m = 0; m < A; m++) seen.push(...smp.indices(s, m));
      assert.equal(new Set(seen).size, seen.length, `W=${W} A=${A}: a grid drawn twice in epoch ${epoch}`);
      assert.equal(seen.length, steps * W * A * B);
      if (n % (W * A * B) === 0) assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    }
    // epochs are shuffled differently
    assert.notDeepEqual([...samplers[0]!.indices(0)], [...samplers[0]!.indices(steps)]);
  }
  const one = new ShardSampler({ n, batchSize: 2 * B, seed: 7 });
  const two = [0, 1].map((r) => new ShardSampler({ n, batchSize: B, seed: 7, rank: r, worldSize: 2 }));
  for (const s of [0, 5, 13]) assert.deepEqual([...one.indices(s)], [...two[0]!.indices(s), ...two[1]!.indices(s)]);
  assert.throws(() => new ShardSampler({ n: 10, batchSize: 4, seed: 0, worldSize: 3 }), /10 examples are fewer than one step's 12/);
  assert.throws(() => new ShardSampler({ n: 10, batchSize: 4, seed: 0, rank: 2, worldSize: 2 }), /rank must lie in 0\.\.1/);
});

test('torchrun environment, rank seeds and gradient buckets', () => {
  assert.equal(launchEnv({}), undefined);
  assert.deepEqual(launchEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '1234' }),
    { rank: 3, worldSize: 4, localRank: 1, masterAddr: '10.0.0.1', masterPort: 1234 });
  assert.deepEqual(launchEnv({ WORLD_SIZE: '2', RANK: '1' }), { rank: 1, worldSize: 2, localRank: 1, masterAddr: '127.0.0.1', masterPort: 29500 });
  assert.throws(() => launchEnv({ WORLD_SIZE: '2', RANK: '2' }), /RANK=2 is not below WORLD_SIZE=2/);
  assert.throws(() => launchEnv({ WORLD_SIZE: 'x', RANK: '0' }), /WORLD_SIZE=x: expected an integer/);
  assert.equal(rankSeed(5, 0), 5);
  assert.equal(new Set([0, 1, 2, 3].map((r) => rankSeed(5, r))).size, 4);
  const ts = [tensor(new Float32Array(10)), tensor(new Float32Array(10)), tensor(new Float64Array(3)), tensor(new Float32Array(100)), tensor(new Float32Array(1))];
  assert.deepEqual(buckets(ts, 80).map((b) => b.length), [2, 1, 1, 1]);
  assert.deepEqual(buckets(ts).map((b) => b.length), [2, 1, 2]);
});
