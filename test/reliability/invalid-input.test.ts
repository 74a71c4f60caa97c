/**
 * Invalid input never reaches the GPU: random invalid configs and wrongly
 * sized, typed or valued inputs give a ConvBNInputError naming the field,
 * before any buffer or pipeline is made; no WebGPU error is ever raised (the
 * engine's uncaptured-error log and a validation error scope stay empty);
 * nothing hangs; and the layer still computes correctly afterwards.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { normalizeConfig, tensorSizes, toInput, type ConvBNConfig, type ConvBNConfigInput } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import type { BackendName, ConvBNLayer, ConvBNParamsInput, Engine } from '../../runtime/types.js';
import type { WebGPUEngine } from '../../runtime/webgpu/engine.js';
import { gapAware } from './gaps.js';
import { backendsUnderTest, caseInputs, configArb, judge, openEngine, produceOn, reference } from './harness.js';

/** Counts every refusal the suite checks, for RELIABILITY.md. */
const tally = { configs: 0, calls: 0 };

/** A call must refuse (synchronously or by rejecting, within 10 s) with a ConvBNInputError whose field matches. */
async function expectRefusal(call: () => unknown, field: RegExp | string): Promise<ConvBNInputError> {
  let error: unknown;
  try {
    const result = call();
    if (result instanceof Promise) {
      await Promise.race([
        result,
        new Promise((_, reject) => setTimeout(() => reject(new Error('hung: no answer in 10 s')), 10_000)),
      ]);
    }
  } catch (e) {
    error = e;
  }
  if (!(error instanceof ConvBNInputError)) {
    throw new Error(`expected a ConvBNInputError naming ${String(field)}, got ${error === undefined ? 'success' : String(error)}`);
  }
  if (typeof field === 'string') expect(error.field).toBe(field);
  else expect(error.field).toMatch(field);
  expect(error.message).toContain(error.field);
  tally.calls++;
  return error;
}

// ---------------------------------------------------------------------------
// Invalid configs: one field of a valid config replaced by a value no config may hold.

const NOT_POSITIVE_INT: unknown[] = [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '3', null, true, [], {},
  { valueOf: () => 3 }, { toString: () => '3' }, 3n];
const NOT_PAIR: unknown[] = [...NOT_POSITIVE_INT.filter((v) => v !== null && !Array.isArray(v)), [1], [1, 2, 3], [0, 1], [1, -2], ['1', '1'], [1.5, 1]];
const NOT_PADDING: unknown[] = [-1, 0.5, Number.NaN, 'full', 'SAME', [1], [1, 2, 3], [-1, 0], [0, 0, 0, -1], [0, 0.5], { top: 1 }, true];

/** Optional fields read null as absent (JSON has no undefined): null is valid there. */
const OPTIONAL_NOT_POSITIVE_INT = NOT_POSITIVE_INT.filter((v) => v !== null);

/** [field, bad values, what the error's field may be]. */
const MUTATIONS: [keyof ConvBNConfigInput | 'extra', unknown[], RegExp][] = [
  ['N', NOT_POSITIVE_INT, /^N$/],
  ['Cin', NOT_POSITIVE_INT, /^(Cin|groups)$/],
  ['Cout', NOT_POSITIVE_INT, /^(Cout|groups)$/],
  ['H', NOT_POSITIVE_INT, /^(H|output height)$/],
  ['W', NOT_POSITIVE_INT, /^(W|output width)$/],
  ['kernel', NOT_PAIR, /^kernel/],
  ['stride', NOT_PAIR, /^stride/],
  ['dilation', NOT_PAIR, /^dilation/],
  ['groups', [...OPTIONAL_NOT_POSITIVE_INT, 7], /^groups$/],
  ['padding', NOT_PADDING, /^padding/],
  ['bias', [1, 0, 'true', {}], /^bias$/],
  ['eps', [0, -1e-5, Number.NaN, Number.POSITIVE_INFINITY, '1e-5', {}], /^eps$/],
  ['momentum', [-0.1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '0.1'], /^momentum$/],
  ['layout', ['NWHC', 'nchw', 'nhwc', 1], /^layout$/],
  ['extra', [1], /^(extra|strides|pad|kernel_size)$/],
];

const invalidConfigArb = fc.tuple(
  configArb({ maxElements: 2000, maxSpatial: 9, maxBatch: 3 }),
  fc.integer({ min: 0, max: MUTATIONS.length - 1 }),
  fc.nat(),
  fc.constantFrom('strides', 'pad', 'kernel_size'),
).map(([config, which, pick, extraName]) => {
  const [field, values, expected] = MUTATIONS[which];
  const bad: Record<string, unknown> = { ...config };
  if (field === 'extra') bad[extraName] = 1;
  else bad[field] = values[pick % values.length];
  // groups = 7 only fails when 7 does not divide both channel counts.
  if (field === 'groups' && bad.groups === 7 && (config.Cin % 7 === 0 && config.Cout % 7 === 0)) bad.groups = 0;
  return { bad, expected, description: `${field} = ${show(bad[field === 'extra' ? extraName : field])}` };
});

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return `object ${JSON.stringify(v)}`;
  return JSON.stringify(v) ?? String(v);
}

function gpuErrors(engine: Engine): string[] {
  return (engine as Partial<WebGPUEngine>).uncapturedErrors ?? [];
}

function counters(engine: Engine): unknown {
  return (engine as Partial<WebGPUEngine>).counters?.() ?? {};
}

/** Runs `body` inside a validation error scope on WebGPU; the scope must come back empty. */
async function inErrorScope(engine: Engine, body: () => Promise<void>): Promise<void> {
  const device = (engine as Partial<WebGPUEngine>).device;
  device?.pushErrorScope('validation');
  device?.pushErrorScope('out-of-memory');
  try {
    await body();
  } finally {
    const oom = await device?.popErrorScope();
    const validation = await device?.popErrorScope();
    expect(validation ?? null).toBeNull();
    expect(oom ?? null).toBeNull();
  }
}

for (const backend of backendsUnderTest()) {
  describe(`${backend}: invalid input is refused before any GPU or WASM work`, () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await openEngine(backend as BackendName);
      tally.configs = 0;
      tally.calls = 0;
    });
    afterAll(() => {
      expect(gpuErrors(engine)).toEqual([]);
      engine.destroy();
      console.log(`[reliability] ${backend}: ${tally.configs} invalid configs refused, ${tally.calls} invalid calls refused in all`);
    });

    test('random invalid configs: createLayer throws a ConvBNInputError naming the field, and allocates nothing', async () => {
      const before = JSON.stringify(counters(engine));
      await inErrorScope(engine, async () => {
        await fc.assert(fc.asyncProperty(invalidConfigArb, async ({ bad, expected, description }) => {
          const error = await expectRefusal(() => engine.createLayer(bad as unknown as ConvBNConfigInput), expected)
            .catch((e: Error) => { throw new Error(`${description}: ${e.message}`); });
          expect(error.message.length).toBeGreaterThan(10);
          tally.configs++;
        }), { seed: 606, numRuns: 300 });
      });
      expect(JSON.stringify(counters(engine))).toBe(before);
      expect(gpuErrors(engine)).toEqual([]);
    });

    describe('wrong tensors, parameters, modes and call order', () => {
      const config: ConvBNConfig = normalizeConfig({ N: 2, Cin: 4, Cout: 6, H: 5, W: 6, kernel: [3, 2], stride: [2, 1], padding: [1, 0, 1, 1], groups: 2 });
      const sizes = tensorSizes(config);
      const inputs = caseInputs(config, 42);
      const p = inputs.params;
      let layer: ConvBNLayer;
      beforeAll(() => {
        layer = engine.createLayer(config, p);
      });
      afterAll(async () => {
        // Every refusal left the layer intact: a valid step still matches the oracle, in every mode.
        for (const mode of ['train', 'eval', 'tune', 'deploy'] as const) {
          const fresh = engine.createLayer(config, p);
          const j = judge(await produceOn(fresh, inputs, mode), reference(config, inputs, mode));
          expect(j.pass, `${mode}: ${JSON.stringify(j.errors)}`).toBe(true);
          fresh.destroy();
        }
        layer.destroy();
      });

      const gradYFirst = 'gradY before any forward, and after a forward without requiresGrad';
      gapAware(backend, gradYFirst)(gradYFirst, async () => {
        await inErrorScope(engine, async () => {
          const fresh = engine.createLayer(config, p);
          await expectRefusal(() => fresh.backward(inputs.gradY), 'backward');
          await fresh.forward(inputs.x, 'eval', { requiresGrad: false });
          await expectRefusal(() => fresh.backward(inputs.gradY), 'backward');
          fresh.destroy();
          const noParams = engine.createLayer(config);
          await expectRefusal(() => noParams.forward(inputs.x, 'eval'), 'params');
          noParams.destroy();
        });
      });

      test('wrong mode strings and option values', async () => {
        await inErrorScope(engine, async () => {
          for (const mode of ['Train', 'inference', '', undefined, null, 0, { toString: () => 'train' }]) {
            await expectRefusal(() => layer.forward(inputs.x, mode as never), 'mode');
          }
          await expectRefusal(() => layer.forward(inputs.x, 'train', { recompute: 'yes' } as never), /recompute/);
          await expectRefusal(() => layer.forward(inputs.x, 'train', { requiresGrad: 1 } as never), /requiresGrad/);
          await expectRefusal(() => engine.createLayer(config, p, { recompute: 'no' } as never), /recompute/);
        });
      });

      const badTensors: [string, (n: number) => unknown, RegExp][] = [
        ['one short', (n) => new Float32Array(n - 1), /\.length$/],
        ['one long', (n) => new Float32Array(n + 1), /\.length$/],
        ['empty', () => new Float32Array(0), /\.length$/],
        ['Float64Array', (n) => new Float64Array(n), /^[a-zA-Z ]+$/],
        ['Int32Array', (n) => new Int32Array(n), /^[a-zA-Z ]+$/],
        ['plain array', (n) => Array.from({ length: n }, () => 0), /^[a-zA-Z ]+$/],
        ['null', () => null, /^[a-zA-Z ]+$/],
        ['undefined', () => undefined, /^[a-zA-Z ]+$/],
      ];

      test.each(badTensors)('x and gradY: %s', async (_name, make, field) => {
        await inErrorScope(engine, async () => {
          const e = await expectRefusal(() => layer.forward(make(sizes.x) as Float32Array, 'eval'), field);
          expect(e.field.startsWith('x')).toBe(true);
          await layer.forward(inputs.x, 'eval');
          const g = await expectRefusal(() => layer.backward(make(sizes.y) as Float32Array), field);
          expect(g.field.startsWith('gradY')).toBe(true);
        });
      });

      const PARAMS = ['weight', 'bias', 'gamma', 'beta', 'runningMean', 'runningVar'] as const;
      const length = (name: (typeof PARAMS)[number]): number => (name === 'weight' ? sizes.weight : config.Cout);

      test('random corrupt parameters: wrong length or type, NaN, infinities, var + eps <= 0', async () => {
        const corruption = fc.constantFrom('short', 'long', 'f64', 'nan', '+inf', '-inf', 'missing', 'negvar');
        await inErrorScope(engine, async () => {
          await fc.assert(fc.asyncProperty(fc.constantFrom(...PARAMS), corruption, fc.nat(), async (name, how, at) => {
            const n = length(name);
            const params: Record<string, unknown> = { ...p };
            const values = (p[name] as Float32Array).slice();
            let expected: RegExp;
            switch (how) {
              case 'short': params[name] = values.subarray(0, n - 1); expected = new RegExp(`^${name}\\.length$`); break;
              case 'long': params[name] = new Float32Array(n + 1); expected = new RegExp(`^${name}\\.length$`); break;
              case 'f64': params[name] = Float64Array.from(values); expected = new RegExp(`^${name}$`); break;
              case 'missing': delete params[name]; expected = new RegExp(`^${name}$`); break;
              case 'negvar': {
                const v = p.runningVar.slice();
                v[at % config.Cout] = -2 * config.eps;
                params.runningVar = v;
                expected = /^runningVar\[\d+\] \+ eps$/;
                break;
              }
              default: {
                values[at % n] = how === 'nan' ? Number.NaN : how === '+inf' ? Infinity : -Infinity;
                params[name] = values;
                expected = new RegExp(`^${name}\\[${at % n}\\]$`);
              }
            }
            await expectRefusal(() => layer.setParameters(params as unknown as ConvBNParamsInput), expected);
            await expectRefusal(() => engine.createLayer(config, params as unknown as ConvBNParamsInput), expected);
          }), { seed: 707, numRuns: 150 });
          await expectRefusal(() => layer.setParameters(null as never), 'params');
          await expectRefusal(() => layer.setFoldedParameters({ weight: new Float32Array(3), bias: new Float32Array(config.Cout) }), /^folded weight/);
          const nan = new Float32Array(config.Cout);
          nan[1] = Number.NaN;
          await expectRefusal(() => layer.setFoldedParameters({ weight: new Float32Array(sizes.weight), bias: nan }), /^folded bias\[1\]$/);
          const noBias = engine.createLayer({ ...toInput(config), bias: false });
          await expectRefusal(() => noBias.setParameters(p), 'bias');
          noBias.destroy();
        });
        // The layer still holds the valid parameters it had.
        const held = await layer.getParameters();
        expect(held.weight).toEqual(p.weight);
      });

      test('train mode needs two values per channel', async () => {
        const one = normalizeConfig({ N: 1, Cin: 2, Cout: 2, H: 1, W: 1, kernel: 1 });
        const l = engine.createLayer(one, caseInputs(one, 1).params);
        await expectRefusal(() => l.forward(new Float32Array(2), 'train'), 'N * Hout * Wout');
        l.destroy();
      });
    });
  });
}
