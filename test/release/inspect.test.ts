/**
 * `readRelease` + `summarizeRelease` (`imagebart import --inspect`) on the seven real official
 * release configs (test/fixtures/official-release/configs), checked against what the official code
 * derives from them (expected.json): T, K_eff, conditioning, schedule, transformer classes and the
 * parameter count of every scale's transformer and of the first stage.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { readRelease, summarizeRelease, type ReleaseSummary } from '../../src/release/index.js';
import { releasePath, tempDir } from './fixtures.js';

interface Expected {
  sampling: Record<string, { T: number; K_eff: number; conditional: boolean; configs: string[]; transformers: string[]; schedule: { beta: number[] }; yaml_error?: string }>;
  scales: Record<string, { parameter_counts: { count_params_transformer: number; count_params_first_stage_model: number }; transformer_target: string }>;
}
const ROOT = releasePath('configs');
const expected = JSON.parse(readFileSync(join(ROOT, 'expected.json'), 'utf-8')) as Expected;

function check(s: ReleaseSummary, name: string): void {
  const e = expected.sampling[name]!;
  assert.equal(s.T, e.T, 'T');
  assert.equal(s.K, e.K_eff, 'K_eff');
  assert.equal(s.conditioning !== 'none', e.conditional, 'conditioning');
  s.schedule.beta.forEach((b, i) => assert.ok(Math.abs(b - e.schedule.beta[i]!) < 1e-6, `β_${i} ${b} vs ${e.schedule.beta[i]}`));
  s.scales.forEach((scale, i) => {
    const want = expected.scales[e.configs[i]!]!;
    assert.equal(scale.transformer, want.transformer_target.split('.').pop(), `scale ${scale.t} transformer class`);
    assert.equal(scale.parameters, want.parameter_counts.count_params_transformer, `scale ${scale.t} parameters`);
    assert.equal(s.firstStageParameters, want.parameter_counts.count_params_first_stage_model, 'first-stage parameters');
  });
  assert.ok(s.memory.float16.weights * 2 === s.memory.float32.weights && s.memory.float32.weights === 4 * s.parameters.total);
}

for (const name of Object.keys(expected.sampling)) {
  test(`--inspect ${name}: T, K_eff, conditioning, schedule and parameter counts as the official code derives them`, () => {
    const path = join(ROOT, name);
    if (expected.sampling[name]!.yaml_error) {
      assert.throws(() => readRelease(path), /is not valid YAML at line 14 \('>'\).*remove the offending line/);
      // repaired as expected.json records (the stray '>' dropped), it reads like the others
      const fixed = join(tempDir(), 'repaired.yaml');
      writeFileSync(fixed, readFileSync(path, 'utf-8').replace(/\n>\s*$/, '\n'));
      check(summarizeRelease(readRelease(fixed, { root: ROOT })), name);
      return;
    }
    check(summarizeRelease(readRelease(path)), name);
  });
}

test('the K_eff the configs imply: FFHQ 548, ImageNet 973 (class-conditional, 1000 classes), LSUN 1014–1022', () => {
  const k = (p: string) => readRelease(join(ROOT, 'configs/sampling', p));
  assert.equal(k('ffhq/ffhq_4_scales_geometric.yaml').K, 548);
  const inet = k('imagenet/imagenet_4_scales_geometric.yaml');
  assert.equal(inet.K, 973);
  assert.equal(inet.classes, 1000);
  assert.deepEqual(['beds', 'cats', 'churches'].map((n) => k(`lsun/${n}_3_scales.yaml`).K), [1017, 1014, 1022]);
  assert.ok(inet.ignored.some((x) => /tanh_out/.test(x)), 'tanh_out is reported as ignored');
});

test('imagebart import --inspect --json prints the summary; an invalid YAML exits 1 with the reason', () => {
  const cli = join(releasePath('../../../dist/src/cli/main.js'));
  const ok = spawnSync(process.execPath, [cli, 'import', '--inspect', '--json', join(ROOT, 'configs/sampling/ffhq/ffhq_2_scales_custom.yaml')], { encoding: 'utf-8' });
  assert.equal(ok.status, 0, ok.stderr);
  const s = JSON.parse(ok.stdout) as ReleaseSummary;
  assert.equal(s.K, 548);
  assert.equal(s.scales[1]!.architecture.startsWith('GPT 36 layers × 1216'), true);
  const bad = spawnSync(process.execPath, [cli, 'import', '--inspect', join(ROOT, 'configs/sampling/imagenet/imagenet_5_scales_custom.yaml')], { encoding: 'utf-8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /not valid YAML at line 14/);
  const usage = spawnSync(process.execPath, [cli, 'import'], { encoding: 'utf-8' });
  assert.equal(usage.status, 2);
});
