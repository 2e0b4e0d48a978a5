/**
 * The VQGAN training config's schema (zod): every field typed and bounded, unknown keys refused, so
 * a `--config` file with a misspelled key (`modle`) or a string where a number belongs is an error
 * naming the field, and a batch size of 0 or a negative learning rate never reaches the trainer.
 * Semantic checks that tie fields together (widths against GroupNorm groups, …) stay in
 * `validateConfig`.
 */
import { z } from 'zod';
import type { VQGANTrainConfig } from './trainer.js';

const positiveInt = z.number().int().positive();
const count = z.number().int().nonnegative();

export const DDConfigSchema = z.strictObject({
  resolution: positiveInt,
  inChannels: positiveInt,
  outCh: positiveInt,
  ch: positiveInt,
  chMult: z.array(positiveInt).min(1),
  numResBlocks: positiveInt,
  attnResolutions: z.array(positiveInt),
  zChannels: positiveInt,
  doubleZ: z.boolean(),
  dropout: z.number().min(0).lt(1),
  normGroups: positiveInt.optional(),
});

export const VQModelConfigSchema = z.strictObject({
  ddconfig: DDConfigSchema,
  nEmbed: positiveInt,
  embedDim: positiveInt,
  beta: z.number().nonnegative(),
  legacy: z.boolean(),
  saneIndexShape: z.boolean(),
  unknownIndex: z.union([z.literal('random'), z.literal('extra'), count]),
});

export const VQGANLossConfigSchema = z.strictObject({
  discStart: count,
  codebookWeight: z.number().nonnegative(),
  perceptualWeight: z.number().nonnegative(),
  perceptualWeights: z.string().min(1).optional(),
  discNumLayers: positiveInt,
  discNdf: positiveInt,
  discFactor: z.number().nonnegative(),
  discWeight: z.number().nonnegative(),
});

export const VQGANTrainConfigSchema = z.strictObject({
  model: VQModelConfigSchema,
  loss: VQGANLossConfigSchema,
  lr: z.number().positive(),
  batchSize: positiveInt,
  steps: count,
  seed: z.number().int().nonnegative().max(2 ** 32 - 1), // libtorch's generator takes 32-bit seeds
  logEvery: positiveInt,
  sampleEvery: positiveInt,
  valEvery: positiveInt,
  checkpointEvery: positiveInt,
  valImages: positiveInt,
  autocast: z.boolean().optional(),
  data: z.strictObject({ name: z.string(), resolution: positiveInt, channels: positiveInt }).optional(),
}) satisfies z.ZodType<VQGANTrainConfig>;
