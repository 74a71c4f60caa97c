/**
 * What every backend must do, asserted against the PyTorch vectors and the
 * float64 oracle: all modes forward and backward on the vectors and on configs
 * beyond them, tune == eval, recompute == no recompute, deploy's gradient
 * relation, NaN propagation, and clear errors for bad input.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { MODES, normalizeConfig, tensorSizes, toInput, type ConvBNConfig, type ConvBNConfigInput, type Mode } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import { loadCaseDir } from '../../runtime/check/cases.js';
import { relativeError, TOLERANCE } from '../../runtime/check/compare.js';
import { checkMode } from '../../runtime/check/run.js';
import type { Engine } from '../../runtime/types.js';
import { uncapturedErrors } from '../helpers/backends.js';
import { mulberry32, randomParams, randomTensor, randomValidConfig, type Rng } from '../helpers/random.js';
import type { CaseInputs } from '../oracle/reference.js';
import { referenceCase } from '../oracle/reference.js';
import { runOnEngine } from './run.js';
import { runCase } from '../reliability/harness.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const vectorsDir = process.env.CONVBN_VECTORS ?? path.resolve(repoRoot, '../shared/vectors');

export function randomInputs(rng: Rng, config: ConvBNConfig): CaseInputs {
  const p = randomParams(rng, config);
  const sizes = tensorSizes(config);
  return {
    x: randomTensor(rng, sizes.x), weight: p.weight, bias: p.bias, gamma: p.gamma, beta: p.beta,
    running_mean: p.runningMean, running_var: p.runningVar, grad_y: randomTensor(rng, sizes.y),
  };
}

/** Configs the vectors do not hold, named after what they exercise. */
export const GENERAL_CONFIGS: Record<string, ConvBNConfigInput> = {
  'non-square kernel 2x5, stride [1,3]': { N: 2, Cin: 3, Cout: 4, H: 9, W: 11, kernel: [2, 5], stride: [1, 3], padding: [1, 2] },
  'stride 3': { N: 2, Cin: 2, Cout: 3, H: 10, W: 10, kernel: 3, stride: 3, padding: 1 },
  'dilation 3': { N: 1, Cin: 3, Cout: 2, H: 11, W: 9, kernel: 3, dilation: 3, padding: 2 },
  'groups 3': { N: 2, Cin: 6, Cout: 9, H: 7, W: 6, kernel: 3, groups: 3, padding: 1, bias: false },
  'depthwise multiplier 2': { N: 2, Cin: 4, Cout: 8, H: 8, W: 7, kernel: 3, groups: 4, padding: 1 },
  'depthwise stride 2 asymmetric padding': { N: 2, Cin: 5, Cout: 5, H: 9, W: 8, kernel: 3, stride: 2, groups: 5, padding: [0, 1, 1, 0] },
  'tiny input 1x1 image': { N: 3, Cin: 2, Cout: 3, H: 1, W: 1, kernel: 1 },
  'tiny input, kernel larger than image': { N: 2, Cin: 2, Cout: 2, H: 2, W: 3, kernel: 5, padding: 2 },
  'padding beyond the kernel reach': { N: 2, Cin: 2, Cout: 3, H: 4, W: 5, kernel: 3, padding: [4, 3, 5, 2] },
  "'same' stride 2 (extra padding bottom/right)": { N: 2, Cin: 3, Cout: 4, H: 8, W: 7, kernel: 4, stride: 2, padding: 'same' },
  'dilation [2,3] stride [2,1] groups 2': { N: 2, Cin: 4, Cout: 6, H: 12, W: 11, kernel: [3, 2], stride: [2, 1], dilation: [2, 3], groups: 2, padding: [2, 1] },
  '1x1 Cin=1 (one weight per channel)': { N: 3, Cin: 1, Cout: 4, H: 6, W: 5, kernel: 1, stride: 2, eps: 1e-5 },
  // Found by fuzzing: shapes where float32 would only reach the answer by cancellation.
  'one live tap (the other reads only padding)': {
    N: 3, Cin: 2, Cout: 2, H: 1, W: 2, kernel: [1, 2], stride: [1, 3], padding: [0, 0, 1, 0], dilation: [3, 1], groups: 2,
    bias: false, eps: 0.001,
  },
  'depthwise 3x3 on a 1x1 image (only the centre tap is live)': { N: 2, Cin: 3, Cout: 6, H: 1, W: 1, kernel: 3, padding: 1, groups: 3 },
  'two values per channel (N * Hout * Wout = 2)': {
    N: 2, Cin: 2, Cout: 2, H: 3, W: 8, kernel: [1, 3], stride: [3, 3], dilation: [3, 3], groups: 2, eps: 1e-5,
  },
  'no tap ever reads the image (z is the bias)': { N: 3, Cin: 2, Cout: 2, H: 2, W: 2, kernel: 1, stride: 3, padding: 2 },
  // Found by fuzzing: a group's batch reads one input value, so BN makes its gradient an eps-sized rest.
  'one live input value per group, two taps read it': {
    N: 1, Cin: 6, Cout: 6, H: 3, W: 2, kernel: [1, 2], stride: [3, 2], padding: [1, 0, 1, 3], dilation: [2, 2], groups: 6,
  },
  'one live input value per group, multiplier 2, 1x1 image padded': { N: 1, Cin: 3, Cout: 6, H: 1, W: 1, kernel: 1, padding: 1, groups: 3 },
};

/** Train mode needs two values per channel; the other modes take one. */
export const SINGLE_VALUE_CONFIG: ConvBNConfigInput = { N: 1, Cin: 2, Cout: 3, H: 1, W: 1, kernel: 1 };

function expectAllClose(produced: Record<string, Float32Array>, expected: Record<string, Float64Array>, label: string): void {
  for (const [name, ref] of Object.entries(expected)) {
    const out = produced[name];
    expect(out, `${label}: ${name} missing`).toBeDefined();
    const err = relativeError(out, ref);
    expect(err, `${label}: ${name} relative error`).toBeLessThanOrEqual(TOLERANCE);
  }
}

export function backendConformance(name: string, getEngine: () => Engine | undefined): void {
  const engine = () => getEngine()!;

  afterAll(() => {
    const e = getEngine();
    if (e) expect(uncapturedErrors(e)).toEqual([]);
  });

  describe(`${name}: PyTorch vectors, every mode forward and backward`, async () => {
    const cases = await loadCaseDir(vectorsDir);
    test('the vector set is present', () => {
      if (!process.env.CONVBN_VECTORS) expect(cases.length).toBe(40);
    });
    for (const c of cases) {
      test.each([...MODES])(`${c.id} %s`, async (mode) => {
        const r = await checkMode(engine(), c, mode);
        expect(r.failure).toBeUndefined();
        expect(r.worstError, `${c.id} ${mode}: ${JSON.stringify(r.errors)}`).toBeLessThanOrEqual(TOLERANCE);
      });
    }
  });

  describe(`${name}: configs beyond the vectors vs the float64 oracle`, () => {
    const rng = mulberry32(7);
    for (const [label, input] of Object.entries(GENERAL_CONFIGS)) {
      const config = normalizeConfig(input);
      const inputs = randomInputs(rng, config);
      test.each([...MODES])(`${label} %s`, async (mode) => {
        const { produced, expected } = await runOnEngine(engine(), config, inputs, mode);
        expectAllClose(produced, expected, `${label} ${mode}`);
      });
    }
    // The fuzz case (data and all) that found the single-live-input gap: WASM's float64 BN backward left a
    // 2.6e-4 residue in grad_x there, WebGPU's 8.4e-4.
    test('fuzz regression: one live input value per group, its own data', async () => {
      const r = await runCase(engine(), {
        config: GENERAL_CONFIGS['one live input value per group, two taps read it'], seed: 548202340, mode: 'train', recompute: false,
      });
      expect(r.failure).toBeUndefined();
      expect(r.worstError, JSON.stringify(r.errors)).toBeLessThanOrEqual(TOLERANCE);
    });
    const single = normalizeConfig(SINGLE_VALUE_CONFIG);
    const singleInputs = randomInputs(rng, single);
    test.each(['eval', 'tune', 'deploy'] as const)('one value per channel (N = H = W = 1) %s', async (mode) => {
      const { produced, expected } = await runOnEngine(engine(), single, singleInputs, mode);
      expectAllClose(produced, expected, `single value ${mode}`);
    });
    const random = mulberry32(2026);
    for (let i = 0; i < 12; i++) {
      const config = normalizeConfig(randomValidConfig(random, { maxElements: 3000 }));
      const inputs = randomInputs(random, config);
      test(`random config #${i} ${JSON.stringify(toInput(config))}`, async () => {
        for (const mode of MODES) {
          const { produced, expected } = await runOnEngine(engine(), config, inputs, mode);
          expectAllClose(produced, expected, `random #${i} ${mode}`);
        }
      });
    }
  });

  describe(`${name}: mode relations`, () => {
    const rng = mulberry32(99);
    const configs = [GENERAL_CONFIGS['groups 3'], GENERAL_CONFIGS['dilation [2,3] stride [2,1] groups 2'],
      randomValidConfig(rng), randomValidConfig(rng)].map((c) => normalizeConfig(c));

    test.each(configs.map((c, i) => [i, c] as const))('tune equals eval, output and every gradient (#%s)', async (_, config) => {
      const inputs = randomInputs(rng, config);
      const tune = (await runOnEngine(engine(), config, inputs, 'tune')).produced;
      const evalOut = (await runOnEngine(engine(), config, inputs, 'eval')).produced;
      expect(Object.keys(tune).sort()).toEqual(Object.keys(evalOut).sort());
      for (const key of Object.keys(evalOut)) {
        expect(relativeError(tune[key], evalOut[key]), key).toBeLessThanOrEqual(TOLERANCE);
      }
    });

    test.each(configs.map((c, i) => [i, c] as const))('train with recompute equals train without (#%s)', async (_, config) => {
      const inputs = randomInputs(rng, config);
      const { x, grad_y, running_mean, running_var, ...rest } = inputs;
      const params = {
        weight: Float32Array.from(rest.weight), bias: rest.bias ? Float32Array.from(rest.bias) : undefined,
        gamma: Float32Array.from(rest.gamma), beta: Float32Array.from(rest.beta),
        runningMean: Float32Array.from(running_mean), runningVar: Float32Array.from(running_var),
      };
      const results = [];
      for (const recompute of [false, true]) {
        const layer = engine().createLayer(config, params, { recompute });
        const y = await layer.forward(Float32Array.from(x), 'train');
        const held = layer.memory().heldForBackwardBytes;
        const grads = await layer.backward(Float32Array.from(grad_y));
        const after = await layer.getParameters();
        layer.destroy();
        results.push({ y, grads, after, held });
      }
      const [plain, recomputed] = results;
      // The same kernels recompute the same z: identical bits.
      expect(recomputed.y).toEqual(plain.y);
      for (const key of ['gradX', 'gradWeight', 'gradBias', 'gradGamma', 'gradBeta'] as const) {
        expect(recomputed.grads[key], key).toEqual(plain.grads[key]);
      }
      expect(recomputed.after.runningVar).toEqual(plain.after.runningVar);
      // Recompute keeps x (and per-channel stats) only: strictly less than x + z.
      expect(recomputed.held).toBeLessThan(plain.held);
    });

    test.each(configs.map((c, i) => [i, c] as const))('deploy gradients are the tune gradients in folded form (#%s)', async (_, config) => {
      const inputs = randomInputs(rng, config);
      const tune = (await runOnEngine(engine(), config, inputs, 'tune')).produced;
      const deploy = (await runOnEngine(engine(), config, inputs, 'deploy')).produced;
      expect(relativeError(deploy.y, tune.y)).toBeLessThanOrEqual(TOLERANCE);
      expect(relativeError(deploy.grad_x, tune.grad_x)).toBeLessThanOrEqual(TOLERANCE);
      // gW = s * gW' per output channel; gbeta = gb'.
      const perOut = tensorSizes(config).weight / config.Cout;
      const scaled = new Float64Array(deploy.grad_folded_weight.length);
      for (let o = 0; o < config.Cout; o++) {
        const s = inputs.gamma[o] / Math.sqrt(inputs.running_var[o] + config.eps);
        for (let k = 0; k < perOut; k++) scaled[o * perOut + k] = s * deploy.grad_folded_weight[o * perOut + k];
      }
      expect(relativeError(scaled, tune.grad_weight)).toBeLessThanOrEqual(TOLERANCE);
      expect(relativeError(deploy.grad_folded_bias, tune.grad_beta)).toBeLessThanOrEqual(TOLERANCE);
    });

    test.each(configs.map((c, i) => [i, c] as const))('backward without gradX: the same parameter gradients, less memory (#%s)', async (_, config) => {
      const inputs = randomInputs(rng, config);
      const params = {
        weight: Float32Array.from(inputs.weight), bias: inputs.bias ? Float32Array.from(inputs.bias) : undefined,
        gamma: Float32Array.from(inputs.gamma), beta: Float32Array.from(inputs.beta),
        runningMean: Float32Array.from(inputs.running_mean), runningVar: Float32Array.from(inputs.running_var),
      };
      const x = Float32Array.from(inputs.x);
      const gradY = Float32Array.from(inputs.grad_y);
      for (const [mode, recompute] of [['train', false], ['train', true], ['eval', false], ['tune', false], ['deploy', false]] as const) {
        const run = async (inputGrad: boolean) => {
          const layer = engine().createLayer(config, params, { recompute });
          await layer.forward(x, mode);
          const grads = await layer.backward(gradY, { inputGrad });
          const peak = layer.memory().lastStepPeakBytes;
          layer.destroy();
          return { grads, peak };
        };
        const full = await run(true);
        const weightsOnly = await run(false);
        const label = `${mode}${recompute ? ' recompute' : ''}`;
        expect('gradX' in weightsOnly.grads, label).toBe(false);
        const { gradX, ...rest } = full.grads;
        expect(gradX, label).toBeInstanceOf(Float32Array);
        // The same kernels compute them, without the dgrad: identical bits.
        expect(weightsOnly.grads, label).toEqual(rest);
        expect(weightsOnly.peak, `${label}: peak step bytes`).toBeLessThan(full.peak);
      }
    });

    test('backward refuses options that are not { inputGrad: boolean }', async () => {
      const config = normalizeConfig({ N: 1, Cin: 2, Cout: 2, H: 3, W: 3, kernel: 1 });
      const inputs = randomInputs(rng, config);
      const layer = engine().createLayer(config, {
        weight: Float32Array.from(inputs.weight), bias: inputs.bias ? Float32Array.from(inputs.bias) : undefined,
        gamma: Float32Array.from(inputs.gamma), beta: Float32Array.from(inputs.beta),
        runningMean: Float32Array.from(inputs.running_mean), runningVar: Float32Array.from(inputs.running_var),
      });
      await layer.forward(Float32Array.from(inputs.x), 'tune');
      const gradY = Float32Array.from(inputs.grad_y);
      expect(() => layer.backward(gradY, { inputGrad: 'no' as never })).toThrow(/options\.inputGrad.*true or false/);
      expect(() => layer.backward(gradY, 3 as never)).toThrow(/options.*must be an object/);
      // The refused calls left the forward's saved tensors in place.
      expect((await layer.backward(gradY, { inputGrad: false })).gradWeight).toBeInstanceOf(Float32Array);
      layer.destroy();
    });

    test('NaN in x propagates where PyTorch puts it', async () => {
      const config = normalizeConfig({ N: 2, Cin: 2, Cout: 3, H: 6, W: 6, kernel: 3, padding: 1 });
      const inputs = randomInputs(rng, config);
      const x = Float64Array.from(inputs.x);
      x[7] = NaN;
      for (const mode of ['tune', 'eval', 'train'] as Mode[]) {
        const expected = referenceCase(config, { ...inputs, x }, mode).y;
        const layer = engine().createLayer(config, {
          weight: Float32Array.from(inputs.weight), bias: inputs.bias ? Float32Array.from(inputs.bias) : undefined,
          gamma: Float32Array.from(inputs.gamma), beta: Float32Array.from(inputs.beta),
          runningMean: Float32Array.from(inputs.running_mean), runningVar: Float32Array.from(inputs.running_var),
        });
        const y = await layer.forward(Float32Array.from(x), mode, { requiresGrad: false });
        layer.destroy();
        const nanOut = Array.from(y, Number.isNaN);
        const nanRef = Array.from(expected, Number.isNaN);
        expect(nanOut, mode).toEqual(nanRef);
        expect(nanRef.some(Boolean)).toBe(true);
        if (mode !== 'train') expect(nanRef.every(Boolean)).toBe(false);
      }
    });
  });

  describe(`${name}: parameters`, () => {
    test('updateParameters replaces what it names and keeps the running stats train mode updated', async () => {
      const config = normalizeConfig({ N: 2, Cin: 3, Cout: 4, H: 5, W: 5, kernel: 3, padding: 1, momentum: 0.5 });
      const rng = mulberry32(21);
      const inputs = randomInputs(rng, config);
      const layer = engine().createLayer(config, {
        weight: Float32Array.from(inputs.weight), bias: Float32Array.from(inputs.bias ?? new Float32Array(4)),
        gamma: Float32Array.from(inputs.gamma), beta: Float32Array.from(inputs.beta),
        runningMean: Float32Array.from(inputs.running_mean), runningVar: Float32Array.from(inputs.running_var),
      });
      await layer.forward(Float32Array.from(inputs.x), 'train');
      await layer.backward(Float32Array.from(inputs.grad_y));
      const afterTrain = await layer.getParameters();
      const expected = referenceCase(config, inputs, 'train');
      expect(relativeError(afterTrain.runningVar, expected.running_var)).toBeLessThanOrEqual(TOLERANCE);
      const weight = randomTensor(rng, tensorSizes(config).weight);
      layer.updateParameters({ weight });
      const now = await layer.getParameters();
      expect(now.weight).toEqual(weight);
      expect(now.runningMean).toEqual(afterTrain.runningMean);
      expect(now.runningVar).toEqual(afterTrain.runningVar);
      expect(now.gamma).toEqual(afterTrain.gamma);
      expect(() => layer.updateParameters({ weights: weight } as never)).toThrow(ConvBNInputError);
      expect(() => layer.updateParameters({ gamma: new Float32Array(3) })).toThrow(/gamma\.length/);
      layer.destroy();
    });
  });

  describe(`${name}: bad input gets a clear error`, () => {
    const config = normalizeConfig({ N: 2, Cin: 2, Cout: 2, H: 5, W: 5, kernel: 3, padding: 1 });
    const rng = mulberry32(5);
    const inputs = randomInputs(rng, config);
    const params = () => ({
      weight: Float32Array.from(inputs.weight), bias: Float32Array.from(inputs.bias ?? [0, 0]),
      gamma: Float32Array.from(inputs.gamma), beta: Float32Array.from(inputs.beta),
      runningMean: Float32Array.from(inputs.running_mean), runningVar: Float32Array.from([1, 1]),
    });

    /** Thrown synchronously or as a rejection: either way before any GPU/WASM work. */
    const expectInputError = async (fn: () => unknown, field: RegExp) => {
      let thrown: unknown;
      try {
        await fn();
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(ConvBNInputError);
      expect((thrown as ConvBNInputError).field).toMatch(field);
    };

    test.each([
      ['groups not dividing Cin', { ...toInput(config), groups: 3 }, /^groups$/],
      ['kernel 0', { ...toInput(config), kernel: 0 }, /^kernel$/],
      ['stride 0', { ...toInput(config), stride: [1, 0] }, /^stride\[1\]$/],
      ['dilation -1', { ...toInput(config), dilation: -1 }, /^dilation$/],
      ['negative padding', { ...toInput(config), padding: [0, -1, 0, 0] }, /^padding\[1\]/],
      ['eps 0', { ...toInput(config), eps: 0 }, /^eps$/],
      ['N 1.5', { ...toInput(config), N: 1.5 }, /^N$/],
      ['output size 0', { ...toInput(config), kernel: 9, padding: 0 }, /^output height$/],
    ] as const)('config: %s', async (_, bad, field) => {
      await expectInputError(() => engine().createLayer(bad as ConvBNConfigInput, params()), field);
    });

    test.each([
      ['weight length', (p: ReturnType<typeof params>) => ({ ...p, weight: new Float32Array(3) }), /^weight\.length$/],
      ['weight type', (p: ReturnType<typeof params>) => ({ ...p, weight: Float64Array.from(p.weight) }), /^weight$/],
      ['NaN in gamma', (p: ReturnType<typeof params>) => ({ ...p, gamma: Float32Array.from([NaN, 1]) }), /^gamma\[0\]$/],
      ['infinity in running mean', (p: ReturnType<typeof params>) => ({ ...p, runningMean: Float32Array.from([0, Infinity]) }), /^runningMean\[1\]$/],
      ['NaN in running var', (p: ReturnType<typeof params>) => ({ ...p, runningVar: Float32Array.from([NaN, 1]) }), /^runningVar\[0\]$/],
      ['var + eps <= 0', (p: ReturnType<typeof params>) => ({ ...p, runningVar: Float32Array.from([1, -1]) }), /^runningVar\[1\] \+ eps$/],
      ['missing bias', (p: ReturnType<typeof params>) => ({ ...p, bias: undefined }), /^bias$/],
    ] as const)('params: %s', async (_, mutate, field) => {
      await expectInputError(() => engine().createLayer(config, mutate(params()) as never), field);
    });

    test('inputs: wrong x length, wrong gradY length, bad mode, backward before forward', async () => {
      const layer = engine().createLayer(config, params());
      await expectInputError(() => layer.forward(new Float32Array(7), 'tune'), /^x\.length$/);
      await expectInputError(() => layer.forward(Float32Array.from(inputs.x), 'training' as Mode), /^mode$/);
      await expect(layer.backward(Float32Array.from(inputs.grad_y))).rejects.toBeInstanceOf(ConvBNInputError);
      await layer.forward(Float32Array.from(inputs.x), 'tune');
      await expectInputError(() => layer.backward(new Float32Array(3)), /^gradY\.length$/);
      layer.destroy();
    });

    test('train mode with one value per channel is refused (no unbiased variance)', async () => {
      const single = normalizeConfig({ N: 1, Cin: 1, Cout: 1, H: 1, W: 1, kernel: 1 });
      const layer = engine().createLayer(single, {
        weight: new Float32Array([1]), bias: new Float32Array([0]), gamma: new Float32Array([1]),
        beta: new Float32Array([0]), runningMean: new Float32Array([0]), runningVar: new Float32Array([1]),
      });
      await expectInputError(() => layer.forward(new Float32Array([1]), 'train'), /N \* Hout \* Wout/);
      layer.destroy();
    });
  });
}
