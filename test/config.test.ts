/** normalizeConfig: every padding form, every refusal, and the cache key. */
import { describe, expect, test } from 'vitest';
import {
  configKey, normalizeConfig, outputShape, toConfig, toInput,
  type ConvBNConfig, type ConvBNConfigInput,
} from '../codegen/config.js';
import { ConvBNInputError } from '../codegen/errors.js';
import { mulberry32, randomValidConfig } from './helpers/random.js';

const base: ConvBNConfigInput = { N: 2, Cin: 4, Cout: 6, H: 9, W: 7, kernel: 3 };

const pads = (c: ConvBNConfig): number[] => [c.padTop, c.padBottom, c.padLeft, c.padRight];

describe('padding forms', () => {
  test("'same' with stride 1 is PyTorch's: total d*(k-1), the odd unit at the bottom/right, output = input", () => {
    for (let k = 1; k <= 6; k++) {
      for (let d = 1; d <= 3; d++) {
        for (const H of [1, 4, 7]) {
          const c = normalizeConfig({ ...base, H, W: H + 2, kernel: [k, k + 1], dilation: [d, d], padding: 'same' });
          const totalH = d * (k - 1);
          const totalW = d * k;
          // torch.nn.functional.conv2d(padding='same'): left = total // 2, right = total - left.
          expect(pads(c)).toEqual([
            Math.floor(totalH / 2), totalH - Math.floor(totalH / 2),
            Math.floor(totalW / 2), totalW - Math.floor(totalW / 2),
          ]);
          expect(outputShape(c)).toEqual({ N: 2, C: 6, H, W: H + 2 });
        }
      }
    }
  });

  test("'same' with stride 2 gives ceil(size / 2), extra padding at the bottom/right", () => {
    for (let size = 1; size <= 12; size++) {
      for (const k of [1, 2, 3, 4, 5]) {
        const c = normalizeConfig({ ...base, H: size, W: size + 1, kernel: k, stride: 2, padding: 'same' });
        const out = outputShape(c);
        expect(out.H).toBe(Math.ceil(size / 2));
        expect(out.W).toBe(Math.ceil((size + 1) / 2));
        expect(c.padBottom - c.padTop).toBeGreaterThanOrEqual(0);
        expect(c.padBottom - c.padTop).toBeLessThanOrEqual(1);
        expect(c.padRight - c.padLeft).toBeGreaterThanOrEqual(0);
        expect(c.padRight - c.padLeft).toBeLessThanOrEqual(1);
      }
    }
    // A worked case: H = 8, k = 3, s = 2 needs (4 - 1) * 2 + 3 - 8 = 1 row, all of it at the bottom.
    expect(pads(normalizeConfig({ ...base, H: 8, W: 8, kernel: 3, stride: 2, padding: 'same' }))).toEqual([0, 1, 0, 1]);
  });

  test("'valid' and omitted padding mean none", () => {
    expect(pads(normalizeConfig({ ...base, padding: 'valid' }))).toEqual([0, 0, 0, 0]);
    expect(pads(normalizeConfig(base))).toEqual([0, 0, 0, 0]);
    expect(outputShape(normalizeConfig({ ...base, padding: 'valid' }))).toEqual({ N: 2, C: 6, H: 7, W: 5 });
  });

  test('one number, [pH, pW] and [top, bottom, left, right]', () => {
    expect(pads(normalizeConfig({ ...base, padding: 2 }))).toEqual([2, 2, 2, 2]);
    expect(pads(normalizeConfig({ ...base, padding: [1, 3] }))).toEqual([1, 1, 3, 3]);
    const c = normalizeConfig({ ...base, padding: [0, 2, 3, 1] });
    expect(pads(c)).toEqual([0, 2, 3, 1]);
    // (9 + 0 + 2 - 3) / 1 + 1 = 9; (7 + 3 + 1 - 3) + 1 = 9
    expect(outputShape(c)).toEqual({ N: 2, C: 6, H: 9, W: 9 });
  });

  test('defaults and pairs', () => {
    const c = normalizeConfig({ ...base, kernel: [3, 1], stride: [2, 1], dilation: [1, 2] });
    expect(c).toMatchObject({
      kH: 3, kW: 1, strideH: 2, strideW: 1, dilationH: 1, dilationW: 2,
      groups: 1, bias: true, eps: 1e-5, momentum: 0.1, layout: 'NCHW',
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(toConfig(c)).toBe(c);
    expect(normalizeConfig(toInput(c))).toEqual(c);
  });

  test('random valid configs survive toInput and back', () => {
    const rng = mulberry32(3);
    for (let i = 0; i < 200; i++) {
      const c = normalizeConfig(randomValidConfig(rng));
      expect(normalizeConfig(toInput(c))).toEqual(c);
    }
  });
});

describe('refusals name the field and the allowed range', () => {
  function refusal(input: unknown): ConvBNInputError {
    try {
      normalizeConfig(input as ConvBNConfigInput);
    } catch (error) {
      expect(error).toBeInstanceOf(ConvBNInputError);
      return error as ConvBNInputError;
    }
    throw new Error(`accepted ${JSON.stringify(input)}`);
  }

  const positiveRange = /\[1, 2147483647\]/;
  const cases: [string, Partial<Record<keyof ConvBNConfigInput | 'strides', unknown>>, string, RegExp][] = [];
  for (const field of ['N', 'Cin', 'Cout', 'H', 'W'] as const) {
    for (const bad of [0, -1, 1.5, Number.NaN, '4', undefined]) cases.push([`${field} = ${String(bad)}`, { [field]: bad }, field, positiveRange]);
  }
  for (const field of ['kernel', 'stride', 'dilation'] as const) {
    cases.push([`${field} = 0`, { [field]: 0 }, field, positiveRange]);
    cases.push([`${field} = 2.5`, { [field]: 2.5 }, field, positiveRange]);
    cases.push([`${field} = [1, 0]`, { [field]: [1, 0] }, `${field}[1]`, positiveRange]);
    cases.push([`${field} = [0, 1]`, { [field]: [0, 1] }, `${field}[0]`, positiveRange]);
    cases.push([`${field} = [1, 1, 1]`, { [field]: [1, 1, 1] }, field, /integer >= 1 or a pair/]);
  }
  cases.push(['kernel missing', { kernel: undefined }, 'kernel', /integer >= 1 or a pair/]);
  const nonNegative = /\[0, 2147483647\]/;
  cases.push(['padding = -1', { padding: -1 }, 'padding', nonNegative]);
  cases.push(['padding = [1, -1]', { padding: [1, -1] }, 'padding[1]', nonNegative]);
  cases.push(['padding top = -1', { padding: [-1, 0, 0, 0] }, 'padding[0] (top)', nonNegative]);
  cases.push(['padding bottom = 0.5', { padding: [0, 0.5, 0, 0] }, 'padding[1] (bottom)', nonNegative]);
  cases.push(['padding left = -2', { padding: [0, 0, -2, 0] }, 'padding[2] (left)', nonNegative]);
  cases.push(['padding right = -1', { padding: [0, 0, 0, -1] }, 'padding[3] (right)', nonNegative]);
  cases.push(["padding = 'full'", { padding: 'full' }, 'padding', /'same' or 'valid'/]);
  cases.push(['padding with 3 sides', { padding: [1, 1, 1] }, 'padding', /\[top, bottom, left, right\]/]);
  cases.push(['groups not dividing Cin', { groups: 3, Cin: 4, Cout: 6 }, 'groups', /divide Cin = 4/]);
  cases.push(['groups not dividing Cout', { groups: 2, Cin: 4, Cout: 5 }, 'groups', /divide Cout = 5/]);
  cases.push(['groups = 0', { groups: 0 }, 'groups', positiveRange]);
  // Kernels add eps in float32: it must be a normal float32 > 0 (subnormals and 1e-50 would vanish).
  for (const bad of [0, -1e-5, Number.NaN, Number.POSITIVE_INFINITY, '1e-5', Number.MIN_VALUE, 1e-40, 1e39]) {
    cases.push([`eps = ${String(bad)}`, { eps: bad }, 'eps', /normal float32 > 0/]);
  }
  for (const bad of [-0.1, 1.1, Number.NaN, Number.POSITIVE_INFINITY, '0.1']) {
    cases.push([`momentum = ${String(bad)}`, { momentum: bad }, 'momentum', /\[0, 1\]/]);
  }
  cases.push(['bias = 1', { bias: 1 }, 'bias', /true or false/]);
  for (const bad of ['nhwc', 'CHW', 1]) cases.push([`layout = ${String(bad)}`, { layout: bad }, 'layout', /'NCHW', 'NHWC'/]);
  cases.push(['unknown field', { strides: 2 }, 'strides', /allowed fields: N, Cin, Cout, H, W, kernel, stride, padding/]);
  cases.push(['output height < 1', { H: 2, kernel: [3, 1] }, 'output height', />= 1/]);
  cases.push(['output width < 1 (dilation)', { W: 4, kernel: [1, 3], dilation: [1, 2] }, 'output width', />= 1/]);
  cases.push(['too many elements', { N: 2 ** 16, Cin: 2 ** 16, H: 3, W: 3 }, 'x elements', /2147483647/]);

  test.each(cases)('%s', (_name, change, field, allowed) => {
    const error = refusal({ ...base, ...change });
    expect(error.field).toBe(field);
    expect(error.allowed).toMatch(allowed);
    expect(error.message).toContain(field);
    expect(error.message).toContain(error.allowed);
  });

  test('a non-object config', () => {
    expect(refusal(null).field).toBe('config');
    expect(refusal(3).field).toBe('config');
  });

  test('boundaries that are allowed', () => {
    expect(normalizeConfig({ ...base, momentum: 0 }).momentum).toBe(0);
    expect(normalizeConfig({ ...base, momentum: 1 }).momentum).toBe(1);
    expect(normalizeConfig({ ...base, eps: 2 ** -126 }).eps).toBe(2 ** -126); // smallest normal float32
    expect(outputShape(normalizeConfig({ ...base, H: 3, W: 3 }))).toMatchObject({ H: 1, W: 1 });
    // Depthwise with a multiplier: groups = Cin, Cout = 3 * Cin.
    expect(normalizeConfig({ ...base, Cin: 4, Cout: 12, groups: 4 }).groups).toBe(4);
  });
});

describe('configKey', () => {
  const full: ConvBNConfigInput = {
    N: 2, Cin: 4, Cout: 6, H: 9, W: 7, kernel: [3, 3], stride: [1, 1], padding: [1, 1, 1, 1],
    dilation: [1, 1], groups: 1, bias: true, eps: 1e-5, momentum: 0.1, layout: 'NCHW',
  };

  test('equal for equal configs, whatever input form they came from', () => {
    const key = configKey(normalizeConfig(full));
    expect(configKey(normalizeConfig({ N: 2, Cin: 4, Cout: 6, H: 9, W: 7, kernel: 3, padding: 1 }))).toBe(key);
    expect(configKey(normalizeConfig({ ...full, padding: [1, 1] }))).toBe(key);
    expect(configKey(normalizeConfig({ ...full, padding: 'same' }))).toBe(key);
    expect(configKey(normalizeConfig(toInput(normalizeConfig(full))))).toBe(key);
  });

  // One change per normalised field.
  const variants: [string, Partial<ConvBNConfigInput>][] = [
    ['N', { N: 3 }], ['Cin', { Cin: 2 }], ['Cout', { Cout: 4 }], ['H', { H: 10 }], ['W', { W: 8 }],
    ['kH', { kernel: [5, 3], padding: [1, 1, 1, 1] }], ['kW', { kernel: [3, 1] }],
    ['strideH', { stride: [2, 1] }], ['strideW', { stride: [1, 2] }],
    ['padTop', { padding: [0, 1, 1, 1] }], ['padBottom', { padding: [1, 0, 1, 1] }],
    ['padLeft', { padding: [1, 1, 0, 1] }], ['padRight', { padding: [1, 1, 1, 0] }],
    ['dilationH', { dilation: [2, 1] }], ['dilationW', { dilation: [1, 2] }],
    ['groups', { groups: 2 }], ['bias', { bias: false }],
    ['eps', { eps: 1.0000001e-5 }], ['momentum', { momentum: 0.01 }], ['paddingMode', { paddingMode: 'reflect' }],
    ['layout', { layout: 'NHWC' }],
  ];

  test('every normalised field is covered by a variant', () => {
    const fields = Object.keys(normalizeConfig(full)).sort();
    expect(variants.map(([f]) => f).sort()).toEqual(fields);
  });

  test.each(variants)('differs when %s differs', (field, change) => {
    const a = normalizeConfig(full);
    const b = normalizeConfig({ ...full, ...change });
    expect(b[field as keyof ConvBNConfig]).not.toBe(a[field as keyof ConvBNConfig]);
    expect(configKey(b)).not.toBe(configKey(a));
  });

  test('distinct random configs give distinct keys', () => {
    const rng = mulberry32(11);
    const byKey = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const c = normalizeConfig(randomValidConfig(rng));
      const json = JSON.stringify(c);
      const key = configKey(c);
      if (byKey.has(key)) expect(byKey.get(key)).toBe(json);
      byKey.set(key, json);
    }
    expect(byKey.size).toBeGreaterThan(250);
  });
});
