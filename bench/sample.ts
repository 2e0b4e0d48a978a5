/**
 * bench:sample — how fast the chain samples, and what the KV cache and the encoder/decoder split buy.
 *
 * 1. Images/s of the full chain (T = 3, geometric; random weights of a realistic small size: width 256,
 *    4 heads of 64, encoder 4 / decoder 2 layers at scales 1–2, a 6-layer GPT at scale 3, K = 512) on
 *    8×8 and 16×16 grids, batch 4, with the three decodings of src/sample/decoder.ts:
 *    - cached: encoder once, decoder KV cache, cross-attention K/V once (ours);
 *    - uncached: no KV cache anywhere (every token re-runs its whole decoder prefix);
 *    - official: the official sampler — encoder-decoder scales uncached, the GPT with its past.
 * 2. The encoder/decoder depth trade-off of the paper's Eq. 13 at equal parameter count: one
 *    encoder-decoder scale (16×16, cached) for depth splits (e, d) with 12e + 16d = 160 (in units of
 *    width²: an encoder layer holds ≈ 12·width², a decoder layer ≈ 16·width²), and a decoder-only GPT
 *    of about the same size (13 layers). Eq. 13 counts layer evaluations: the encoder runs once per
 *    scale, the decoder once per token, so a scale costs ∝ e + N·d and the speed-up over a decoder-only
 *    model of L layers is N·L / (e + N·d).
 * Runs under 10 s are repeated three times, interleaved, and the median kept (the machine is shared). Prints a table
 * and writes bench/results/sample.json. Set BENCH_BATCH to change the batch.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { manualSeed, getThreads, randint, noGrad, tidy } from '../src/torch/index.js';
import { createDenoiser, EncoderDecoderDenoiser, type ChainShape, type ScaleModelConfig } from '../src/chain/index.js';
import { makeSchedule } from '../src/diffusion/index.js';
import { sample, denoiseScale, resolveSettings, type Decoding, type SamplingChain } from '../src/sample/index.js';

const K = 512, T = 3, WIDTH = 256, HEADS = 4;
const BATCH = Number(process.env.BENCH_BATCH ?? 4);
const GRIDS: [number, number][] = [[8, 8], [16, 16]];
const DECODINGS: Decoding[] = ['cached', 'uncached', 'official'];
const SPLITS: [number, number][] = [[12, 1], [8, 4], [4, 7]];
const GPT_LAYERS = 13;

function buildChain([h, w]: [number, number]): SamplingChain {
  manualSeed(0);
  const schedule = makeSchedule('geometric', T);
  const shape: ChainShape = { K, T, tokens: h * w };
  const model = (t: number): ScaleModelConfig => t === T
    ? { type: 'gpt', dim: WIDTH, heads: HEADS, depth: 6 }
    : { type: 'residual-xtransformer', dim: WIDTH, heads: HEADS, encoderDepth: 4, decoderDepth: 2 };
  const denoisers = Array.from({ length: T }, (_, i) => createDenoiser(i + 1, model(i + 1), shape, schedule).eval());
  return { denoisers, schedule, tokenShape: [h, w] };
}

const seconds = (fn: () => void): number => {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Seconds per run of each function, robust to a shared machine: every function runs once, then those
 * that took under 10 s run twice more, interleaved round by round; the median is kept.
 */
function measure<Name extends string>(runs: Record<Name, () => void>): Record<Name, number> {
  const keys = Object.keys(runs) as Name[];
  const times = Object.fromEntries(keys.map((k) => [k, [seconds(runs[k])]])) as Record<Name, number[]>;
  for (let round = 1; round < 3; round++) for (const k of keys) if (times[k][0] < 10) times[k].push(seconds(runs[k]));
  return Object.fromEntries(keys.map((k) => [k, median(times[k])])) as Record<Name, number>;
}

interface Row { grid: string; decoding: Decoding; seconds: number; imagesPerSecond: number }

function chainSpeed(): { rows: Row[]; params: number[] } {
  const rows: Row[] = [];
  let params: number[] = [];
  for (const grid of GRIDS) {
    const chain = buildChain(grid);
    params = chain.denoisers.map((d) => d.numParameters());
    if (rows.length === 0) sample(chain, { batch: 1, seed: 0 }); // warm-up: operator handles, allocator
    const runs = Object.fromEntries(DECODINGS.map((decoding) => [decoding, () => sample(chain, { batch: BATCH, seed: 1, decoding }).tokens.dispose()]));
    const times = measure(runs as Record<Decoding, () => void>);
    for (const decoding of DECODINGS) {
      const row = { grid: grid.join('x'), decoding, seconds: times[decoding], imagesPerSecond: BATCH / times[decoding] };
      rows.push(row);
      console.log(`${row.grid.padEnd(6)} ${decoding.padEnd(9)} ${row.seconds.toFixed(2).padStart(7)} s  ${row.imagesPerSecond.toFixed(3).padStart(8)} images/s`);
    }
  }
  return { rows, params };
}

interface Split {
  encoderLayers: number; decoderLayers: number; params: number; seconds: number;
  /** The encoder's one pass over x_t, part of `seconds`. */
  encoderSeconds: number;
  measuredSpeedupOverGPT: number; eq13SpeedupOverGPT: number;
}

function depthTradeoff(): { splits: Split[]; gpt: { layers: number; params: number; seconds: number } } {
  const [h, w] = [16, 16], N = h * w;
  const schedule = makeSchedule('geometric', 2);
  const shape: ChainShape = { K, T: 2, tokens: N };
  const settings = resolveSettings({}, K);
  const time = (model: ScaleModelConfig, t: number) => {
    manualSeed(0);
    const d = createDenoiser(t, model, shape, schedule).eval();
    const xt = randint(0, K, [BATCH, h, w]);
    const { scale, encoder } = measure({
      scale: () => noGrad(() => tidy(() => { denoiseScale(d, xt, { settings, decoding: 'cached', tokenShape: [h, w] }); })),
      encoder: () => noGrad(() => tidy(() => { if (d instanceof EncoderDecoderDenoiser) d.transformer.encode(d.encoderInput(xt.view(BATCH, N))); })),
    });
    return { params: d.numParameters(), seconds: scale, encoderSeconds: encoder };
  };
  const g = time({ type: 'gpt', dim: WIDTH, heads: HEADS, depth: GPT_LAYERS }, 2);
  const gpt = { layers: GPT_LAYERS, params: g.params, seconds: g.seconds };
  console.log(`\nEq. 13 trade-off, one 16×16 scale, batch ${BATCH}, cached:`);
  console.log(`GPT ${GPT_LAYERS} layers   ${(gpt.params / 1e6).toFixed(2)}M params  ${gpt.seconds.toFixed(2)} s`);
  const splits = SPLITS.map(([e, d]) => {
    const r = time({ type: 'xtransformer', dim: WIDTH, heads: HEADS, encoderDepth: e, decoderDepth: d }, 1);
    const split = {
      encoderLayers: e, decoderLayers: d, ...r,
      measuredSpeedupOverGPT: gpt.seconds / r.seconds, eq13SpeedupOverGPT: (N * GPT_LAYERS) / (e + N * d),
    };
    console.log(`enc ${String(e).padStart(2)} / dec ${d}   ${(r.params / 1e6).toFixed(2)}M params  ${r.seconds.toFixed(2)} s (encoder ${r.encoderSeconds.toFixed(2)} s)  ` +
      `speed-up over the GPT ${split.measuredSpeedupOverGPT.toFixed(2)}× (Eq. 13: ${split.eq13SpeedupOverGPT.toFixed(2)}×)`);
    return split;
  });
  return { splits, gpt };
}

const started = performance.now();
const loadBefore = loadavg()[0];
console.log(`bench:sample — T = ${T}, K = ${K}, width ${WIDTH}, batch ${BATCH}, threads ${JSON.stringify(getThreads())}`);
const speed = chainSpeed();
const speedup = Object.fromEntries(GRIDS.map(([h, w]) => {
  const at = (d: Decoding) => speed.rows.find((r) => r.grid === `${h}x${w}` && r.decoding === d)!.imagesPerSecond;
  return [`${h}x${w}`, { overUncached: at('cached') / at('uncached'), overOfficial: at('cached') / at('official') }];
}));
for (const [g, s] of Object.entries(speedup)) console.log(`${g}: KV cache ${s.overUncached.toFixed(1)}× over uncached, ${s.overOfficial.toFixed(1)}× over the official loop`);
const tradeoff = depthTradeoff();
const total = (performance.now() - started) / 1000;
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/sample.json', JSON.stringify({
  benchmark: 'sample', date: new Date().toISOString(), cores: availableParallelism(), threads: getThreads(),
  loadAverage: { before: loadBefore, after: loadavg()[0] },
  chain: { K, T, schedule: 'geometric', width: WIDTH, heads: HEADS, scales: 'enc 4 / dec 2 (residual-scaled) at t < T, GPT 6 layers at T', params: speed.params, batch: BATCH },
  results: speed.rows, speedup, depthTradeoff: { grid: '16x16', batch: BATCH, decoding: 'cached', ...tradeoff }, totalSeconds: total,
}, null, 2) + '\n');
console.log(`\nwrote bench/results/sample.json (${total.toFixed(0)} s)`);
