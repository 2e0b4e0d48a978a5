/**
 * Noise schedules of the multinomial diffusion q(x_t | x_{t-1}) = Cat((1-β_t)·e_{x_{t-1}} + β_t/K).
 *
 * - A schedule is β_t for t = 0..T with β_0 = 0, α_t = 1 - β_t and ᾱ_t = ∏_{s≤t} α_s.
 * - Values follow the official float32 arithmetic: β is rounded to float32, α = 1 - β in float32,
 *   and ᾱ is libtorch's CPU cumprod (products accumulated in double, each output rounded to float32),
 *   so e.g. geometric T=4 gives ᾱ_2 = 0.49999997, not 0.5.
 * - Specs (the official `redraw_prob`):
 *   - `'geometric'`: β_t = 1/(T-t+1), so ᾱ_t = 1 - t/T and β_T = 1;
 *   - `'alphacum:a0,a1,…,aT'`: explicit ᾱ list, β_t = 1 - ᾱ_t/ᾱ_{t-1} (computed in float64);
 *   - `'<dataset>_<dist>_<metric>'` (or `'<dist>_<metric>'` for ImageNet): from a measured curve,
 *     see `betasFromCurve`; `'bernoulli_PSIM'` and `'ffhq_bernoulli_PSIM'` are available;
 *   - a number β: constant β_t = β for t ≥ 1.
 */
import { MEASURED_CURVES, type MeasuredCurve } from './curves.js';

export type ScheduleSpec = string | number;

export interface Schedule {
  readonly spec: ScheduleSpec;
  /** Number of diffusion steps, one reverse model per step. */
  readonly T: number;
  /** β_t, t = 0..T (float32 values). */
  readonly beta: readonly number[];
  /** α_t = 1 - β_t. */
  readonly alpha: readonly number[];
  /** ᾱ_t = ∏_{s≤t} α_s; ᾱ_0 = 1. */
  readonly alphacum: readonly number[];
}

/** The schedule a spec names, with T steps. */
export function makeSchedule(spec: ScheduleSpec, T: number): Schedule {
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`schedule: T must be a positive integer, got ${T}`);
  return fromBetas(spec, betasFor(spec, T));
}

/** Completes β_0..β_T (any precision) into a schedule, with the official float32 rounding. */
export function fromBetas(spec: ScheduleSpec, betas: readonly number[]): Schedule {
  const beta = betas.map(Math.fround);
  if (beta[0] !== 0) throw new Error(`schedule '${spec}': β_0 must be 0, got ${beta[0]}`);
  beta.forEach((b, t) => {
    if (!(b >= 0 && b <= 1)) throw new RangeError(`schedule '${spec}': β_${t} = ${b} is not a probability`);
  });
  const alpha = beta.map((b) => Math.fround(1 - b));
  let acc = 1;
  const alphacum = alpha.map((a) => Math.fround((acc *= a)));
  return { spec, T: beta.length - 1, beta, alpha, alphacum };
}

function betasFor(spec: ScheduleSpec, T: number): number[] {
  if (typeof spec === 'number') return [0, ...new Array<number>(T).fill(spec)];
  if (spec === 'geometric') return [0, ...Array.from({ length: T }, (_, i) => 1 / (T - i))];
  if (spec.startsWith('alphacum:')) {
    const a = spec.slice('alphacum:'.length).split(',').map(Number);
    if (a.length !== T + 1) throw new Error(`schedule '${spec}': needs T+1 = ${T + 1} values ᾱ_0..ᾱ_T, got ${a.length}`);
    for (let t = 1; t <= T; t++) {
      if (!(a[t - 1] > 0 && a[t] >= 0 && a[t] <= a[t - 1])) throw new Error(`schedule '${spec}': ᾱ must decrease from a positive ᾱ_0 (ᾱ_${t - 1} = ${a[t - 1]}, ᾱ_${t} = ${a[t]})`);
    }
    return [0, ...a.slice(1).map((at, i) => 1 - at / a[i])];
  }
  const parts = spec.split('_');
  const key = parts.length === 2 ? `in_${spec}` : spec;
  const curve = parts.length >= 2 ? MEASURED_CURVES[key] : undefined;
  if (!curve) {
    throw new Error(`unknown schedule '${spec}': expected 'geometric', 'alphacum:a0,…,aT', a constant β, or one of ${Object.keys(MEASURED_CURVES).join(', ')}`);
  }
  return betasFromCurve(curve, T);
}

/**
 * The official `load_betas(…, n_steps = T+1)`, in float64: T+1 metric levels evenly spaced between
 * the curve's min and max, the ᾱ where the curve first crosses each (piecewise-linear), and
 * β_t = 1 - ᾱ_t/ᾱ_{t-1}. The caller rounds to float32.
 */
export function betasFromCurve(curve: MeasuredCurve, T: number): number[] {
  const { alphacum: x, metric: y } = curve;
  const lo = Math.min(...y), hi = Math.max(...y);
  const step = (hi - lo) / T; // numpy linspace: i·step + start, last point exactly stop
  const levels = Array.from({ length: T + 1 }, (_, i) => (i === T ? hi : i * step + lo));
  const a = levels.map((level) => {
    const roots = findRoots(x, y.map((v) => v - level));
    if (roots.length === 0) throw new Error(`measured curve never reaches ${level}`);
    return roots[0];
  });
  return [0, ...a.slice(1).map((at, i) => 1 - at / a[i])];
}

/** x where the piecewise-linear y(x) changes sign, as the official find_roots (division by 0 gives the endpoint). */
function findRoots(x: readonly number[], y: readonly number[]): number[] {
  const roots: number[] = [];
  for (let i = 0; i + 1 < y.length; i++) {
    if (Math.sign(y[i]) !== Math.sign(y[i + 1])) roots.push(x[i] + (x[i + 1] - x[i]) / (Math.abs(y[i + 1] / y[i]) + 1));
  }
  return roots;
}
