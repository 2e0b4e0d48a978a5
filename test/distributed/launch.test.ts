/**
 * Launching ranks and training a scale data-parallel end to end: the launcher's environment, output
 * prefixes and failure handling; a killed rank stopping the run with a clear message and a restart
 * resuming it; and two hosts — two network namespaces joined by a veth pair, created here — training
 * a tiny scale together.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, readSafetensorsHeader } from '../../src/torch/index.js';
import { writeTokenFile } from '../../src/chain/index.js';
import { availableBackends, launchRanks } from '../../src/distributed/index.js';
import { freePort, run, rankEnv, CLI } from './fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'imagebart-launch-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const noC10d = availableBackends().includes('gloo') ? false : 'the binding was built without c10d (install libgloo-dev and run npm run setup)';

const tokens = join(dir, 'tokens.safetensors');
{
  const K = 8, M = 200, grid = new BigInt64Array(M * 16);
  let s = 1;
  for (let i = 0; i < grid.length; i++) grid[i] = BigInt((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % K);
  writeTokenFile(tokens, tensor(grid, [M, 4, 4]), { K });
}
/** `chain train` of a tiny scale 1 (T = 2) into `out`. */
const trainArgs = (out: string, steps: number, evalEvery: number): string[] => [CLI, 'chain', 'train', '--tokens', tokens, '--out', out, '--scale', '1', '--T', '2',
  '--width', '32', '--heads', '2', '--enc-depth', '1', '--dec-depth', '1', '--steps', String(steps), '--batch-size', '4', '--eval-every', String(evalEvery),
  '--log-every', '1', '--val-size', '16', '--dist-timeout', '10'];
const checkpointStep = (out: string): number => Number(readSafetensorsHeader(join(out, 'scale1', 'checkpoint.safetensors')).metadata.step);

test('the launcher: torchrun\'s environment per rank, output prefixed by rank, one failing rank stops the others', async () => {
  // rank 3 fails only once rank 2 has printed (it leaves a marker file), so rank 2's line is there however loaded the machine is
  const marker = join(dir, 'rank2-printed');
  const script = `const fs = require('node:fs');
    console.log('env', process.env.RANK, process.env.WORLD_SIZE, process.env.LOCAL_RANK, process.env.MASTER_ADDR, process.env.MASTER_PORT);
    if (process.env.RANK === '3') {
      const fail = () => { console.error('boom: disk full'); process.exit(4); };
      const wait = setInterval(() => { if (fs.existsSync(${JSON.stringify(marker)})) { clearInterval(wait); fail(); } }, 10);
    } else { fs.writeFileSync(${JSON.stringify(marker)}, ''); setTimeout(() => {}, 60000); }`;
  const lines: string[] = [];
  const t0 = performance.now();
  const r = await launchRanks({ command: process.execPath, args: ['-e', script], nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.1.2.3', masterPort: 4567, graceMs: 1000, write: (l) => lines.push(l) });
  assert.ok(performance.now() - t0 < 30000, 'the other rank was not stopped');
  assert.equal(r.code, 1);
  assert.deepEqual(r.failed, { rank: 3, exit: 'exit code 4', lastLine: 'boom: disk full' });
  assert.ok(lines.includes('[rank 2] env 2 4 0 10.1.2.3 4567'), lines.join('\n'));
  assert.ok(lines.includes('[rank 3] env 3 4 1 10.1.2.3 4567'), lines.join('\n'));
  assert.ok(lines.some((l) => /^\[launch\] rank 3 failed \(exit code 4\): boom: disk full; stopping the other ranks$/.test(l)), lines.join('\n'));
  const ok = await launchRanks({ command: process.execPath, args: ['-e', 'console.log("hi", process.env.RANK)'], nprocPerNode: 2, write: () => {} });
  assert.deepEqual(ok, { code: 0 });
  await assert.rejects(launchRanks({ command: process.execPath, args: [], nprocPerNode: 2, nnodes: 2, nodeRank: 2 }), /node-rank must lie in 0\.\.1/);
});

test('killing one rank stops the other with a clear message within the timeout; a restart resumes from the checkpoint', { skip: noC10d }, async () => {
  const out = join(dir, 'killed');
  const port = await freePort();
  let rank1: ReturnType<typeof run> | undefined;
  let killedAt = 0;
  const rank0 = run(process.execPath, trainArgs(out, 1000, 2), rankEnv(0, 2, port), 240_000, (line) => {
    if (!killedAt && /step \d+ val nll/.test(line)) {
      const poll = setInterval(() => {
        if (!existsSync(join(out, 'scale1', 'checkpoint.safetensors'))) return;
        clearInterval(poll);
        killedAt = performance.now();
        rank1!.kill('SIGKILL');
      }, 20);
    }
  });
  rank1 = run(process.execPath, trainArgs(out, 1000, 2), rankEnv(1, 2, port));
  const [e0, e1] = await Promise.all([rank0, rank1]);
  assert.equal(e1.signal, 'SIGKILL', `rank 1 was not killed:\n${e1.out}`);
  assert.equal(e0.code, 1, e0.out);
  assert.match(e0.out, /imagebart chain train: c10d rank 0\/2 \(gloo, master 127\.0\.0\.1:\d+\): .*a rank exited or stopped responding/);
  assert.ok(e0.end - killedAt < 10_000 + 5000, `rank 0 took ${e0.end - killedAt} ms to stop, the timeout is 10 s`);
  const saved = checkpointStep(out);
  assert.ok(saved >= 2);

  const restart = await run(process.execPath, [...trainArgs(out, saved + 2, 2), '--nproc-per-node', '2', '--master-port', String(await freePort())], {});
  assert.equal(restart.code, 0, restart.out);
  assert.match(restart.out, new RegExp(`\\[rank 0\\] scale 1: resumed from .* at step ${saved}`));
  assert.match(restart.out, new RegExp(`\\[rank 0\\] scale 1: done at step ${saved + 2}`));
  assert.doesNotMatch(restart.out, /\[rank 1\] scale 1 step/, 'rank 1 logs nothing of its own');
  assert.equal(checkpointStep(out), saved + 2);
});

/** Two network namespaces joined by a veth pair, 10.231.0.1/24 and 10.231.0.2/24; undefined with the reason when they cannot be made. */
function twoHosts(): { ns: [string, string]; addr: [string, string]; down: () => void } | string {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (spawnSync('ip', ['-V']).error) return 'the ip command (iproute2) is not installed';
  const tag = `ib${process.pid % 100000}`;
  const ns: [string, string] = [`${tag}a`, `${tag}b`];
  const addr: [string, string] = ['10.231.0.1', '10.231.0.2'];
  const down = () => { for (const n of ns) spawnSync('ip', ['netns', 'del', n]); };
  const steps = [
    ['netns', 'add', ns[0]], ['netns', 'add', ns[1]],
    ['link', 'add', `${tag}va`, 'netns', ns[0], 'type', 'veth', 'peer', 'name', `${tag}vb`, 'netns', ns[1]],
    ['-n', ns[0], 'addr', 'add', `${addr[0]}/24`, 'dev', `${tag}va`], ['-n', ns[1], 'addr', 'add', `${addr[1]}/24`, 'dev', `${tag}vb`],
    ['-n', ns[0], 'link', 'set', `${tag}va`, 'up'], ['-n', ns[1], 'link', 'set', `${tag}vb`, 'up'],
    ['-n', ns[0], 'link', 'set', 'lo', 'up'], ['-n', ns[1], 'link', 'set', 'lo', 'up'],
  ];
  for (const s of steps) {
    const r = spawnSync('ip', s, { encoding: 'utf8' });
    if (r.status !== 0) {
      down();
      return `cannot create network namespaces here (ip ${s.join(' ')}: ${(r.stderr || r.error?.message || '').trim()})`;
    }
  }
  return { ns, addr, down };
}

const hosts = noC10d ? noC10d : twoHosts();
process.on('exit', () => { if (typeof hosts !== 'string') hosts.down(); });

test('two hosts: rank 0 and rank 1 in two network namespaces joined by a veth pair train a tiny scale', { skip: typeof hosts === 'string' ? hosts : false }, async () => {
  if (typeof hosts === 'string') return;
  const out = join(dir, 'two-hosts');
  try {
    const ranks = hosts.ns.map((ns, r) => run('ip', ['netns', 'exec', ns, process.execPath, ...trainArgs(out, 3, 3)], rankEnv(r, 2, 29500, hosts.addr[0])));
    const [e0, e1] = await Promise.all(ranks);
    assert.equal(e0.code, 0, e0.out);
    assert.equal(e1.code, 0, e1.out);
    assert.match(e0.out, /data-parallel over 2 ranks \(gloo, master 10\.231\.0\.1:29500\)/);
    assert.match(e0.out, /scale 1: done at step 3/);
    assert.equal(checkpointStep(out), 3);
  } finally {
    hosts.down();
  }
});
