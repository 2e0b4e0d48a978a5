/**
 * A c10d process group: PyTorch's own distributed engine (the one `torch.distributed` and `torchrun`
 * use) through the binding. Rank 0 hosts a TCPStore on MASTER_ADDR:MASTER_PORT; every rank joins it
 * and builds a Gloo (CPU) or NCCL (CUDA builds) process group over it.
 *
 * Every collective is synchronous and bounded by the group's timeout: a peer that died (its sockets
 * close at once), a peer that hangs (the timeout), a port already taken, all throw an Error naming
 * this rank, the world size and the master address. A rank that waits for another one's validation
 * or checkpoint waits at its next collective, so the timeout must exceed those (default 30 minutes,
 * as torch.distributed's).
 */
import { native, type NativeGroup } from '../torch/native.js';
import type { Tensor } from '../torch/index.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';

export interface GroupOptions {
  rank: number;
  worldSize: number;
  /** Address of rank 0, which hosts the rendezvous store (MASTER_ADDR). */
  masterAddr: string;
  /** Its port (MASTER_PORT). */
  masterPort: number;
  /** Bound on every blocking call, rendezvous included (default 30 minutes). */
  timeoutMs?: number;
  /** Default: gloo. */
  backend?: Backend;
}

export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

/** The c10d backends this build of the binding has (none when built without c10d's headers). */
export const availableBackends = (): Backend[] => native.c10dBackends as Backend[];

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: Backend;
  readonly timeoutMs: number;
  /** host:port of the rendezvous store. */
  readonly master: string;
  private handle?: NativeGroup;

  /** Joins the group: returns once every rank has (or throws after the timeout). */
  constructor(o: GroupOptions) {
    const backend = o.backend ?? 'gloo';
    if (!availableBackends().includes(backend)) {
      throw new Error(`c10d backend ${backend} is not in this build of the binding (it has: ${availableBackends().join(', ') || 'none'}); ` +
        'rebuild it with c10d headers (Debian: apt-get install libgloo-dev, then npm run setup)');
    }
    if (!Number.isInteger(o.worldSize) || o.worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${o.worldSize}`);
    if (!Number.isInteger(o.rank) || o.rank < 0 || o.rank >= o.worldSize) throw new RangeError(`rank must lie in 0..${o.worldSize - 1}, got ${o.rank}`);
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.backend = backend;
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.master = `${o.masterAddr}:${o.masterPort}`;
    this.handle = native.createGroup!({ rank: o.rank, worldSize: o.worldSize, host: o.masterAddr, port: o.masterPort, timeoutMs: this.timeoutMs, backend });
  }

  get isMain(): boolean { return this.rank === 0; }

  /** Reduces each tensor in place across the ranks (contiguous tensors; `mean` divides the sum by the world size). */
  allReduce(tensors: readonly Tensor[], op: ReduceOp = 'sum'): void {
    native.allReduce!(this.nativeHandle(), tensors.map((t) => t.h), op);
  }

  /** Overwrites each tensor in place with rank `root`'s. */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    native.broadcast!(this.nativeHandle(), tensors.map((t) => t.h), root);
  }

  /** Returns once every rank has called it. */
  barrier(): void {
    native.barrier!(this.nativeHandle());
  }

  /** Leaves the group (rank 0's store stops serving once the group's reducers are disposed too); later calls throw. */
  destroy(): void {
    if (this.handle) native.destroyGroup!(this.handle);
    this.handle = undefined;
  }

  /** The binding's handle of the group (throws once destroyed). */
  nativeHandle(): NativeGroup {
    if (!this.handle) throw new Error(`c10d rank ${this.rank}/${this.worldSize} (master ${this.master}): the process group was destroyed`);
    return this.handle;
  }
}

/** torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. */
export interface LaunchEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
}

/** The torchrun environment when WORLD_SIZE is set (undefined otherwise); throws on a malformed one. */
export function launchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv | undefined {
  if (env.WORLD_SIZE === undefined) return undefined;
  const int = (name: string, min: number, fallback?: number): number => {
    const raw = env[name];
    if (raw === undefined && fallback !== undefined) return fallback;
    const n = Number(raw);
    if (raw === undefined || !Number.isInteger(n) || n < min) throw new Error(`${name}=${raw ?? ''}: expected an integer ≥ ${min} (torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)`);
    return n;
  };
  const worldSize = int('WORLD_SIZE', 1);
  const rank = int('RANK', 0);
  if (rank >= worldSize) throw new Error(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const masterPort = int('MASTER_PORT', 1, 29500);
  if (masterPort > 65535) throw new Error(`MASTER_PORT=${masterPort} is not a port`);
  return { rank, worldSize, localRank: int('LOCAL_RANK', 0, rank), masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort };
}

/** A seed of its own for each rank (rank 0 keeps `seed`), so ranks draw different noise. */
export const rankSeed = (seed: number, rank: number): number => (rank === 0 ? seed : (seed + rank * 0x9e3779b1) % 2 ** 52);
