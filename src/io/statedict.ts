/**
 * Splitting a Lightning state dict into its models, and the EMA naming of the official code.
 *
 * ImageBART scale checkpoints hold `first_stage_model.*` (the VQGAN), `transformer.*` (training
 * weights) and `transformer_ema.*`: taming/ImageBART's `LitEma` keeps one buffer per trainable
 * parameter, named as the parameter with every dot removed (`encoder.token_emb.weight` →
 * `encodertoken_embweight`), plus `decay` and `num_updates`. Dot-less names are mapped back by
 * matching against the model's own keys.
 */

/** LitEma's own buffers, not parameter shadows. */
const EMA_BOOKKEEPING = new Set(['decay', 'num_updates']);

/** Entries whose key starts with `prefix`, with the prefix removed. */
export function splitPrefix<T>(sd: ReadonlyMap<string, T>, prefix: string): Map<string, T> {
  return new Map([...sd].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}

/** Top-level key prefixes (`first_stage_model.`, `transformer.`, …) with their entry counts. */
export function prefixesOf(sd: ReadonlyMap<string, unknown>): Map<string, number> {
  const out = new Map<string, number>();
  for (const k of sd.keys()) {
    const dot = k.indexOf('.');
    const p = dot < 0 ? k : k.slice(0, dot + 1);
    out.set(p, (out.get(p) ?? 0) + 1);
  }
  return out;
}

/** The EMA prefix LitEma gets as an attribute next to a model: `transformer.` → `transformer_ema.`. */
export const emaPrefixFor = (prefix: string): string => `${prefix.replace(/\.$/, '')}_ema.`;

export interface EmaMapping<T> {
  /** Model key → EMA value, for each key whose dot-less name has an EMA entry. */
  weights: Map<string, T>;
  /** Model keys without an EMA entry (buffers, frozen parameters). */
  missing: string[];
  /** EMA names that match no model key (besides decay/num_updates). */
  unused: string[];
}

/** Maps LitEma's dot-less names back to `modelKeys`; two keys collapsing to one name is an error. */
export function emaToParameterNames<T>(ema: ReadonlyMap<string, T>, modelKeys: Iterable<string>): EmaMapping<T> {
  const byName = new Map<string, string>();
  for (const k of modelKeys) {
    const s = k.replace(/\./g, '');
    const other = byName.get(s);
    if (other !== undefined && other !== k) throw new Error(`EMA names are ambiguous: '${other}' and '${k}' both become '${s}' without dots`);
    byName.set(s, k);
  }
  const weights = new Map<string, T>();
  const unused: string[] = [];
  for (const [s, v] of ema) {
    const k = byName.get(s);
    if (k !== undefined) weights.set(k, v);
    else if (!EMA_BOOKKEEPING.has(s)) unused.push(s);
  }
  const missing = [...byName.values()].filter((k) => !weights.has(k));
  return { weights, missing, unused };
}

export interface EmaStateDict<T> extends EmaMapping<T> {
  /** Keys whose value came from the training weights instead (the `missing` ones that exist there). */
  fromTraining: string[];
}

/**
 * The model under `prefix` with its EMA weights: every key of `modelKeys` (default: the training
 * keys under `prefix`) takes its EMA shadow when there is one, else the training value (buffers).
 */
export function emaStateDict<T>(sd: ReadonlyMap<string, T>, prefix: string, modelKeys?: Iterable<string>): EmaStateDict<T> {
  const training = splitPrefix(sd, prefix);
  const ema = splitPrefix(sd, emaPrefixFor(prefix));
  const keys = [...(modelKeys ?? training.keys())];
  const m = emaToParameterNames(ema, keys);
  const weights = new Map<string, T>();
  const fromTraining: string[] = [];
  for (const k of keys) {
    const v = m.weights.get(k) ?? training.get(k);
    if (v === undefined) continue;
    weights.set(k, v);
    if (!m.weights.has(k)) fromTraining.push(k);
  }
  return { ...m, weights, fromTraining };
}
