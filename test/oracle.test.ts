/**
 * The float64 oracle (test/oracle/reference.ts) against PyTorch's vectors,
 * against finite differences, and against independent restatements of the
 * conv (explicit zero padding, per-group slices, zero-dilated kernels).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import {
  MODES, normalizeConfig, outputShape, tensorSizes, toInput,
  type ConvBNConfig, type ConvBNConfigInput, type Mode,
} from '../codegen/config.js';
import { ConvBNInputError } from '../codegen/errors.js';
import { expectedModeKeys, loadCase, loadCaseDir, parseCase } from '../runtime/check/cases.js';
import { relativeError, RMS_FLOOR, TOLERANCE } from '../runtime/check/compare.js';
import { foldParams } from '../runtime/validate.js';
import { mulberry32, randomInt, randomParams, randomTensor, randomValidConfig, type Rng } from './helpers/random.js';
import { dotY, finiteDifference } from './helpers/finite-difference.js';
import { makeCase } from './oracle/makeCase.js';
import {
  conv2d, conv2dBackwardInput, conv2dBackwardWeight, referenceCase, toCaseInputs,
  type CaseInputs, type Tensors,
} from './oracle/reference.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const vectorsDir = process.env.CONVBN_VECTORS ?? path.resolve(repoRoot, '../shared/vectors');

/** Random inputs for `config` in the oracle's (snake_case) naming. */
function randomInputs(rng: Rng, config: ConvBNConfig): CaseInputs {
  const p = randomParams(rng, config);
  const sizes = tensorSizes(config);
  return {
    x: randomTensor(rng, sizes.x), weight: p.weight, bias: p.bias, gamma: p.gamma, beta: p.beta,
    running_mean: p.runningMean, running_var: p.runningVar, grad_y: randomTensor(rng, sizes.y),
  };
}

function randomCases(seed: number, count: number, maxElements = 5000): { config: ConvBNConfig; inputs: CaseInputs }[] {
  const rng = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const config = normalizeConfig(randomValidConfig(rng, { maxElements }));
    return { config, inputs: randomInputs(rng, config) };
  });
}

const describeConfig = (c: ConvBNConfig): string => JSON.stringify(toInput(c));

// ---------------------------------------------------------------------------

describe('oracle vs PyTorch vectors', async () => {
  const cases = await loadCaseDir(vectorsDir);

  test('the vector set is complete', () => {
    if (!process.env.CONVBN_VECTORS) expect(cases.length).toBe(40);
    expect(cases.length).toBeGreaterThan(0);
    for (const c of cases) expect(Object.keys(c.modes).sort()).toEqual([...MODES].sort());
  });

  // The files print 9 significant digits, so a perfect float64 result differs from
  // each stored value by up to half a unit in the 9th digit: 5e-9 relative per
  // element, and so at most 5e-9 in relativeError (typically 1e-9 to 3e-9). That
  // rounding is the whole budget: every element must lie within it.
  const PRINT_ROUNDING = 5e-9 * (1 + 1e-6);

  test.each(cases.map((c) => [c.id, c] as const))('%s: every tensor of every mode, to the 9 printed digits', (_id, c) => {
    for (const mode of MODES) {
      const expected = c.modes[mode];
      if (!expected) continue;
      const actual = referenceCase(c.config, toCaseInputs(c.inputs), mode);
      expect(Object.keys(actual)).toEqual(Object.keys(expected));
      for (const [key, want] of Object.entries(expected)) {
        const label = `${c.id} ${mode}.${key}`;
        if (mode === 'train' && key === 'grad_bias') {
          // Analytically zero: both sides hold only float64 rounding noise (the file's worst is ~6e-14).
          expect(maxAbs(actual[key]), label).toBeLessThan(1e-12);
          expect(maxAbs(want), `${label} (file)`).toBeLessThan(1e-12);
          continue;
        }
        expect(relativeError(actual[key], want), label).toBeLessThanOrEqual(PRINT_ROUNDING);
        expect(worstElementError(actual[key], want), label).toBeLessThanOrEqual(PRINT_ROUNDING);
      }
    }
  });
});

/** max_i |a_i - b_i| / max(|a_i|, |b_i|) (0 where both are 0). */
function worstElementError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const scale = Math.max(Math.abs(a[i]), Math.abs(b[i]));
    if (scale > 0) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  }
  return worst;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

// ---------------------------------------------------------------------------
// Independent restatements of the conv: exact up to summation order.

/** x zero-padded explicitly by the config's four paddings, as a plain [N, Cin, H', W'] tensor. */
function padInput(c: ConvBNConfig, x: ArrayLike<number>): { config: ConvBNConfig; x: Float64Array } {
  const Hp = c.H + c.padTop + c.padBottom;
  const Wp = c.W + c.padLeft + c.padRight;
  const padded = new Float64Array(c.N * c.Cin * Hp * Wp);
  for (let nc = 0; nc < c.N * c.Cin; nc++) {
    for (let h = 0; h < c.H; h++) {
      for (let w = 0; w < c.W; w++) {
        padded[(nc * Hp + h + c.padTop) * Wp + w + c.padLeft] = x[(nc * c.H + h) * c.W + w];
      }
    }
  }
  const config = normalizeConfig({ ...toInput(c), H: Hp, W: Wp, padding: 0 });
  return { config, x: padded };
}

describe('conv2d restated', () => {
  const cases = randomCases(101, 40, 3000);

  test('asymmetric padding equals explicit zero padding then a valid conv', () => {
    let asymmetric = 0;
    for (const { config, inputs } of cases) {
      if (config.padTop !== config.padBottom || config.padLeft !== config.padRight) asymmetric++;
      const padded = padInput(config, inputs.x);
      expect(outputShape(padded.config)).toEqual(outputShape(config));
      const want = conv2d(padded.config, padded.x, inputs.weight, inputs.bias);
      expect(relativeError(conv2d(config, inputs.x, inputs.weight, inputs.bias), want), describeConfig(config)).toBeLessThan(1e-14);
    }
    expect(asymmetric).toBeGreaterThan(10);
  });

  test('a grouped conv equals one groups=1 conv per group on channel slices', () => {
    let grouped = 0;
    for (const { config, inputs } of cases) {
      if (config.groups === 1) continue;
      grouped++;
      const y = conv2d(config, inputs.x, inputs.weight);
      const cinG = config.Cin / config.groups;
      const coutG = config.Cout / config.groups;
      const sliceConfig = normalizeConfig({ ...toInput(config), Cin: cinG, Cout: coutG, groups: 1 });
      const plane = outputShape(config).H * outputShape(config).W;
      for (let g = 0; g < config.groups; g++) {
        const xs = new Float64Array(config.N * cinG * config.H * config.W);
        const hw = config.H * config.W;
        for (let n = 0; n < config.N; n++) {
          for (let ci = 0; ci < cinG * hw; ci++) xs[n * cinG * hw + ci] = inputs.x[(n * config.Cin + g * cinG) * hw + ci];
        }
        const perOut = cinG * config.kH * config.kW;
        const ws = Array.from(inputs.weight).slice(g * coutG * perOut, (g + 1) * coutG * perOut);
        const ys = conv2d(sliceConfig, xs, ws);
        for (let n = 0; n < config.N; n++) {
          for (let k = 0; k < coutG * plane; k++) {
            expect(y[(n * config.Cout + g * coutG) * plane + k]).toBe(ys[n * coutG * plane + k]);
          }
        }
      }
    }
    expect(grouped).toBeGreaterThan(10);
  });

  test('dilation equals an undilated conv with a zero-filled kernel', () => {
    for (const { config, inputs } of cases) {
      const kH = config.dilationH * (config.kH - 1) + 1;
      const kW = config.dilationW * (config.kW - 1) + 1;
      const wide = normalizeConfig({ ...toInput(config), kernel: [kH, kW], dilation: 1 });
      const w = new Float64Array(tensorSizes(wide).weight);
      const taps = config.kH * config.kW;
      for (let oi = 0; oi < tensorSizes(config).weight / taps; oi++) {
        for (let kh = 0; kh < config.kH; kh++) {
          for (let kw = 0; kw < config.kW; kw++) {
            w[(oi * kH + kh * config.dilationH) * kW + kw * config.dilationW] = inputs.weight[(oi * config.kH + kh) * config.kW + kw];
          }
        }
      }
      expect(relativeError(conv2d(config, inputs.x, inputs.weight), conv2d(wide, inputs.x, w)), describeConfig(config)).toBeLessThan(1e-14);
    }
  });

  test('stride equals the stride-1 output subsampled', () => {
    for (const { config, inputs } of cases) {
      const dense = normalizeConfig({ ...toInput(config), stride: 1 });
      const yd = conv2d(dense, inputs.x, inputs.weight);
      const ys = conv2d(config, inputs.x, inputs.weight);
      const out = outputShape(config);
      const outD = outputShape(dense);
      for (let nc = 0; nc < config.N * config.Cout; nc++) {
        for (let oh = 0; oh < out.H; oh++) {
          for (let ow = 0; ow < out.W; ow++) {
            const want = yd[(nc * outD.H + oh * config.strideH) * outD.W + ow * config.strideW];
            expect(ys[(nc * out.H + oh) * out.W + ow]).toBe(want);
          }
        }
      }
    }
  });

  test('a hand-computed conv with asymmetric padding and stride', () => {
    // x = 1..9 in a 3x3, kernel [[1, 10], [100, 1000]], padding top 1, bottom 0, left 0, right 1, stride [1, 2].
    const config = normalizeConfig({ N: 1, Cin: 1, Cout: 1, H: 3, W: 3, kernel: 2, stride: [1, 2], padding: [1, 0, 0, 1], bias: true });
    expect(outputShape(config)).toEqual({ N: 1, C: 1, H: 3, W: 2 });
    const y = conv2d(config, [1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 10, 100, 1000], [0.5]);
    // Row -1 is padding; column 3 is padding.
    expect(Array.from(y)).toEqual([
      100 * 1 + 1000 * 2 + 0.5, 100 * 3 + 0.5,
      1 + 10 * 2 + 100 * 4 + 1000 * 5 + 0.5, 3 + 100 * 6 + 0.5,
      4 + 10 * 5 + 100 * 7 + 1000 * 8 + 0.5, 6 + 100 * 9 + 0.5,
    ]);
  });

  test('backward helpers are the adjoints of conv2d: <conv(x), dy> = <x, dgrad(dy)> = <W, wgrad(x, dy)>', () => {
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
      let s = 0;
      for (let i = 0; i < a.length; i++) s += a[i] * b[i];
      return s;
    };
    for (const { config, inputs } of cases) {
      const lhs = dot(conv2d(config, inputs.x, inputs.weight), inputs.grad_y);
      const viaX = dot(inputs.x, conv2dBackwardInput(config, inputs.grad_y, inputs.weight));
      const viaW = dot(inputs.weight, conv2dBackwardWeight(config, inputs.x, inputs.grad_y));
      const scale = Math.max(1, Math.abs(lhs));
      expect(Math.abs(viaX - lhs) / scale).toBeLessThan(1e-12);
      expect(Math.abs(viaW - lhs) / scale).toBeLessThan(1e-12);
    }
  });
});

// ---------------------------------------------------------------------------
// Finite differences of L = sum(y * grad_y) in float64.

/** ||analytic - fd|| <= tol * max(||fd||, 1): relative for real gradients, absolute for (near) zero ones. */
function expectGradientClose(label: string, analytic: ArrayLike<number>, fd: { indices: number[]; grads: number[] }): void {
  const picked = fd.indices.map((i) => analytic[i]);
  let diff2 = 0;
  let ref2 = 0;
  fd.grads.forEach((g, k) => {
    diff2 += (picked[k] - g) ** 2;
    ref2 += g * g;
  });
  expect(Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), 1), label).toBeLessThan(1e-6);
}

describe('oracle gradients vs finite differences', () => {
  // Ten small configs; the draw is checked below to cover the features.
  const cases = randomCases(1, 10, 800);

  test('the sample covers stride, asymmetric padding, dilation, groups, depthwise multiplier, bias', () => {
    const has = (f: (c: ConvBNConfig) => boolean): boolean => cases.some(({ config }) => f(config));
    expect(has((c) => c.strideH > 1 || c.strideW > 1)).toBe(true);
    expect(has((c) => c.padTop !== c.padBottom || c.padLeft !== c.padRight)).toBe(true);
    expect(has((c) => c.dilationH > 1 || c.dilationW > 1)).toBe(true);
    expect(has((c) => c.groups > 1 && c.groups < c.Cin)).toBe(true);
    expect(has((c) => c.groups === c.Cin && c.Cout > c.Cin)).toBe(true);
    expect(has((c) => c.bias)).toBe(true);
    expect(has((c) => !c.bias)).toBe(true);
  });

  const paramModes: Mode[] = ['train', 'eval', 'tune'];
  test.each(cases.flatMap(({ config, inputs }, k) => paramModes.map((mode) => [k, mode, config, inputs] as const)))(
    'case %i %s: grads of x, weight, bias, gamma, beta',
    (k, mode, config, inputs) => {
      const rng = mulberry32(1000 + k);
      // Mutable float64 copies the loss reads through.
      const p = {
        x: Float64Array.from(inputs.x), weight: Float64Array.from(inputs.weight),
        bias: inputs.bias ? Float64Array.from(inputs.bias) : undefined,
        gamma: Float64Array.from(inputs.gamma), beta: Float64Array.from(inputs.beta),
      };
      const current = (): CaseInputs => ({ ...inputs, ...p });
      const loss = (): number => dotY(referenceCase(config, current(), mode).y, inputs.grad_y);
      const grads = referenceCase(config, current(), mode);
      const label = `${mode} ${describeConfig(config)}`;
      expectGradientClose(`${label} grad_x`, grads.grad_x, finiteDifference(rng, p.x, loss));
      expectGradientClose(`${label} grad_weight`, grads.grad_weight, finiteDifference(rng, p.weight, loss));
      if (p.bias) expectGradientClose(`${label} grad_bias`, grads.grad_bias, finiteDifference(rng, p.bias, loss));
      else expect(grads.grad_bias).toBeUndefined();
      expectGradientClose(`${label} grad_gamma`, grads.grad_gamma, finiteDifference(rng, p.gamma, loss));
      expectGradientClose(`${label} grad_beta`, grads.grad_beta, finiteDifference(rng, p.beta, loss));
    },
  );

  test.each(cases.map(({ config, inputs }, k) => [k, config, inputs] as const))(
    'case %i deploy: grads of x, folded weight, folded bias',
    (k, config, inputs) => {
      const rng = mulberry32(2000 + k);
      const ref = referenceCase(config, inputs, 'deploy');
      const x = Float64Array.from(inputs.x);
      const w = Float64Array.from(ref.folded_weight);
      const b = Float64Array.from(ref.folded_bias);
      const loss = (): number => dotY(conv2d(config, x, w, b), inputs.grad_y);
      expect(relativeError(conv2d(config, x, w, b), ref.y)).toBeLessThan(1e-15);
      const label = `deploy ${describeConfig(config)}`;
      expectGradientClose(`${label} grad_x`, ref.grad_x, finiteDifference(rng, x, loss));
      expectGradientClose(`${label} grad_folded_weight`, ref.grad_folded_weight, finiteDifference(rng, w, loss));
      expectGradientClose(`${label} grad_folded_bias`, ref.grad_folded_bias, finiteDifference(rng, b, loss));
    },
  );

  test('train: running statistics follow the momentum update with the unbiased variance', () => {
    for (const { config, inputs } of cases) {
      const ref = referenceCase(config, inputs, 'train');
      const z = conv2d(config, inputs.x, inputs.weight, inputs.bias);
      const out = outputShape(config);
      const plane = out.H * out.W;
      const count = config.N * plane;
      for (let o = 0; o < config.Cout; o++) {
        const values: number[] = [];
        for (let n = 0; n < config.N; n++) for (let k = 0; k < plane; k++) values.push(z[(n * config.Cout + o) * plane + k]);
        const mean = values.reduce((a, v) => a + v, 0) / count;
        const unbiased = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (count - 1);
        const m = config.momentum;
        expect(ref.running_mean[o]).toBeCloseTo((1 - m) * inputs.running_mean[o] + m * mean, 12);
        expect(ref.running_var[o]).toBeCloseTo((1 - m) * inputs.running_var[o] + m * unbiased, 12);
      }
    }
  });
});

// ---------------------------------------------------------------------------

describe('mode relations', () => {
  const cases = randomCases(23, 25);

  test('some draws have zero gamma channels', () => {
    expect(cases.some(({ inputs }) => Array.from(inputs.gamma).includes(0))).toBe(true);
  });

  test('tune equals eval: same function, same gradients', () => {
    for (const { config, inputs } of cases) {
      const tune = referenceCase(config, inputs, 'tune');
      const evalOut = referenceCase(config, inputs, 'eval');
      expect(Object.keys(tune)).toEqual(Object.keys(evalOut));
      for (const key of Object.keys(evalOut)) {
        expect(relativeError(tune[key], evalOut[key]), `${key} ${describeConfig(config)}`).toBeLessThan(1e-12);
      }
    }
  });

  test('deploy: the float32-stored fold of the tune function; folded gradients are the tune gradients before the chain rule', () => {
    for (const { config, inputs } of cases) {
      const deploy = referenceCase(config, inputs, 'deploy');
      const tune = referenceCase(config, inputs, 'tune');
      const label = describeConfig(config);
      const perOut = tensorSizes(config).weight / config.Cout;
      for (let o = 0; o < config.Cout; o++) {
        const s = inputs.gamma[o] / Math.sqrt(inputs.running_var[o] + config.eps);
        for (let k = 0; k < perOut; k++) {
          expect(deploy.folded_weight[o * perOut + k]).toBe(Math.fround(inputs.weight[o * perOut + k] * s));
        }
        const b = inputs.bias ? inputs.bias[o] : 0;
        expect(deploy.folded_bias[o]).toBe(Math.fround((b - inputs.running_mean[o]) * s + inputs.beta[o]));

        const gW = tune.grad_weight.subarray(o * perOut, (o + 1) * perOut);
        const gWFolded = deploy.grad_folded_weight.subarray(o * perOut, (o + 1) * perOut);
        if (s === 0) {
          // Zero gamma: W has no effect on y (the folded weight's gradient is checked by finite differences).
          expect(maxAbs(gW)).toBe(0);
        } else {
          expect(relativeError(gWFolded, gW.map((g) => g / s)), label).toBeLessThan(1e-12);
        }
        if (config.bias) expect(tune.grad_bias[o]).toBeCloseTo(s * deploy.grad_folded_bias[o], 12);
      }
      expect(relativeError(deploy.grad_folded_bias, tune.grad_beta), label).toBe(0);
      // y and grad_x: the function of eval/tune, up to the float32 rounding of W' and b'.
      expect(relativeError(deploy.y, conv2d(config, inputs.x, deploy.folded_weight, deploy.folded_bias))).toBe(0);
      expect(relativeError(deploy.grad_x, conv2dBackwardInput(config, inputs.grad_y, deploy.folded_weight))).toBe(0);
      expect(relativeError(deploy.y, tune.y), label).toBeLessThan(1e-6);
      expect(relativeError(deploy.grad_x, tune.grad_x), label).toBeLessThan(1e-6);
    }
  });

  test('the folded parameters match the runtime fold (validate.ts foldParams) once rounded to float32', () => {
    for (const { config, inputs } of cases) {
      const deploy = referenceCase(config, inputs, 'deploy');
      const folded = foldParams(config, {
        weight: inputs.weight as Float32Array, bias: inputs.bias as Float32Array | undefined,
        gamma: inputs.gamma as Float32Array, beta: inputs.beta as Float32Array,
        runningMean: inputs.running_mean as Float32Array, runningVar: inputs.running_var as Float32Array,
      });
      expect(folded.weight).toEqual(Float32Array.from(deploy.folded_weight));
      expect(folded.bias).toEqual(Float32Array.from(deploy.folded_bias));
    }
  });

  test('train refuses one value per channel, as PyTorch does', () => {
    const config = normalizeConfig({ N: 1, Cin: 1, Cout: 2, H: 3, W: 3, kernel: 3 });
    const inputs = randomInputs(mulberry32(5), config);
    expect(() => referenceCase(config, inputs, 'train')).toThrow(/N \* Hout \* Wout >= 2/);
    expect(referenceCase(config, inputs, 'eval').y).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------

describe('relativeError', () => {
  test('is the L2 error over the L2 norm of the reference', () => {
    expect(relativeError([1, 2, 2], [1, 2, 2])).toBe(0);
    expect(relativeError([3, 0], [3, 4])).toBeCloseTo(4 / 5, 15);
    expect(relativeError([2, 4, 4], [1, 2, 2])).toBeCloseTo(1, 15);
  });

  test('an all-zero reference is judged on absolute RMS against the floor', () => {
    expect(RMS_FLOOR).toBe(1e-6);
    expect(TOLERANCE).toBe(1e-4);
    // RMS 1e-10 noise on a zero tensor: exactly at the tolerance.
    expect(relativeError([1e-10, -1e-10, 1e-10, -1e-10], [0, 0, 0, 0])).toBeCloseTo(1e-4, 15);
    expect(relativeError([1e-3, 0], [0, 0])).toBeGreaterThan(TOLERANCE);
  });

  test('NaN and infinity never pass; lengths must match', () => {
    expect(relativeError([NaN], [1])).toBe(Infinity);
    expect(relativeError([Infinity, 0], [1, 1])).toBe(Infinity);
    expect(() => relativeError([1, 2], [1])).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------

describe('case files', () => {
  test('makeCase writes files that load back and reproduce the oracle', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'convbn-cases-'));
    try {
      const rng = mulberry32(77);
      const inputs: ConvBNConfigInput[] = [
        { N: 2, Cin: 3, Cout: 6, H: 7, W: 5, kernel: [3, 2], stride: [2, 1], padding: [2, 0, 1, 3], dilation: [1, 2], groups: 3, bias: true },
        randomValidConfig(rng, { maxElements: 1000 }),
        randomValidConfig(rng, { maxElements: 1000 }),
      ];
      const files = inputs.map((c, k) => makeCase(c, 300 + k));
      // Written in reverse so the sort in loadCaseDir is what orders them.
      for (let k = files.length - 1; k >= 0; k--) {
        await writeFile(path.join(dir, `case-${k}.json`), JSON.stringify(files[k]));
      }
      await writeFile(path.join(dir, 'notes.txt'), 'not a case');
      const loaded = await loadCaseDir(dir);
      expect(loaded.map((c) => path.basename(c.source))).toEqual(['case-0.json', 'case-1.json', 'case-2.json']);
      loaded.forEach((c, k) => {
        expect(c.id).toBe(files[k].id);
        expect(c.config).toEqual(normalizeConfig(inputs[k]));
        for (const mode of MODES) {
          expect(Object.keys(c.modes[mode] ?? {})).toEqual(expectedModeKeys(mode, c.config.bias));
          const again = referenceCase(c.config, toCaseInputs(c.inputs), mode);
          for (const [key, want] of Object.entries(c.modes[mode] ?? {})) {
            // Inputs are float32 in the file, so the outputs reproduce exactly (JSON turns -0 into 0).
            expect(relativeError(again[key], want), `${mode}.${key}`).toBe(0);
          }
        }
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('makeCase is deterministic per seed and honours the mode list', () => {
    const config: ConvBNConfigInput = { N: 1, Cin: 2, Cout: 2, H: 4, W: 4, kernel: 3, padding: 1 };
    expect(makeCase(config, 9)).toEqual(makeCase(config, 9));
    expect(makeCase(config, 9).inputs.x).not.toEqual(makeCase(config, 10).inputs.x);
    expect(Object.keys(makeCase(config, 9, ['deploy']).modes)).toEqual(['deploy']);
    for (const v of makeCase(config, 9).inputs.x) expect(Math.fround(v)).toBe(v);
  });

  describe('malformed files name the file and the field', () => {
    const good = (): Record<string, any> => JSON.parse(JSON.stringify(
      makeCase({ N: 1, Cin: 2, Cout: 2, H: 4, W: 4, kernel: 3, padding: 1, bias: true }, 4),
    ));
    const expectCaseError = (json: unknown, field: string, allowed: RegExp): void => {
      let error: unknown;
      try {
        parseCase(json, 'dir/bad.json');
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConvBNInputError);
      const e = error as ConvBNInputError;
      expect(e.field).toBe(field);
      expect(e.message).toMatch(/^dir\/bad\.json: /);
      expect(e.message).toContain(field);
      expect(e.allowed).toMatch(allowed);
    };

    test('the unmodified case parses', () => {
      const c = parseCase(good(), 'dir/good.json');
      expect(c.source).toBe('dir/good.json');
      expect(c.inputs.bias).toBeInstanceOf(Float32Array);
      expect(c.inputs.gradY).toHaveLength(32);
      expect(c.modes.train?.running_var).toBeInstanceOf(Float64Array);
    });

    test('a symmetric [pH, pW] padding reads as four equal sides', () => {
      const json = good();
      json.config.padding = [1, 1];
      const c = parseCase(json, 'dir/good.json');
      expect([c.config.padTop, c.config.padBottom, c.config.padLeft, c.config.padRight]).toEqual([1, 1, 1, 1]);
      expect(c.configInput.padding).toEqual([1, 1]);
    });

    test.each([
      ['missing input', (j: Record<string, any>) => { delete j.inputs.gamma; }, 'inputs.gamma', /missing/],
      ['missing output', (j: Record<string, any>) => { delete j.modes.eval.grad_x; }, 'modes.eval.grad_x', /missing/],
      ['missing train running stat', (j: Record<string, any>) => { delete j.modes.train.running_var; }, 'modes.train.running_var', /missing/],
      ['short input', (j: Record<string, any>) => { j.inputs.x.pop(); }, 'inputs.x.length', /32/],
      ['long output', (j: Record<string, any>) => { j.modes.deploy.folded_weight.push(0); }, 'modes.deploy.folded_weight.length', /36/],
      ['non-number', (j: Record<string, any>) => { j.inputs.weight[3] = '0.5'; }, 'inputs.weight[3]', /finite number/],
      ['null in output', (j: Record<string, any>) => { j.modes.tune.y[0] = null; }, 'modes.tune.y[0]', /finite number/],
      ['not an array', (j: Record<string, any>) => { j.inputs.beta = 1; }, 'inputs.beta', /array of 2 numbers/],
      ['beyond float32', (j: Record<string, any>) => { j.inputs.x[0] = 1e39; }, 'inputs.x[0]', /float32/],
      ['bias without config.bias', (j: Record<string, any>) => { j.config.bias = false; }, 'inputs.bias', /omitted/],
      ['grad_bias missing', (j: Record<string, any>) => { delete j.modes.train.grad_bias; }, 'modes.train.grad_bias', /missing/],
      ['unknown output', (j: Record<string, any>) => { j.modes.eval.grad_wieght = []; }, 'modes.eval.grad_wieght', /grad_weight/],
      ['unknown mode', (j: Record<string, any>) => { j.modes.infer = {}; }, 'modes.infer', /train, eval, tune, deploy/],
      ['no modes', (j: Record<string, any>) => { j.modes = {}; }, 'modes', /at least one/],
      ['unknown input', (j: Record<string, any>) => { j.inputs.mean = []; }, 'inputs.mean', /running_mean/],
      ['bad config field', (j: Record<string, any>) => { j.config.kernel = [3, 0]; }, 'config.kernel[1]', /\[1, /],
      ['unknown config field', (j: Record<string, any>) => { j.config.pad = 1; }, 'config.pad', /allowed fields/],
      ['missing config', (j: Record<string, any>) => { delete j.config; }, 'config', /object/],
      ['wrong output_shape', (j: Record<string, any>) => { j.output_shape = [1, 2, 4, 5]; }, 'output_shape', /\[1, 2, 4, 4\]/],
      ['missing id', (j: Record<string, any>) => { delete j.id; }, 'id', /string/],
    ] as const)('%s', (_name, mutate, field, allowed) => {
      const json = good();
      mutate(json);
      expectCaseError(json, field, allowed);
    });

    test('a file that is not JSON, and a directory without cases', async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'convbn-bad-'));
      try {
        await expect(loadCaseDir(dir)).rejects.toThrow(ConvBNInputError);
        const file = path.join(dir, 'broken.json');
        await writeFile(file, '{"id": ');
        await expect(loadCase(file)).rejects.toMatchObject({ name: 'ConvBNInputError', field: 'json' });
        await expect(loadCase(file)).rejects.toThrow(file);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
