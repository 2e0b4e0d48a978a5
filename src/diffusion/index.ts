/** Multinomial diffusion over token grids: schedules, forward process, posterior and loss (pure math, no I/O). */
export * from './schedule.js';
export * from './process.js';
export * from './loss.js';
export { MEASURED_CURVES, type MeasuredCurve } from './curves.js';
