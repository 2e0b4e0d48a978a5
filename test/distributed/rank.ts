/**
 * One rank of the distributed tests (started with torchrun's environment): `node rank.js MODE OUT`.
 *   step        collectives on lists of tensors, then tinyStep on this rank's half of the batch (rank 1
 *               initialised differently: the broadcast must fix it) through a Reducer of small buckets;
 *               results to OUT (safetensors); rank 0 prints the Reducer's buckets and last timeline
 *   accumulate  tinyStep on this rank's half in two micro-batches (the first not synced); results to OUT
 *   vqgan       tinyVQGANStep of batch 8 per rank, discriminator off (OUT) and on (OUT with .disc)
 *   die         after one all-reduce, rank 1 exits; rank 0's next all-reduce must fail
 *   hang        rank 1 joins, then sleeps without taking part; rank 0's all-reduce must time out
 *   die-backward  after one synced backward through a Reducer, rank 1 exits; rank 0's next synced
 *               backward must fail
 * Rank 0 prints one JSON line: { error, ms } for die/hang/die-backward.
 */
import { tensor, saveSafetensors } from '../../src/torch/index.js';
import { ProcessGroup, DataParallel, Reducer, launchEnv, type GradientSync } from '../../src/distributed/index.js';
import { tinyScale, tinyStep, tinyVQGANStep, BATCH } from './fixture.js';
import { dirname } from 'node:path';

const [mode, out] = process.argv.slice(2);
const env = launchEnv()!;
const group = new ProcessGroup({ ...env, timeoutMs: Number(process.env.TEST_TIMEOUT_MS ?? 20000) });
const r = group.rank, W = group.worldSize;

if (mode === 'step') {
  const a = tensor([r + 1, 10 * (r + 1)]), b = tensor([[r, -r], [2 * r, 1]]), c = tensor([r]), d = tensor([r + 1, r + 2, 5]);
  group.allReduce([a, b], 'sum');
  group.allReduce([c], 'mean');
  const m = tensor([r, 5 - 3 * r]);
  group.allReduce([m], 'max');
  group.broadcast([d], 1);
  group.barrier();
  const half = BATCH / W;
  let seen: { buckets: Reducer['buckets']; timeline: ReturnType<Reducer['lastBackward']> } | undefined;
  const inspect = (s: GradientSync) => { if (s instanceof Reducer) seen = { buckets: s.buckets, timeline: s.lastBackward() }; };
  const res = tinyStep(r * half, half, { initSeed: r === 0 ? 0 : 99, dist: new DataParallel(group, { bucketBytes: 4096, firstBucketBytes: 4096 }), inspect });
  saveSafetensors(out!, { ...res, 'c.sum_a': a, 'c.sum_b': b, 'c.mean_c': c, 'c.max_m': m, 'c.bcast_d': d });
  if (r === 0) console.log(JSON.stringify(seen));
} else if (mode === 'accumulate') {
  const half = BATCH / W;
  saveSafetensors(out!, tinyStep(r * half, half, { dist: new DataParallel(group), micro: 2 }));
} else if (mode === 'vqgan') {
  const dist = new DataParallel(group);
  saveSafetensors(out!, tinyVQGANStep(dirname(out!), { batchSize: 8, discStart: 1_000_000, dist }));
  saveSafetensors(`${out!}.disc`, tinyVQGANStep(dirname(out!), { batchSize: 8, discStart: 0, dist }));
} else if (mode === 'die-backward') {
  const dist = new DataParallel(group);
  const { model, loss } = tinyScale({ dist });
  const sync = dist.gradientSync(model.namedParameters(), { findUnusedParameters: true });
  sync.backward(loss(r * 4, 4));
  if (r === 1) process.exit(3);
  const t0 = performance.now();
  try {
    sync.backward(loss(0, 4));
    console.log(JSON.stringify({ error: null, ms: performance.now() - t0 }));
  } catch (e) {
    console.log(JSON.stringify({ error: (e as Error).message, ms: performance.now() - t0 }));
  }
  process.exit(0);
} else if (mode === 'die' || mode === 'hang') {
  const x = tensor([1, 2, 3]);
  group.allReduce([x]);
  if (r === 1) {
    if (mode === 'die') process.exit(3);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2 * group.timeoutMs);
    process.exit(0);
  }
  const t0 = performance.now();
  try {
    group.allReduce([x]);
    console.log(JSON.stringify({ error: null, ms: performance.now() - t0 }));
  } catch (e) {
    console.log(JSON.stringify({ error: (e as Error).message, ms: performance.now() - t0 }));
  }
  process.exit(0);
}
group.destroy();
