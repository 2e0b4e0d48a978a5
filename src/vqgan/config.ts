/**
 * VQGAN configuration: taming's `ddconfig` and `VQModel` arguments, in camelCase, as plain objects
 * that are stored as JSON in every checkpoint.
 */

/** The autoencoder's shape (taming `ddconfig`). */
export interface DDConfig {
  /** Input/output side length in pixels. */
  resolution: number;
  inChannels: number;
  outCh: number;
  /** Base width; level i has ch·chMult[i] channels. */
  ch: number;
  /** One entry per resolution level; the latent is resolution / 2^(levels−1) on a side. */
  chMult: number[];
  numResBlocks: number;
  /** Resolutions (side lengths) at which AttnBlocks follow the ResnetBlocks. */
  attnResolutions: number[];
  zChannels: number;
  /** Encoder outputs 2·zChannels (a VAE's mean and log-variance); false for every VQGAN. */
  doubleZ: boolean;
  dropout: number;
  /**
   * GroupNorm groups; taming always uses 32. Not a taming option: an extension so that tiny test
   * models narrower than 32 channels can be built. Official weights need 32.
   */
  normGroups?: number;
}

/** How the quantizer maps codes outside the `used` list after codebook shrinking (taming `unknown_index`). */
export type UnknownIndex = 'random' | 'extra' | number;

export interface VQModelConfig {
  ddconfig: DDConfig;
  /** Codebook size K. */
  nEmbed: number;
  /** Code vector width. */
  embedDim: number;
  /** Commitment weight β (taming: 0.25). */
  beta: number;
  /** true: taming's legacy loss, mse(sg[e], z) + β·mse(e, sg[z]) (β on the codebook term); false: β on the commitment term. */
  legacy: boolean;
  /** true: indices come back as [B, h, w]; false: taming's flat layout. */
  saneIndexShape: boolean;
  /** Used only once a `used` list is installed (codebook shrinking); the list itself lives in the weights (`quantize.used`). */
  unknownIndex: UnknownIndex;
}

export const DEFAULT_VQ: Omit<VQModelConfig, 'ddconfig' | 'nEmbed' | 'embedDim'> = {
  beta: 0.25,
  legacy: true,
  saneIndexShape: true,
  unknownIndex: 'random',
};

/** Side length of the token grid. */
export const latentSize = (dd: DDConfig): number => dd.resolution / 2 ** (dd.chMult.length - 1);

/** Checks a configuration and names the first problem. */
export function validateConfig(c: VQModelConfig): void {
  const dd = c.ddconfig;
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  for (const k of ['resolution', 'inChannels', 'outCh', 'ch', 'numResBlocks', 'zChannels'] as const) {
    if (!posInt(dd[k])) throw new Error(`VQGAN config: ddconfig.${k} must be a positive integer, got ${JSON.stringify(dd[k])}`);
  }
  if (!Array.isArray(dd.chMult) || dd.chMult.length === 0 || !dd.chMult.every(posInt)) {
    throw new Error(`VQGAN config: ddconfig.chMult must be a non-empty list of positive integers, got ${JSON.stringify(dd.chMult)}`);
  }
  if (!Array.isArray(dd.attnResolutions) || !dd.attnResolutions.every(posInt)) {
    throw new Error(`VQGAN config: ddconfig.attnResolutions must be a list of resolutions, got ${JSON.stringify(dd.attnResolutions)}`);
  }
  if (typeof dd.doubleZ !== 'boolean') throw new Error(`VQGAN config: ddconfig.doubleZ must be true or false`);
  if (!(dd.dropout >= 0 && dd.dropout < 1)) throw new Error(`VQGAN config: ddconfig.dropout must be in [0, 1), got ${JSON.stringify(dd.dropout)}`);
  if (!Number.isInteger(latentSize(dd))) {
    throw new Error(`VQGAN config: resolution ${dd.resolution} is not divisible by 2^${dd.chMult.length - 1} (${dd.chMult.length} levels)`);
  }
  const groups = dd.normGroups ?? 32;
  for (const w of [dd.ch, ...dd.chMult.map((m) => dd.ch * m)]) {
    if (w % groups !== 0) throw new Error(`VQGAN config: width ${w} does not split into ${groups} GroupNorm groups (set ddconfig.normGroups)`);
  }
  if (!posInt(c.nEmbed) || !posInt(c.embedDim)) throw new Error(`VQGAN config: nEmbed and embedDim must be positive integers`);
  const u = c.unknownIndex;
  if (!(u === 'random' || u === 'extra' || (Number.isInteger(u) && u >= 0))) {
    throw new Error(`VQGAN config: unknownIndex must be 'random', 'extra' or a non-negative integer, got ${JSON.stringify(u)}`);
  }
}

/** A full config from partial settings (ddconfig is required; other fields default as in taming). */
export function makeConfig(c: Pick<VQModelConfig, 'ddconfig' | 'nEmbed' | 'embedDim'> & Partial<VQModelConfig>): VQModelConfig {
  const full = { ...DEFAULT_VQ, ...c };
  validateConfig(full);
  return full;
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase());

/** taming's snake_case ddconfig (from a YAML/JSON config) → DDConfig. */
export function ddconfigFromTaming(dd: Record<string, unknown>): DDConfig {
  const out: Record<string, unknown> = { doubleZ: false, dropout: 0 };
  for (const [k, v] of Object.entries(dd)) out[camel(k)] = v;
  return out as unknown as DDConfig;
}
