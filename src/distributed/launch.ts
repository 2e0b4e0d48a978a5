/**
 * Starts this node's ranks the way `torchrun --nproc-per-node N --nnodes M --node-rank R` does: one
 * child process per local rank, with torchrun's environment (RANK = R·N + local rank, WORLD_SIZE =
 * M·N, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and the node's cores split between
 * them (IMAGEBART_THREADS / IMAGEBART_BLAS_THREADS unless the user set them). Every line a rank
 * prints comes out prefixed with `[rank r]`. When one rank fails, the launcher stops the others
 * (SIGTERM, then SIGKILL after `graceMs`) and reports which rank failed and its last line; ranks on
 * other nodes see their peers' sockets close and fail in turn. A restart resumes from the checkpoint.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { availableParallelism } from 'node:os';

export interface LaunchOptions {
  /** The program and arguments each rank runs (e.g. process.execPath and a script). */
  command: string;
  args: readonly string[];
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  env?: NodeJS.ProcessEnv;
  /** Where prefixed output goes (default: stderr). */
  write?: (line: string) => void;
  /** Between SIGTERM and SIGKILL of the surviving ranks (default 5 s). */
  graceMs?: number;
}

export interface LaunchResult {
  /** 0 when every rank finished cleanly. */
  code: number;
  /** The first rank that failed, its exit and last line of output. */
  failed?: { rank: number; exit: string; lastLine?: string };
}

export async function launchRanks(o: LaunchOptions): Promise<LaunchResult> {
  const N = o.nprocPerNode, M = o.nnodes ?? 1, node = o.nodeRank ?? 0;
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`nproc-per-node must be a positive integer, got ${N}`);
  if (!Number.isInteger(M) || M < 1) throw new RangeError(`nnodes must be a positive integer, got ${M}`);
  if (!Number.isInteger(node) || node < 0 || node >= M) throw new RangeError(`node-rank must lie in 0..${M - 1}, got ${node}`);
  const write = o.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const base = o.env ?? process.env;
  const cores = Math.max(1, Math.floor(availableParallelism() / N));
  const children = new Map<number, ChildProcess>();
  const last = new Map<number, string>();
  let failed: LaunchResult['failed'];
  let killTimer: NodeJS.Timeout | undefined;
  const stopAll = (signal: NodeJS.Signals) => {
    for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    killTimer ??= setTimeout(() => { for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL'); }, o.graceMs ?? 5000);
  };
  const onSignal = (signal: NodeJS.Signals) => stopAll(signal);
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    const exits = Array.from({ length: N }, (_, local) => {
      const rank = node * N + local;
      const child = spawn(o.command, [...o.args], {
        env: {
          IMAGEBART_THREADS: String(cores), IMAGEBART_BLAS_THREADS: String(cores), ...base,
          RANK: String(rank), WORLD_SIZE: String(N * M), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(N),
          MASTER_ADDR: o.masterAddr ?? '127.0.0.1', MASTER_PORT: String(o.masterPort ?? 29500),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.set(rank, child);
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => {
          if (line.trim()) last.set(rank, line);
          write(`[rank ${rank}] ${line}`);
        });
      }
      return new Promise<void>((done) => {
        child.on('error', (e) => { last.set(rank, e.message); });
        child.on('close', (code, signal) => {
          if ((code !== 0 || signal) && !failed) {
            failed = { rank, exit: signal ? `signal ${signal}` : `exit code ${code}`, lastLine: last.get(rank) };
            write(`[launch] rank ${rank} failed (${failed.exit})${failed.lastLine ? `: ${failed.lastLine}` : ''}; stopping the other ranks`);
            stopAll('SIGTERM');
          }
          done();
        });
      });
    });
    await Promise.all(exits);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
  return failed ? { code: 1, failed } : { code: 0 };
}
