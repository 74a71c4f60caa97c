/**
 * The WebAssembly backend against the PyTorch vectors (every case, mode and
 * tensor) and the float64 oracle (random configs, every kernel path).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODES, normalizeConfig, outputShape, type ConvBNConfig } from '../codegen/config.js';
import { loadCaseDir, type ConvBNCase } from '../runtime/check/cases.js';
import { relativeError, TOLERANCE } from '../runtime/check/compare.js';
import { createWasmEngine, selectKernels, type KernelChoice } from '../runtime/wasm/engine.js';
import { isPointwise } from '../runtime/wasm/select.js';
import { axisTaps } from '../runtime/wasm/ops.js';
import { assemblySlotsSource, BN, CV, KERNELS, PARAM_SLOTS, PK, PWT, SC, TP, WG, WN } from '../runtime/wasm/layout.js';
import { checkKernelExports, loadModule } from '../runtime/wasm/pool.js';
import { mulberry32, randomParams, randomTensor, randomValidConfig } from './helpers/random.js';
import { referenceCase, toCaseInputs } from './oracle/reference.js';
import { runCase, vectorsDir, type CaseData } from './wasm-helpers.js';

type Engine = Awaited<ReturnType<typeof createWasmEngine>>;

/** Every kernel path: the default choice, the scalar paths, and each SIMD family forced everywhere. */
const PATHS: Record<string, Partial<KernelChoice>> = {
  auto: {},
  scalar: { forward: 'scalar', dgrad: 'scalar', wgrad: 'scalar' },
  simd4: { forward: 'direct4', dgrad: 'direct4', wgrad: 'simd4' },
  simd1: { forward: 'direct1', dgrad: 'direct1', wgrad: 'simd1' },
  // The direct paths with the input packed in a pass of its own instead of inside each conv task.
  simd4_prepacked: { forward: 'direct4', dgrad: 'direct4', wgrad: 'simd4', fusePack: false },
  nhwc: { wgrad: 'nhwc' },
  simd1_prepacked: { forward: 'direct1', dgrad: 'direct1', wgrad: 'simd1', fusePack: false },
  // Strided dgrad over zero-inserted dz instead of one correlation per stride phase.
  simd4_zero_inserted: { forward: 'direct4', dgrad: 'direct4', wgrad: 'simd4', dgradPhases: false },
  simd1_zero_inserted: { forward: 'direct1', dgrad: 'direct1', wgrad: 'simd1', dgradPhases: false },
  // Stride phases with their dz packed in a pass of their own.
  simd4_phases_prepacked: { forward: 'direct4', dgrad: 'direct4', wgrad: 'simd4', fusePack: false, dgradPhases: true },
};

function errors(got: Record<string, Float32Array>, expected: Record<string, ArrayLike<number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, ref] of Object.entries(expected)) {
    out[key] = got[key] ? relativeError(got[key], ref) : Infinity;
  }
  return out;
}

function failures(errs: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(errs).filter(([, e]) => !(e <= TOLERANCE)));
}

let engine: Engine;
let cases: ConvBNCase[];

beforeAll(async () => {
  engine = await createWasmEngine({ threads: 2 });
  cases = await loadCaseDir(vectorsDir);
});

afterAll(() => engine?.destroy());

function caseData(c: ConvBNCase): CaseData {
  return { ...c.inputs };
}

describe('wasm backend: PyTorch vectors', () => {
  it('finds the 40 vector cases', () => {
    expect(cases.length).toBe(40);
  });

  for (const [name, kernels] of Object.entries(PATHS)) {
    it(`every case, mode and tensor within tolerance (${name} kernels)`, async () => {
      const bad: string[] = [];
      let checked = 0;
      for (const c of cases) {
        for (const mode of MODES) {
          const expected = c.modes[mode];
          if (!expected) continue;
          const got = await runCase(engine, c.config, caseData(c), mode, { kernels });
          const f = failures(errors(got, expected));
          checked += Object.keys(expected).length;
          for (const [k, e] of Object.entries(f)) bad.push(`${c.id} ${mode} ${k}: ${e}`);
        }
      }
      expect(bad).toEqual([]);
      expect(checked).toBeGreaterThan(40 * 4 * 5);
    });
  }

  it('the gemm path on every pointwise case', async () => {
    const pointwise = cases.filter((c) => isPointwise(c.config));
    expect(pointwise.length).toBeGreaterThan(0);
    const bad: string[] = [];
    for (const c of pointwise) {
      for (const mode of MODES) {
        const expected = c.modes[mode];
        if (!expected) continue;
        const got = await runCase(engine, c.config, caseData(c), mode, { kernels: { forward: 'gemm', dgrad: 'gemm' } });
        for (const [k, e] of Object.entries(failures(errors(got, expected)))) bad.push(`${c.id} ${mode} ${k}: ${e}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('wasm backend: random configs against the float64 oracle', () => {
  const rng = mulberry32(20261122);
  const configs: ConvBNConfig[] = [];
  for (let i = 0; i < 64; i++) configs.push(normalizeConfig(randomValidConfig(rng)));
  // Shapes the small random draws rarely reach: wide rows (vector tails), long channel loops, pointwise.
  configs.push(
    normalizeConfig({ N: 2, Cin: 9, Cout: 10, H: 7, W: 37, kernel: [3, 2], padding: [2, 0, 1, 3], stride: [1, 2] }),
    normalizeConfig({ N: 1, Cin: 12, Cout: 8, H: 9, W: 21, kernel: 1 }),
    normalizeConfig({ N: 2, Cin: 6, Cout: 18, H: 11, W: 19, kernel: 3, padding: 1, groups: 6, dilation: [2, 1] }),
    normalizeConfig({ N: 1, Cin: 3, Cout: 16, H: 23, W: 23, kernel: 7, stride: 2, padding: 3 }),
    // Degenerate train-mode cancellations: two values per channel (dz is an eps-sized rest), and one
    // live tap per output channel (dL/dW is an eps-sized rest along W).
    normalizeConfig({ N: 1, Cin: 1, Cout: 1, H: 1, W: 2, kernel: 1 }),
    normalizeConfig({ N: 2, Cin: 3, Cout: 5, H: 1, W: 1, kernel: 1, bias: false }),
    normalizeConfig({ N: 3, Cin: 2, Cout: 4, H: 3, W: 1, kernel: [1, 2], stride: [1, 3], padding: [0, 0, 0, 1], groups: 2, bias: false }),
    normalizeConfig({ N: 4, Cin: 6, Cout: 12, H: 5, W: 3, kernel: 1, stride: 2, groups: 6 }),
    // Stride phases: strides above the kernel (phases no tap reaches), stride and dilation sharing a
    // factor (every other tap), negative dz offsets from large pads, H smaller than the stride.
    normalizeConfig({ N: 2, Cin: 5, Cout: 8, H: 9, W: 10, kernel: 1, stride: 3 }),
    normalizeConfig({ N: 1, Cin: 4, Cout: 8, H: 13, W: 11, kernel: [5, 3], stride: [2, 4], dilation: [2, 3], padding: [4, 1, 3, 2] }),
    normalizeConfig({ N: 2, Cin: 8, Cout: 4, H: 12, W: 15, kernel: 3, stride: [3, 2], padding: [2, 2, 0, 1], groups: 2 }),
    normalizeConfig({ N: 3, Cin: 4, Cout: 4, H: 2, W: 3, kernel: 2, stride: 4, padding: [1, 0, 1, 1] }),
    normalizeConfig({ N: 2, Cin: 16, Cout: 16, H: 7, W: 35, kernel: 3, stride: 2, padding: 1, groups: 16 }),
  );

  for (const [name, kernels] of Object.entries(PATHS)) {
    it(`${configs.length} configs x 4 modes (${name} kernels)`, async () => {
      const data = mulberry32(7);
      const bad: string[] = [];
      for (const config of configs) {
        const params = randomParams(data, config);
        const x = randomTensor(data, config.N * config.Cin * config.H * config.W);
        const o = outputShape(config);
        const gradY = randomTensor(data, o.N * o.C * o.H * o.W);
        for (const mode of MODES) {
          const expected = referenceCase(config, toCaseInputs({ ...params, x, gradY }), mode);
          const got = await runCase(engine, config, { ...params, x, gradY }, mode, { kernels });
          for (const [k, e] of Object.entries(failures(errors(got, expected)))) {
            bad.push(`${mode} ${k}: ${e} ${JSON.stringify(config)}`);
          }
        }
      }
      expect(bad).toEqual([]);
    });
  }

  it('the gemm path on random pointwise configs', async () => {
    const data = mulberry32(11);
    const bad: string[] = [];
    for (let i = 0; i < 8; i++) {
      const g = [1, 2, 4][i % 3];
      const config = normalizeConfig({
        N: 1 + (i % 3), Cin: g * (1 + (i % 5)), Cout: g * (1 + ((i * 3) % 7)), H: 1 + ((i * 5) % 9), W: 2 + ((i * 7) % 13),
        kernel: 1, groups: g, bias: i % 2 === 0,
      });
      const params = randomParams(data, config);
      const x = randomTensor(data, config.N * config.Cin * config.H * config.W);
      const gradY = randomTensor(data, config.N * config.Cout * config.H * config.W);
      for (const mode of MODES) {
        const expected = referenceCase(config, toCaseInputs({ ...params, x, gradY }), mode);
        const got = await runCase(engine, config, { ...params, x, gradY }, mode, { kernels: { forward: 'gemm', dgrad: 'gemm' } });
        for (const [k, e] of Object.entries(failures(errors(got, expected)))) bad.push(`${mode} ${k}: ${e} ${JSON.stringify(config)}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('gamma = 0 everywhere works in every mode (tune never divides by s)', async () => {
    const config = normalizeConfig({ N: 2, Cin: 4, Cout: 8, H: 6, W: 6, kernel: 3, padding: 1 });
    const data = mulberry32(3);
    const params = { ...randomParams(data, config), gamma: new Float32Array(8) };
    const x = randomTensor(data, 2 * 4 * 36);
    const gradY = randomTensor(data, 2 * 8 * 36);
    for (const mode of MODES) {
      const expected = referenceCase(config, toCaseInputs({ ...params, x, gradY }), mode);
      const got = await runCase(engine, config, { ...params, x, gradY }, mode);
      expect(failures(errors(got, expected))).toEqual({});
    }
  });
});

describe('wasm backend: stride phases of the dgrad', () => {
  it('axisTaps lists exactly the taps that reach each phase, with their dz offsets', () => {
    for (let k = 1; k <= 7; k++) for (let s = 1; s <= 4; s++) for (let d = 1; d <= 3; d++) for (let p = 0; p <= (k - 1) * d; p++) {
      for (let phase = 0; phase < s; phase++) {
        const t = axisTaps(k, s, d, p, phase);
        // Brute force: tap kh reaches position phase + s*i from dz row (phase + s*i + p - kh*d) / s.
        const reach = [...Array(k).keys()].filter((kh) => ((phase + p - kh * d) % s + s) % s === 0).reverse();
        const listed = [...Array(t.count).keys()].map((j) => t.first - j * t.step);
        expect(listed).toEqual(reach);
        for (const [j, kh] of listed.entries()) expect(t.offset + j * t.dilation).toBe((phase + p - kh * d) / s);
      }
    }
  });
});

describe('wasm backend: kernel selection', () => {
  it('picks SIMD paths by shape and refuses a forced gemm on a 3x3', () => {
    const conv3 = normalizeConfig({ N: 1, Cin: 8, Cout: 8, H: 8, W: 8, kernel: 3, padding: 1 });
    expect(selectKernels(conv3)).toEqual({ forward: 'direct4', dgrad: 'direct4', wgrad: 'nhwc', fusePack: true, dgradPhases: true });
    const narrow = normalizeConfig({ N: 1, Cin: 4, Cout: 8, H: 8, W: 8, kernel: 3, padding: 1 });
    expect(selectKernels(narrow)).toEqual({ forward: 'direct4', dgrad: 'direct4', wgrad: 'simd4', fusePack: true, dgradPhases: true });
    const pw = normalizeConfig({ N: 1, Cin: 8, Cout: 8, H: 8, W: 8, kernel: 1 });
    expect(selectKernels(pw)).toEqual({ forward: 'gemm', dgrad: 'gemm', wgrad: 'nhwc', fusePack: true, dgradPhases: true });
    const dw = normalizeConfig({ N: 1, Cin: 8, Cout: 8, H: 8, W: 8, kernel: 3, groups: 8 });
    expect(selectKernels(dw)).toEqual({ forward: 'direct1', dgrad: 'direct1', wgrad: 'simd1', fusePack: true, dgradPhases: true });
    expect(() => selectKernels(conv3, { forward: 'gemm' })).toThrow(/1x1/);
    expect(() => selectKernels(conv3, { wgrad: 'fast' as never })).toThrow(/wgrad/);
  });
});


describe('wasm backend: host and kernels share one layout', () => {
  /** A module exporting one empty function under each of `names`. */
  function moduleExporting(names: readonly string[]): WebAssembly.Module {
    const text = new TextEncoder();
    const leb = (v: number): number[] => (v < 0x80 ? [v] : [(v & 0x7f) | 0x80, ...leb(v >>> 7)]);
    const exportsBody = [...leb(names.length), ...names.flatMap((n) => [...leb(n.length), ...text.encode(n), 0x00, 0x00])];
    const bytes = new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
      0x03, 0x02, 0x01, 0x00, // function section: one function of that type
      0x07, ...leb(exportsBody.length), ...exportsBody, // export section
      0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code section: an empty body
    ]);
    return new WebAssembly.Module(bytes);
  }

  it('the built kernels export exactly the kernels the host lists', async () => {
    // loadModule checks as it compiles: a mismatch would reject here.
    for (const shared of [true, false]) await expect(loadModule(shared)).resolves.toBeInstanceOf(WebAssembly.Module);
  });

  it('a module missing a kernel, or exporting one the host does not list, is refused by name', () => {
    expect(() => checkKernelExports(moduleExporting([...KERNELS]), 'all')).not.toThrow();
    expect(() => checkKernelExports(moduleExporting(KERNELS.filter((k) => k !== 'wgrad_nhwc')), 'stale.wasm'))
      .toThrow(/stale\.wasm does not match .*missing: wgrad_nhwc; not listed: none/);
    expect(() => checkKernelExports(moduleExporting([...KERNELS, 'conv_new']), 'newer.wasm'))
      .toThrow(/missing: none; not listed: conv_new/);
  });

  it('the kernels\' slot constants are generated from the host\'s layouts, and a block holds the largest', () => {
    const source = assemblySlotsSource();
    for (const [name, layout] of Object.entries({ PK, PWT, CV, SC, WG, WN, BN, TP })) {
      for (const [field, slot] of Object.entries(layout)) {
        expect(source).toMatch(new RegExp(`export namespace ${name} \\{[^}]*export const ${field}: i32 = ${slot};`));
        expect(slot).toBeLessThan(PARAM_SLOTS);
      }
    }
  });
});
