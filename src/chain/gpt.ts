/**
 * The decoder-only reverse model of the last scale T (the official minGPT `GPT`, same state-dict keys).
 * x_T is pure noise, so it models x_{T-1} from the conditioning alone:
 *
 * - input `[t, (cond…), x_{T-1}[:-1]]` in one embedding table (input vocabulary ≥ K), plus a learned
 *   position table `pos_emb` [1, blockSize, nEmbd];
 * - nLayer blocks x + attn(ln1(x)), x + mlp(ln2(x)); attention over nHead heads of nEmbd/nHead, with
 *   biased key/query/value/proj, scale 1/√headDim and masked scores set to -inf;
 * - the mask is a buffer saved in the state dict: lower-triangular, with the top-left nUnmasked ×
 *   nUnmasked block all ones (the conditioning attends both ways). `nUnmasked` is its one source of
 *   truth: the uncached path reads the mask, the cached path the config, so `checkMasks` refuses a
 *   loaded mask that is not the one the config builds;
 * - mlp Linear(nEmbd, 4·nEmbd) → exact GELU → Linear; final LayerNorm; head without bias;
 * - initialisation as minGPT: Linear and Embedding weights N(0, 0.02), biases 0, pos_emb 0;
 * - a segmentation chain's GPT fuses a label-map token into every input position (layers.ts
 *   `MapFusion`, key `map_fusion.*`), aligned with what the position predicts: input position n of
 *   `[t, x_{T-1}[:-1]]` predicts x_{T-1}[n], so it carries the map token s_n of that grid position.
 *
 * `forwardWithPast` is the official cached path (`forward_with_past`): it applies **no mask**. Feed the
 * whole conditioning prefix in the first call (it then attends both ways, which matches training only
 * when nUnmasked ≥ its length), then one token per call.
 */
import { type Tensor, ones, zeros, tidy } from '../torch/index.js';
import { Module, ModuleList, Linear, LayerNorm, Embedding, Dropout, init, Sequential, GELU } from '../nn/index.js';
import { type KVCache, type KVSlot, MapFusion, splitHeads, mergeHeads, attend } from './layers.js';

export interface GPTConfig {
  /** Output classes (K). */
  vocabSize: number;
  /** Longest input. */
  blockSize: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Leading positions that attend both ways (default 0). */
  nUnmasked?: number;
  /** Input table size when it differs from vocabSize (scale and class ids). */
  inputVocabSize?: number;
  /** Label-map ids of a segmentation chain (its map is fused into every input position). */
  mapVocab?: number;
}

export class CausalSelfAttention extends Module {
  readonly key: Linear;
  readonly query: Linear;
  readonly value: Linear;
  readonly proj: Linear;
  /** [1, 1, blockSize, blockSize], 1 = may attend. */
  readonly mask: Tensor;
  private readonly nHead: number;

  constructor(cfg: GPTConfig) {
    super();
    const d = cfg.nEmbd;
    if (d % cfg.nHead !== 0) throw new Error(`GPT: nEmbd ${d} is not divisible by nHead ${cfg.nHead}`);
    this.key = this.module('key', new Linear(d, d));
    this.query = this.module('query', new Linear(d, d));
    this.value = this.module('value', new Linear(d, d));
    this.proj = this.module('proj', new Linear(d, d));
    this.nHead = cfg.nHead;
    this.mask = this.buffer('mask', gptMask(cfg.blockSize, cfg.nUnmasked ?? 0));
  }

  /** x [B, L, nEmbd]; with a cache slot: the official forward_with_past (append k, v; no mask). */
  forward(x: Tensor, cache?: KVSlot): Tensor {
    const L = x.size(1);
    let k = splitHeads(this.key.forward(x), this.nHead); // [B, h, L, headDim]
    let v = splitHeads(this.value.forward(x), this.nHead);
    const q = splitHeads(this.query.forward(x), this.nHead);
    let blocked: Tensor | undefined;
    if (cache) [k, v] = cache.append(k, v);
    else blocked = this.mask.narrow(2, 0, L).narrow(3, 0, L).eq(0);
    const y = attend(q, k, v, 1 / Math.sqrt(k.size(-1)), blocked);
    return this.proj.forward(mergeHeads(y));
  }
}

/** [1, 1, n, n]: lower-triangular ones, the top-left u × u block all ones. */
export function gptMask(n: number, u: number, device?: string): Tensor {
  const mask = ones([n, n], { device }).tril();
  if (u > 0) mask.narrow(0, 0, u).narrow(1, 0, u).fill_(1);
  return mask.view(1, 1, n, n);
}

/**
 * The u for which `mask` [1, 1, n, n] equals gptMask(n, u) — 0 for a plain causal mask (u = 0 and
 * u = 1 build the same one) — or undefined when it has another pattern.
 */
export function unmaskedOf(mask: Tensor): number | undefined {
  const n = mask.size(-1);
  return tidy(() => {
    const m = mask.reshape(n, n).ne(0);
    const past = ones([n, n], { device: mask.device }).triu(1).ne(0); // entries after the diagonal
    const seesLater = m.logicalAnd(past).any(1).toNumbers(); // row i attends to a later position
    const u = seesLater.lastIndexOf(1) + 2; // rows 0..u-2 of a u × u block see later positions
    const candidate = u === 1 ? 0 : u;
    return gptMask(n, candidate, mask.device).reshape(n, n).ne(0).eq(m).all().item() ? candidate : undefined;
  });
}

export class Block extends Module {
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly mlp: Sequential;

  constructor(cfg: GPTConfig) {
    super();
    const d = cfg.nEmbd;
    this.ln1 = this.module('ln1', new LayerNorm(d));
    this.ln2 = this.module('ln2', new LayerNorm(d));
    this.attn = this.module('attn', new CausalSelfAttention(cfg));
    this.mlp = this.module('mlp', new Sequential([new Linear(d, 4 * d), new GELU(), new Linear(4 * d, d), new Dropout(0)]));
  }

  forward(x: Tensor, cache?: KVSlot): Tensor {
    // Separate scopes free each half's intermediates once it is done (autograd keeps what it needs).
    x = tidy(() => x.add(this.attn.forward(this.ln1.forward(x), cache)));
    return tidy(() => x.add(this.mlp.forward(this.ln2.forward(x))));
  }
}

export class GPT extends Module {
  readonly tok_emb: Embedding;
  readonly pos_emb: Tensor;
  readonly blocks: ModuleList<Block>;
  readonly ln_f: LayerNorm;
  readonly head: Linear;
  readonly map_fusion?: MapFusion;

  constructor(readonly cfg: GPTConfig) {
    super();
    const d = cfg.nEmbd;
    this.tok_emb = this.module('tok_emb', new Embedding(cfg.inputVocabSize ?? cfg.vocabSize, d));
    if (cfg.mapVocab) this.map_fusion = this.module('map_fusion', new MapFusion(cfg.mapVocab, d));
    this.pos_emb = this.param('pos_emb', zeros([1, cfg.blockSize, d]));
    this.blocks = this.module('blocks', new ModuleList(Array.from({ length: cfg.nLayer }, () => new Block(cfg))));
    this.ln_f = this.module('ln_f', new LayerNorm(d));
    this.head = this.module('head', new Linear(d, cfg.vocabSize, false));
    for (const [, m] of this.namedModules()) {
      if (m instanceof Linear || m instanceof Embedding) init.normal_(m.weight, 0, 0.02);
      if (m instanceof Linear && m.bias) init.zeros_(m.bias);
    }
  }

  /**
   * Refuses masks that differ from the one nUnmasked builds (after loading a checkpoint), naming the
   * key under `prefix` and what the mask holds.
   */
  checkMasks(prefix = ''): void {
    const want = this.cfg.nUnmasked ?? 0;
    if (this.device === 'meta') return; // shapes only: no values to check
    this.blocks.items.forEach((b, l) => {
      const u = unmaskedOf(b.attn.mask);
      if (u !== undefined && Math.max(u, 1) === Math.max(want, 1)) return;
      const holds = u === undefined ? 'is not a causal mask with a bidirectional prefix' : `lets the first ${u} positions attend both ways`;
      throw new Error(`${prefix}blocks.${l}.attn.mask ${holds}, but the config's n_unmasked is ${want}: the cached and uncached decoders would disagree`);
    });
  }

  /**
   * idx [B, L] → logits [B, L, vocabSize]; with a cache, the unmasked cached path (see above). `map`
   * [B, L]: the label-map tokens of these L positions (segmentation chains).
   */
  forward(idx: Tensor, cache?: KVCache, map?: Tensor): Tensor {
    const offset = cache?.length ?? 0;
    const L = idx.size(1);
    if (offset + L > this.cfg.blockSize) throw new RangeError(`GPT: ${offset + L} positions exceed block size ${this.cfg.blockSize}`);
    if (!this.map_fusion !== !map) throw new Error(this.map_fusion ? 'this GPT is segmentation-conditional: it needs the label map\'s tokens' : 'this GPT takes no label map');
    let x = this.tok_emb.forward(idx); // [B, L, nEmbd]
    if (this.map_fusion && map) x = this.map_fusion.forward(x, map, 0);
    x = x.add(this.pos_emb.narrow(1, offset, L));
    this.blocks.items.forEach((block, l) => (x = block.forward(x, cache?.slot(l))));
    if (cache) cache.length += L;
    return this.head.forward(this.ln_f.forward(x));
  }
}
