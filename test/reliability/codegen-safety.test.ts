/**
 * Generated code is safe by construction: only numbers normalizeConfig
 * validated reach WGSL. Hostile configs (strings, objects with toString or
 * valueOf, getters that change their answer, proxies, huge numbers, NaN,
 * forged "normalised" configs) are refused before any kernel is generated,
 * and every generated kernel is exactly the expected constants followed by
 * the unmodified templates.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { configKey, normalizeConfig, outputShape, tensorSizes, toInput, type ConvBNConfig, type ConvBNConfigInput } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import { generateKernel, variantKey } from '../../codegen/generate.js';
import { dispatchFor, gridExtent, KERNELS, type KernelKindSpec, type KernelVariant } from '../../codegen/kernels.js';
import { allVariants } from '../../codegen/plans.js';
import { TEMPLATES } from '../../templates/generated.js';
import type { BackendName, Engine } from '../../runtime/types.js';
import { gapAware } from './gaps.js';
import { backendsUnderTest, caseInputs, configArb, openEngine } from './harness.js';

const base = { N: 2, Cin: 4, Cout: 4, H: 6, W: 6, kernel: 3, padding: 1 };
const INJECT = '1u; } @compute @workgroup_size(1) fn evil() { loop {} } //';

/** A frozen object shaped like a normalised config (what toConfig passes through unchecked). */
function forged(change: Record<string, unknown>): ConvBNConfig {
  return Object.freeze({ ...normalizeConfig(base), ...change }) as unknown as ConvBNConfig;
}

/** Reads as `first` once, then as `then`: a check-then-use bug would let `then` through. */
function flipping(first: unknown, then: unknown): Record<string, unknown> {
  let reads = 0;
  return Object.defineProperty({ ...base }, 'N', { enumerable: true, get: () => (reads++ === 0 ? first : then) });
}

const HOSTILE: [string, () => unknown][] = [
  ['N as a string', () => ({ ...base, N: '2' })],
  ['N as code', () => ({ ...base, N: INJECT })],
  ['Cin with toString', () => ({ ...base, Cin: { toString: () => INJECT } })],
  ['Cout with valueOf', () => ({ ...base, Cout: { valueOf: () => 4 } })],
  ['H huge', () => ({ ...base, H: 2 ** 40 })],
  ['W = 2^31', () => ({ ...base, W: 2 ** 31 })],
  ['kernel NaN', () => ({ ...base, kernel: Number.NaN })],
  ['stride Infinity', () => ({ ...base, stride: [1, Number.POSITIVE_INFINITY] })],
  ['dilation as strings', () => ({ ...base, dilation: ['1', '1'] })],
  ['padding with code', () => ({ ...base, padding: [0, 0, 0, INJECT] })],
  ['padding array with toString', () => ({ ...base, padding: { length: 2, 0: 1, 1: 1, toString: () => '1' } })],
  ['eps as code', () => ({ ...base, eps: INJECT })],
  ['eps NaN', () => ({ ...base, eps: Number.NaN })],
  ['eps beyond float32', () => ({ ...base, eps: 1e300 })],
  ['momentum as string', () => ({ ...base, momentum: '0.1' })],
  ['bias as code', () => ({ ...base, bias: INJECT })],
  ['layout as code', () => ({ ...base, layout: `NCHW\n${INJECT}` })],
  ['groups bigint', () => ({ ...base, groups: 2n })],
  ['an extra field', () => ({ ...base, code: INJECT })],
  ['a proxy answering code for every field', () => new Proxy({}, { get: () => INJECT, ownKeys: () => [], has: () => true })],
  ['a getter that changes its answer', () => flipping(2, INJECT)],
  ['forged normalised: kH as code', () => forged({ kH: INJECT })],
  ['forged normalised: layout as code', () => forged({ layout: `NCHW\n${INJECT}` })],
  ['forged normalised: bias as code', () => forged({ bias: INJECT })],
  ['forged normalised: padTop negative beyond i32', () => forged({ padTop: -(2 ** 40) })],
  ['forged normalised: eps Infinity', () => forged({ eps: Number.POSITIVE_INFINITY })],
  ['null', () => null],
  ['a string', () => INJECT],
];

for (const backend of backendsUnderTest()) {
  describe(`${backend}: hostile configs are refused before codegen`, () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await openEngine(backend as BackendName);
    });
    afterAll(() => {
      expect((engine as { uncapturedErrors?: string[] }).uncapturedErrors ?? []).toEqual([]);
      engine.destroy();
    });

    for (const [name, make] of HOSTILE) gapAware(backend as BackendName, name)(name, () => {
      const counters = (engine as { counters?: () => unknown }).counters;
      const before = counters ? JSON.stringify(counters.call(engine)) : '';
      let error: unknown;
      let layer: { destroy(): void; config: ConvBNConfig } | undefined;
      try {
        layer = engine.createLayer(make() as ConvBNConfigInput);
      } catch (e) {
        error = e;
      }
      if (layer) {
        // Accepted only if it came out as validated numbers (the flipping getter is read once).
        const c = layer.config;
        expect(normalizeConfig(toInput(c))).toEqual(c);
        expect(configKey(c)).not.toContain('evil');
        layer.destroy();
        return;
      }
      expect(error).toBeInstanceOf(ConvBNInputError);
      if (counters) expect(JSON.stringify(counters.call(engine))).toBe(before);
    });

    test('the layer of a forged normalised config holds the validated copy, not the forged object', async () => {
      const forgedValid = forged({});
      const layer = engine.createLayer(forgedValid, caseInputs(normalizeConfig(base), 1).params);
      expect(Object.isFrozen(layer.config)).toBe(true);
      expect(layer.config).toEqual(normalizeConfig(base));
      layer.destroy();
    });
  });
}

describe('normalizeConfig refuses every hostile input with a ConvBNInputError', () => {
  // eps beyond float32 is refused by the runtime (engine.createLayer), not yet by normalizeConfig (reported).
  const here = HOSTILE.filter(([name]) => !name.startsWith('forged') && !name.includes('changes') && name !== 'eps beyond float32');
  test.each(here)('%s', (_name, make) => {
    expect(() => normalizeConfig(make() as ConvBNConfigInput)).toThrow(ConvBNInputError);
  });
});

describe('generated WGSL is the expected constants, then the templates (with their number-generated inserts)', () => {
  const u32 = /^const ([A-Z_]+): u32 = (\d+)u;$/;
  const i32 = /^const (PAD_TOP|PAD_LEFT): i32 = (-?\d+)i;$/;
  const f32 = /^const (EPS|MOMENTUM): f32 = (-?\d\.\d{8}e[+-]\d+)f;$/;
  const bool = /^const ([A-Z]+): bool = (true|false);$/;

  function expectedU32(c: ConvBNConfig, variant: KernelVariant): Record<string, number> {
    const out = outputShape(c);
    const s = tensorSizes(c);
    const spec: KernelKindSpec = KERNELS[variant.kind];
    const expansion = spec.expand?.(variant, c);
    const workgroups = spec.grid.kind === 'tiles' ? expansion!.workgroups : gridExtent(spec, c).workgroups;
    return {
      N: c.N, CIN: c.Cin, COUT: c.Cout, H: c.H, W: c.W, HOUT: out.H, WOUT: out.W, KH: c.kH, KW: c.kW,
      STRIDE_H: c.strideH, STRIDE_W: c.strideW, DILATION_H: c.dilationH, DILATION_W: c.dilationW,
      GROUPS: c.groups, CIN_PER_GROUP: c.Cin / c.groups, COUT_PER_GROUP: c.Cout / c.groups,
      X_SIZE: s.x, Y_SIZE: s.y, W_SIZE: s.weight, CHANNEL_SIZE: c.N * out.H * out.W,
      WORKGROUP_SIZE: spec.workgroupSize, DISPATCH_X: dispatchFor(workgroups)[0],
      // Blocked kinds add their tile constants (numbers, through the same u32 literal).
      ...(expansion?.constants ?? {}),
    };
  }

  test('random valid configs, every kernel variant', () => {
    let kernels = 0;
    fc.assert(fc.property(configArb({ maxElements: 1e6, maxSpatial: 64, maxBatch: 64, allowSingleValue: true }), (input) => {
      const c = normalizeConfig(input);
      for (const variant of allVariants(c)) {
        const k = generateKernel(variant, c);
        const spec: KernelKindSpec = KERNELS[variant.kind];
        const inserts = spec.expand?.(variant, c).inserts ?? {};
        // Code a blocked kind generates from its tile numbers: WGSL tokens only, no string data.
        for (const code of Object.values(inserts)) expect(code).toMatch(/^[\w\s(){}[\];:,.=+\-*/<>!&|%@]*$/);
        const body = TEMPLATES[spec.template].replace(/^[ \t]*\/\/@insert ([A-Z_]+)[ \t]*$/gm, (_l, name: string) => inserts[name]);
        const tail = `\n${TEMPLATES.common}\n${body}`;
        expect(k.code.endsWith(tail)).toBe(true);
        const header = k.code.slice(0, k.code.length - tail.length).split('\n').filter((l) => l !== '');
        expect(header[0]).toBe(`// convbn kernel ${variantKey(variant)}`);
        expect(header[1]).toBe(`// config ${configKey(c)}`);
        expect(header[1]).toMatch(/^\/\/ config [A-Za-z]+=[0-9.e+-]+(,[A-Za-z]+=([0-9.e+-]+|true|false|NCHW))+$/);
        const seen: Record<string, number> = {};
        for (const line of header.slice(2)) {
          let m: RegExpMatchArray | null;
          if ((m = line.match(u32))) seen[m[1]] = Number(m[2]);
          else if ((m = line.match(i32))) seen[m[1]] = Number(m[2]);
          else if ((m = line.match(f32))) seen[m[1]] = Math.fround(Number(m[2]));
          else if ((m = line.match(bool))) {
            expect(spec.flags).toContain(m[1]);
            expect(m[2] === 'true').toBe(variant.flags[m[1]]);
            seen[m[1]] = 1;
          } else throw new Error(`unexpected line in generated WGSL: ${line}`);
        }
        expect(seen).toEqual({
          ...expectedU32(c, variant), PAD_TOP: c.padTop, PAD_LEFT: c.padLeft,
          EPS: Math.fround(c.eps), MOMENTUM: Math.fround(c.momentum),
          ...Object.fromEntries(spec.flags.map((f) => [f, 1])),
        });
        kernels++;
      }
    }), { seed: 808, numRuns: 100 });
    console.log(`[reliability] codegen: ${kernels} generated kernels checked line by line`);
  });

  test('literal helpers refuse what is not a checked number (second line of defence)', () => {
    for (const c of [forged({ kH: INJECT }), forged({ N: Number.NaN }), forged({ padTop: 2 ** 40 }), forged({ eps: Number.NaN })]) {
      expect(() => generateKernel(allVariants(c)[0], c)).toThrow();
    }
  });

  // generateKernel validates its config itself (toConfig): a forged object never reaches WGSL source.
  test('generateKernel itself refuses a forged config with code in a string field', () => {
    const c = forged({ layout: 'NCHW\nconst EVIL: u32 = 1u;' });
    expect(() => generateKernel(allVariants(normalizeConfig(base))[0], c)).toThrow();
  });
});
