/**
 * taming's VectorQuantizer2 (taming/modules/vqvae/quantize.py):
 *
 * - code of each latent vector z = argmin over codebook rows e of ‖z‖² + ‖e‖² − 2 z·e (first minimum);
 * - straight-through estimator: the output is z + sg[e − z], so gradients pass to z unchanged;
 * - loss: legacy mse(sg[e], z) + β·mse(e, sg[z]) (β on the codebook term), or the corrected
 *   β·mse(sg[e], z) + mse(e, sg[z]) (β on the commitment term);
 * - remap (codebook shrinking): with a sorted `used` list, code used[i] is reported as index i and a
 *   code outside the list as `unknownIndex`: a random index, one extra id (len(used)), or a fixed id.
 *   Decoding maps i → used[i]; the extra id decodes to used[0].
 */
import { Tensor, autocast, embedding, where, randint } from '../torch/index.js';
import { Module, Embedding, init } from '../nn/index.js';
import type { UnknownIndex } from './config.js';

export interface QuantizerOutput {
  /** [B, C, h, w] straight-through quantized latent. */
  zq: Tensor;
  /** Scalar codebook + commitment loss. */
  loss: Tensor;
  /** Reported indices (remapped when a `used` list is installed): [B, h, w] with saneIndexShape, else taming's flat layout. */
  indices: Tensor;
  /** [B, h, w] raw codebook rows, before any remap (for usage statistics and shrinking). */
  codes: Tensor;
}

export class VectorQuantizer extends Module {
  readonly embedding: Embedding;
  /** Sorted original codes kept by codebook shrinking (int64 buffer `used`); undefined without remap. */
  used?: Tensor;

  constructor(
    readonly nE: number,
    readonly eDim: number,
    readonly beta: number,
    readonly unknownIndex: UnknownIndex = 'random',
    readonly saneIndexShape = false,
    readonly legacy = true,
  ) {
    super();
    this.embedding = this.module('embedding', new Embedding(nE, eDim));
    init.uniform_(this.embedding.weight, -1 / nE, 1 / nE);
  }

  /** Installs (or replaces) the `used` list; indices then live in [0, reEmbed). */
  setUsed(used: Tensor): void {
    if (used.ndim !== 1 || used.numel === 0) throw new Error(`quantizer: used must be a non-empty 1-d list of codes, got [${used.shape}]`);
    const u = used.long();
    this.used = this.used ? this.setBuffer('used', u) : this.buffer('used', u);
  }

  /** Number of distinct indices the quantizer reports: K, or len(used) (+1 with the 'extra' id). */
  get reEmbed(): number {
    if (!this.used) return this.nE;
    return this.used.numel + (this.unknownIndex === 'extra' ? 1 : 0);
  }

  /** z [B, C, h, w] → straight-through z_q, loss, indices; always in float32 (nearest codes must not round). */
  forward(z: Tensor): QuantizerOutput {
    return autocast(() => this.quantize(z.float()), { enabled: false });
  }

  private quantize(z: Tensor): QuantizerOutput {
    const [b, , h, w] = z.shape as [number, number, number, number];
    const zhwc = z.permute(0, 2, 3, 1).contiguous(); // [B, h, w, C]
    const flat = zhwc.view(-1, this.eDim); // [N, C]
    const e = this.embedding.weight; // [K, C]
    const d = flat.square().sum(1, true).add(e.square().sum(1)).sub(flat.mm(e.transpose(0, 1)).mul(2)); // [N, K]
    const codes = d.argmin(1); // [N]
    const eq = embedding(e, codes).view(...zhwc.shape); // [B, h, w, C]
    const commitment = eq.detach().sub(zhwc).square().mean();
    const codebook = eq.sub(zhwc.detach()).square().mean();
    const loss = this.legacy ? commitment.add(codebook.mul(this.beta)) : commitment.mul(this.beta).add(codebook);
    const zq = zhwc.add(eq.sub(zhwc).detach()).permute(0, 3, 1, 2).contiguous();
    let indices = codes;
    if (this.used) indices = this.remapToUsed(codes.view(b, -1)).view(-1, 1);
    if (this.saneIndexShape) indices = indices.view(b, h, w);
    return { zq, loss, indices, codes: codes.view(b, h, w) };
  }

  /** Original codes [B, ...] → positions in `used` (unknown codes → unknownIndex). */
  remapToUsed(codes: Tensor): Tensor {
    const used = this.requireUsed();
    const match = codes.unsqueeze(-1).eq(used).long(); // [..., len(used)]
    const found = match.argmax(-1);
    const unknown = match.sum(-1).lt(1);
    const u = this.unknownIndex;
    const fill = u === 'random' ? randint(0, this.reEmbed, codes.shape) : u === 'extra' ? used.numel : u;
    return where(unknown, fill, found);
  }

  /** Indices in [0, reEmbed) → original codes; the 'extra' id maps to used[0]. */
  unmapToAll(indices: Tensor): Tensor {
    const used = this.requireUsed();
    const n = used.numel;
    if (this.reEmbed > n) indices = where(indices.ge(n), 0, indices);
    return used.index([indices]);
  }

  /** Indices [B, h, w] (remapped when a `used` list is installed) → z_q [B, C, h, w]. */
  getCodebookEntry(indices: Tensor): Tensor {
    const codes = this.used ? this.unmapToAll(indices) : indices;
    return embedding(this.embedding.weight, codes).permute(0, 3, 1, 2).contiguous();
  }

  private requireUsed(): Tensor {
    if (!this.used) throw new Error('quantizer: no used-code list installed (shrink the codebook first)');
    return this.used;
  }
}
