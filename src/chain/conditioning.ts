/**
 * What a chain is conditioned on — one description shared by token files, the trainer, the NLL,
 * sampling, editing, the manifest and the CLI (DESIGN §1, "Conditioning"):
 *
 * - `none`;
 * - `class`: a class id c ∈ [0, n), one token after the scale token in every encoder input and in the
 *   GPT prefix at scale T (`[t, c, …]`, one embedding table shared with the codes, as the official
 *   ImageNet models). `nullable` chains were trained with labels dropped to the null id n, so they also
 *   sample unconditionally and with classifier-free guidance;
 * - `text`: a caption, CLIP-BPE tokenized to `length` tokens (`[start, ids…, end]`, padded), then
 *   mapped into a compact vocabulary so that small models do not carry a 49408-row table: compact id 0
 *   is padding, 1 a BPE token unseen in training, 2 + i the CLIP id `vocab[i]`. The null condition of a
 *   `nullable` text chain is the empty caption.
 * `segmentation` is not implemented.
 *
 * At the model level every kind is `condLength` tokens per example with ids below `condVocab`.
 */
import { z } from 'zod';
import { type Tensor, tensor } from '../torch/index.js';
import { parseWith } from '../io/schema.js';
import type { TokenSet } from './tokens.js';
import { ClipTokenizer } from '../text/clip.js';

export type Conditioning =
  | { kind: 'none' }
  | { kind: 'class'; classes: number; nullable: boolean; names?: string[] }
  | { kind: 'text'; tokenizer: 'clip-bpe'; length: number; vocab: number[]; nullable: boolean };

/** What one example is conditioned on: a class id, a caption, or null (the null condition). */
export type Condition = number | string | null;

export const NONE: Conditioning = { kind: 'none' };
const PAD = 0, UNKNOWN = 1, FIRST = 2;

/** Tokens per example and the ids they take, as the models see them. */
export function conditioningShape(c: Conditioning): { condLength: number; condVocab: number } {
  switch (c.kind) {
    case 'none': return { condLength: 0, condVocab: 0 };
    case 'class': return { condLength: 1, condVocab: c.classes + (c.nullable ? 1 : 0) };
    case 'text': return { condLength: c.length, condVocab: FIRST + c.vocab.length };
  }
}

/** The conditioning a model of this shape was trained with, when only the shape and the class count are known (older manifests). */
export function classConditioning(classes: number | null | undefined, condVocab?: number): Conditioning {
  if (!classes) return NONE;
  return { kind: 'class', classes, nullable: condVocab === classes + 1 };
}

const positiveInt = z.number().int().positive();

/** The description's schema, as manifests and configs hold it. */
export const ConditioningSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('none') }),
  z.strictObject({ kind: z.literal('class'), classes: positiveInt, nullable: z.boolean(), names: z.array(z.string()).optional() }),
  z.strictObject({ kind: z.literal('text'), tokenizer: z.literal('clip-bpe'), length: z.number().int().min(2), vocab: z.array(z.number().int().nonnegative()), nullable: z.boolean() }),
]) satisfies z.ZodType<Conditioning>;

/** Checks a description read from a file (`where` names it in the error); returns it. */
export function checkConditioning(c: unknown, where: string): Conditioning {
  const parsed = parseWith(ConditioningSchema, c, `${where}: conditioning`);
  if (parsed.kind === 'class' && parsed.names && parsed.names.length !== parsed.classes) throw new Error(`${where}: conditioning "names" must list one name per class (${parsed.classes})`);
  return parsed;
}

let tokenizer: ClipTokenizer | undefined;
const clip = () => (tokenizer ??= new ClipTokenizer());

/**
 * A text conditioning for captions: the compact vocabulary is every CLIP id the (training) captions use,
 * sorted, so that it is the same whichever process builds it.
 */
export function textConditioning(captions: readonly string[], length: number, nullable: boolean): Conditioning {
  const ids = new Set<number>();
  for (const c of captions) for (const id of clip().tokenize(c, length)) ids.add(id);
  ids.delete(PAD);
  return { kind: 'text', tokenizer: 'clip-bpe', length, vocab: [...ids].sort((a, b) => a - b), nullable };
}

/** Conditioning tokens [B, condLength] int64 for B conditions (null: the null condition). */
export function encodeConditions(c: Conditioning, conditions: readonly Condition[]): Tensor | undefined {
  if (c.kind === 'none') {
    if (conditions.some((x) => x !== null)) throw new Error('this chain is unconditional: it takes no class or caption');
    return undefined;
  }
  const { condLength } = conditioningShape(c);
  const ids = new BigInt64Array(conditions.length * condLength);
  if (c.kind === 'class') {
    conditions.forEach((x, i) => {
      if (x === null) {
        if (!c.nullable) throw new Error('this chain was trained without dropped labels: it has no null class (it cannot sample unconditionally or with guidance)');
        ids[i] = BigInt(c.classes);
      } else if (typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < c.classes) ids[i] = BigInt(x);
      else throw new Error(`class ${JSON.stringify(x)}: this chain takes class ids 0..${c.classes - 1}`);
    });
  } else {
    const compact = new Map(c.vocab.map((v, i) => [v, FIRST + i]));
    conditions.forEach((x, i) => {
      if (x === null && !c.nullable) throw new Error('this chain was trained without dropped captions: it has no null caption');
      if (x !== null && typeof x !== 'string') throw new Error(`this chain takes captions (text), got ${JSON.stringify(x)}`);
      const bpe = clip().tokenize(x ?? '', c.length);
      for (let k = 0; k < c.length; k++) ids[i * condLength + k] = BigInt(bpe[k] === PAD ? PAD : compact.get(bpe[k]) ?? UNKNOWN);
    });
  }
  return tensor(ids, [conditions.length, condLength]);
}

/** The null condition [1, condLength] of a nullable chain (classifier-free guidance). */
export function nullCondition(c: Conditioning): Tensor {
  if (c.kind === 'none' || !c.nullable) throw new Error('classifier-free guidance needs a chain trained with dropped conditions (a null class or caption)');
  return encodeConditions(c, [null])!;
}

/** A short human description, e.g. "class (10, nullable)". */
export function describeConditioning(c: Conditioning): string {
  if (c.kind === 'none') return 'none';
  if (c.kind === 'class') return `class (${c.classes}${c.nullable ? ', nullable' : ''})`;
  return `text (CLIP BPE, ${c.length} tokens, ${c.vocab.length}-token vocabulary${c.nullable ? ', nullable' : ''})`;
}

/**
 * The conditions [M, condLength] of a token file's grids under `c` (undefined for `none`): its labels
 * for a class chain, its captions for a text chain; all grids, the first `count`, or those at `idx`.
 */
export function conditionsOf(file: TokenSet, c: Conditioning, path: string, select: { idx?: Tensor; count?: number } = {}): Tensor | undefined {
  if (c.kind === 'none') return undefined;
  const n = file.tokens.size(0);
  const at = select.idx ? select.idx.toNumbers() : Array.from({ length: select.count ?? n }, (_, i) => i);
  if (c.kind === 'class') {
    if (!file.labels) throw new Error(`${path}: a class-conditional chain needs labels in the token file`);
    const labels = file.labels.toNumbers();
    const bad = at.find((i) => !(labels[i] >= 0 && labels[i] < c.classes));
    if (bad !== undefined) throw new Error(`${path}: labels must lie in 0..${c.classes - 1}, grid ${bad} has ${labels[bad]}`);
    return tensor(BigInt64Array.from(at, (i) => BigInt(labels[i])), [at.length, 1]);
  }
  if (!file.captions) throw new Error(`${path}: a text-conditional chain needs captions in the token file`);
  return encodeConditions(c, at.map((i) => file.captions![i]));
}
