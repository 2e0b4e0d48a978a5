/**
 * Measured (ᾱ, perceptual metric) curves of the official ImageBART project, from which its custom
 * noise schedules are built (see `betasFromCurve`).
 *
 * Data, not code: the official repository ships them as pickles (`data/in_schedule_vs_metric.p`,
 * `data/ffhq_schedule_vs_metric.p`, key `bernoulli`); the values below are those arrays as stored in
 * `fixtures/official/diffusion.safetensors` (`pickle.{in,ffhq}.bernoulli.{alphacum,PSIM}`), written
 * with full float64 precision. Only column 0 of PSIM is kept, the only one `load_betas` reads.
 */

export interface MeasuredCurve {
  /** ᾱ at which the metric was measured (decreasing from 1 to 0). */
  readonly alphacum: readonly number[];
  /** The metric at each ᾱ (column 0 of the pickle's PSIM array). */
  readonly metric: readonly number[];
}

/** Both pickles measure at the same 20 points, numpy's linspace(1, 0, 20). */
const ALPHACUM_GRID = [
  1, 0.9473684210526316, 0.8947368421052632, 0.8421052631578947, 0.7894736842105263, 0.736842105263158,
  0.6842105263157895, 0.631578947368421, 0.5789473684210527, 0.5263157894736843, 0.4736842105263158,
  0.42105263157894735, 0.368421052631579, 0.3157894736842106, 0.26315789473684215, 0.21052631578947367,
  0.1578947368421053, 0.10526315789473695, 0.052631578947368474, 0,
];

/** Keyed as the official `redraw_prob` names them: `<dataset>_<distribution>_<metric>`. */
export const MEASURED_CURVES: Readonly<Record<string, MeasuredCurve>> = {
  /** ImageNet (`bernoulli_PSIM`, data set "in"). */
  in_bernoulli_PSIM: {
    alphacum: ALPHACUM_GRID,
    metric: [
      1.8468602359654678, 2.1221673601350073, 2.395557921537211, 2.6613138646666914, 2.9059352213947824,
      3.127354513711373, 3.320908024037628, 3.4752166815686754, 3.6008583607088394, 3.706296742562077,
      3.8016489585880304, 3.879740877170678, 3.943234705349329, 3.9998966299552072, 4.0427441772081005,
      4.083556464020635, 4.120075439303454, 4.14593272285922, 4.175405868342225, 4.196818507173411,
    ],
  },
  /** FFHQ (`ffhq_bernoulli_PSIM`). */
  ffhq_bernoulli_PSIM: {
    alphacum: ALPHACUM_GRID,
    metric: [
      1.3601974090897893, 1.5345976630367908, 1.7171572427673034, 1.9034549716007279, 2.0895540533534973,
      2.2671353916327157, 2.4543793600007713, 2.630599081755642, 2.781134723180748, 2.932407443542557,
      3.0814852025135453, 3.2167267959759416, 3.3337439626574996, 3.4442683714460656, 3.537786516319796,
      3.6262830589191024, 3.6963301423084305, 3.767156392694956, 3.8195929115555853, 3.871077525567817,
    ],
  },
};
