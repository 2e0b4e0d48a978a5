/** First-stage metrics on label maps: label accuracy and mean IoU of the reconstructed maps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, tensor } from '../../src/torch/index.js';
import { labelsOf, loadMnist, meanIoU, segmentationDataset, subset, collate } from '../../src/data/index.js';
import { VQModel, makeConfig } from '../../src/vqgan/index.js';
import { evaluate } from '../../src/vqgan/metrics.js';

test('evaluate on label maps: label accuracy and mean IoU of the argmax labels of the reconstructions', () => {
  manualSeed(0);
  const model = new VQModel(makeConfig({
    ddconfig: { resolution: 32, inChannels: 3, outCh: 3, ch: 8, chMult: [1, 2], numResBlocks: 1, attnResolutions: [], zChannels: 8, doubleZ: false, dropout: 0, normGroups: 4 },
    nEmbed: 16, embedDim: 8,
  })).eval();
  const maps = segmentationDataset(subset(loadMnist({ split: 'test' }), [0, 1, 2, 3, 4, 5], 'mnist:test[:6]'));
  const r = evaluate(model, maps, { batchSize: 4, labelMaps: 3 });
  // by hand
  const b = collate(maps, [0, 1, 2, 3, 4, 5]);
  const rec = noGrad(() => model.forward(tensor(b.images, [6, 3, 32, 32])).rec.toFloat32Array());
  let correct = 0, iou = 0;
  for (let k = 0; k < 6; k++) {
    const want = labelsOf(b.images.subarray(k * 3072, (k + 1) * 3072), 32), got = labelsOf(rec.subarray(k * 3072, (k + 1) * 3072), 32);
    correct += want.filter((l, p) => l === got[p]).length;
    iou += meanIoU(want, got);
  }
  assert.ok(Math.abs(r.labelAccuracy! - correct / (6 * 1024)) < 1e-9, `accuracy ${r.labelAccuracy} vs ${correct / 6144}`);
  assert.ok(Math.abs(r.meanIoU! - iou / 6) < 1e-9);
  assert.equal(evaluate(model, maps, { batchSize: 4 }).meanIoU, undefined, 'not asked: not computed');
});
