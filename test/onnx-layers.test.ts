/**
 * ONNX end to end: `convbn gen --onnx` writes params.bin; layers built from it
 * on WebGPU reproduce the model's Conv+BN numbers, computed in float64 by the
 * oracle from the same extracted parameters.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { main } from '../codegen/cli/main.js';
import { normalizeConfig, tensorSizes } from '../codegen/config.js';
import { readParamsFile } from '../codegen/onnx/index.js';
import { relativeError, TOLERANCE } from '../runtime/check/compare.js';
import { webgpuEngineOrSkip } from './helpers/backends.js';
import { mulberry32, randomTensor } from './helpers/random.js';
import { referenceCase } from './oracle/reference.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const modelsDir = process.env.CONVBN_MODELS ?? path.resolve(repoRoot, '../shared/models');
const engine = await webgpuEngineOrSkip();

describe.skipIf(!engine)('ONNX pairs run on WebGPU', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'convbn-onnx-'));
  afterAll(async () => {
    engine?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [model, pick] of [
    ['tricky_convbn.onnx', () => true],
    // The stem, a stride-2 depthwise, and the last 1x1: small enough for the float64 oracle.
    ['mobilenet_v2.onnx', (_: unknown, i: number) => i === 0 || i === 4 || i === 51],
  ] as const) {
    test(`${model}: forward (tune and eval) of the extracted pairs matches the float64 oracle`, async () => {
      const out = path.join(dir, model);
      const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
      const code = await main(['gen', '--onnx', path.join(modelsDir, model), '--out', out]);
      log.mockRestore();
      expect(code).toBe(0);
      const { pairs } = readParamsFile(path.join(out, 'params.bin'));
      const chosen = pairs.filter(pick as never);
      expect(chosen.length).toBeGreaterThan(0);
      const rng = mulberry32(11);
      for (const pair of chosen) {
        const config = normalizeConfig(pair.config);
        const x = randomTensor(rng, tensorSizes(config).x);
        const p = pair.params;
        const layer = engine!.createLayer(config, p);
        for (const mode of ['tune', 'eval'] as const) {
          const y = await layer.forward(x, mode, { requiresGrad: false });
          const expected = referenceCase(config, {
            x, weight: p.weight, bias: p.bias, gamma: p.gamma, beta: p.beta, running_mean: p.runningMean,
            running_var: p.runningVar, grad_y: new Float32Array(tensorSizes(config).y),
          }, mode).y;
          expect(relativeError(y, expected), `${pair.convNode} ${mode}`).toBeLessThanOrEqual(TOLERANCE);
        }
        layer.destroy();
      }
    });
  }
});
