/**
 * NHWC (channels-last) tensors on every backend: the transposes against the index map, the
 * oracle (which reads NHWC directly) against the NCHW oracle, and every mode's forward and backward
 * against the oracle and, bit for bit, against the NCHW layer transposed.
 */
import fc from 'fast-check';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { engineFor } from './helpers/backends.js';
import {
  MODES, configKey, kernelConfig, nchwConfig, normalizeConfig, outputShape, tensorSizes, toInput, type ConvBNConfig,
  type ConvBNConfigInput,
} from '../codegen/config.js';
import { writeKernelSet } from '../codegen/emit.js';
import { generateKernel } from '../codegen/generate.js';
import { allVariants } from '../codegen/plans.js';
import { ChannelsLastLayer, toChannelsFirst, toChannelsLast } from '../runtime/channels-last.js';
import { PaddingModeLayer } from '../runtime/padding-mode.js';
import type { BackendName, Engine } from '../runtime/types.js';
import { mulberry32, randomTensor } from './helpers/random.js';
import { referenceCase, type CaseInputs } from './oracle/reference.js';
import {
  backendsUnderTest, caseInputs, configArb, describeResult, produce, runCase, type CaseInputs as HarnessInputs,
} from './reliability/harness.js';

/** [N][C][H*W] index of NHWC element i, from the definition. */
function nchwIndexOf(i: number, C: number, HW: number): number {
  const n = Math.floor(i / (HW * C));
  const p = Math.floor(i / C) % HW;
  const ch = i % C;
  return (n * C + ch) * HW + p;
}

function transposed(t: ArrayLike<number>, N: number, C: number, HW: number): Float64Array {
  const out = new Float64Array(t.length);
  for (let i = 0; i < t.length; i++) out[i] = t[nchwIndexOf(i, C, HW)];
  return out;
}

describe('NHWC: transposes, configs and codegen', () => {
  test('toChannelsLast and toChannelsFirst follow the index map and undo each other (tile edges included)', () => {
    for (const [N, C, HW] of [[1, 1, 1], [2, 3, 5], [1, 33, 70], [3, 64, 31], [2, 5, 1025]]) {
      const nchw = randomTensor(mulberry32(N * C * HW), N * C * HW);
      const nhwc = toChannelsLast(nchw, N, C, HW);
      expect(Array.from(nhwc)).toEqual(Array.from(transposed(nchw, N, C, HW)));
      expect(toChannelsFirst(nhwc, N, C, HW)).toEqual(nchw);
    }
  });

  test('the config holds the layout; keys tell layouts apart; the kernels run the NCHW config', () => {
    const base: ConvBNConfigInput = { N: 2, Cin: 3, Cout: 4, H: 5, W: 6, kernel: 3, padding: 1, paddingMode: 'reflect' };
    const nhwc = normalizeConfig({ ...base, layout: 'NHWC' });
    const nchw = normalizeConfig(base);
    expect(nhwc.layout).toBe('NHWC');
    expect(nchw.layout).toBe('NCHW');
    expect(normalizeConfig(toInput(nhwc)).layout).toBe('NHWC');
    expect(configKey(nhwc)).not.toBe(configKey(nchw));
    expect(nchwConfig(nhwc)).toEqual(nchw);
    expect(nchwConfig(nchw)).toBe(nchw);
    expect(tensorSizes(nhwc)).toEqual(tensorSizes(nchw));
    expect(kernelConfig(nhwc)).toMatchObject({ layout: 'NCHW', paddingMode: 'zeros', H: 7, W: 8, padTop: 0 });
  });

  test('kernels are only generated for NCHW; convbn gen writes the NCHW config\'s kernels and names both', async () => {
    const c = normalizeConfig({ N: 1, Cin: 2, Cout: 2, H: 4, W: 4, kernel: 3, padding: 1, layout: 'NHWC' });
    const [variant] = allVariants(kernelConfig(c));
    expect(() => generateKernel(variant, c)).toThrow(/layout 'NHWC' has no kernels/);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'convbn-nhwc-'));
    try {
      const manifest = await writeKernelSet([{ name: 'l', config: toInput(c) }], dir);
      expect(manifest.layers[0].config.layout).toBe('NHWC');
      expect(manifest.layers[0].kernelConfig?.layout).toBe('NCHW');
      expect(manifest.layers[0].configKey).toBe(configKey(c));
      const ids = new Set(Object.values(manifest.layers[0].plans).flatMap((p) => [...p.forward, ...p.backward]));
      for (const id of ids) expect(await readFile(path.join(dir, `${id}.wgsl`), 'utf8')).toContain('@compute');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('NHWC: the oracle', () => {
  const configs: ConvBNConfigInput[] = [
    { N: 2, Cin: 3, Cout: 4, H: 5, W: 4, kernel: 3, stride: [2, 1], padding: [1, 0, 2, 1] },
    { N: 1, Cin: 4, Cout: 6, H: 6, W: 5, kernel: [2, 3], dilation: 2, padding: 2, groups: 2, bias: false, paddingMode: 'circular' },
  ];
  test.each(configs.map((c, k) => [k, c] as const))('config %i: every mode equals the NCHW oracle on transposed tensors', (_k, input) => {
    const nhwc = normalizeConfig({ ...input, layout: 'NHWC' });
    const nchw = nchwConfig(nhwc);
    const out = outputShape(nhwc);
    const rng = mulberry32(5);
    const sizes = tensorSizes(nhwc);
    const shared = {
      weight: randomTensor(rng, sizes.weight), gamma: randomTensor(rng, nhwc.Cout), beta: randomTensor(rng, nhwc.Cout),
      running_mean: randomTensor(rng, nhwc.Cout), running_var: Float32Array.from(randomTensor(rng, nhwc.Cout), (v) => 0.5 + v * v),
      ...(nhwc.bias ? { bias: randomTensor(rng, nhwc.Cout) } : {}),
    };
    const xNchw = randomTensor(rng, sizes.x);
    const gyNchw = randomTensor(rng, sizes.y);
    const inNchw: CaseInputs = { ...shared, x: xNchw, grad_y: gyNchw };
    const inNhwc: CaseInputs = {
      ...shared, x: toChannelsLast(xNchw, nhwc.N, nhwc.Cin, nhwc.H * nhwc.W), grad_y: toChannelsLast(gyNchw, out.N, out.C, out.H * out.W),
    };
    for (const mode of MODES) {
      const a = referenceCase(nhwc, inNhwc, mode);
      const b = referenceCase(nchw, inNchw, mode);
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      for (const [name, ref] of Object.entries(b)) {
        const expected = name === 'y' ? transposed(ref, out.N, out.C, out.H * out.W)
          : name === 'grad_x' ? transposed(ref, nhwc.N, nhwc.Cin, nhwc.H * nhwc.W) : ref;
        const got = a[name];
        got.forEach((v, i) => expect(Math.abs(v - expected[i]), `${mode} ${name}[${i}]`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(expected[i]))));
      }
    }
  });
});

const PLAN: Record<BackendName, { configs: number; seed: number; maxElements: number }> = {
  webgpu: { configs: 10, seed: 0x7c1a, maxElements: 500 },
  wasm: { configs: 60, seed: 0x7c1b, maxElements: 1500 },
};

/** An NHWC layer's tensors against the NCHW layer's on the same (transposed) data: transposes move values only. */
async function bitwiseAgainstNchw(engine: Engine, c: ConvBNConfig, inputs: HarnessInputs, mode: (typeof MODES)[number]): Promise<void> {
  const out = outputShape(c);
  const HW = c.H * c.W;
  const oHW = out.H * out.W;
  const nchwInputs: HarnessInputs = {
    params: inputs.params, x: toChannelsFirst(inputs.x, c.N, c.Cin, HW), gradY: toChannelsFirst(inputs.gradY, out.N, out.C, oHW),
  };
  const a = await produce(engine, c, inputs, mode);
  const b = await produce(engine, nchwConfig(c), nchwInputs, mode);
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const [name, t] of Object.entries(b)) {
    const expected = name === 'y' ? toChannelsLast(t, out.N, out.C, oHW) : name === 'grad_x' ? toChannelsLast(t, c.N, c.Cin, HW) : t;
    expect(a[name], `${mode} ${name}`).toEqual(expected);
  }
}

for (const backend of backendsUnderTest()) {
  describe(`${backend}: NHWC layers`, () => {
    const engineOf = engineFor(backend);

    const fixed: [string, ConvBNConfigInput][] = [
      ['3x3 pad 1', { N: 2, Cin: 3, Cout: 4, H: 6, W: 5, kernel: 3, padding: 1 }],
      ['stride 2, asymmetric padding, no bias', { N: 2, Cin: 2, Cout: 3, H: 7, W: 6, kernel: 3, stride: 2, padding: [2, 0, 1, 2], bias: false }],
      ['depthwise multiplier 2, dilation 2', { N: 1, Cin: 3, Cout: 6, H: 6, W: 7, kernel: 3, dilation: 2, padding: 2, groups: 3 }],
      ['1x1 (a GEMM), 9 channels', { N: 2, Cin: 9, Cout: 8, H: 3, W: 4, kernel: 1 }],
      ['reflect padding', { N: 2, Cin: 2, Cout: 4, H: 5, W: 5, kernel: [3, 2], padding: [1, 2], paddingMode: 'reflect' }],
      // Train's closed form for a group's single live input value rewrites gradX (runtime/scalar-input.ts).
      ['one live input value per group', { N: 1, Cin: 2, Cout: 4, H: 1, W: 1, kernel: 3, padding: 2, groups: 2 }],
      ['67 channels, 33 pixels (transpose tile edges)', { N: 2, Cin: 67, Cout: 5, H: 3, W: 11, kernel: [1, 3], padding: [0, 1] }],
    ];
    test.each(fixed)('%s: every mode matches the oracle, and the NCHW layer bit for bit', async (_name, input) => {
      const engine = engineOf();
      const config = { ...input, layout: 'NHWC' as const };
      const c = normalizeConfig(config);
      for (const mode of MODES) {
        for (const recompute of mode === 'train' ? [false, true] : [false]) {
          const r = await runCase(engine, { config, seed: 4, mode, recompute });
          expect(r.pass, describeResult(r)).toBe(true);
        }
        await bitwiseAgainstNchw(engine, c, caseInputs(c, 6), mode);
      }
    });

    test(`zero padding: ${backend === 'wasm' ? 'the WASM layer transposes in its heap (no wrapper)' : 'a host-transposing wrapper'}; ` +
      'held memory as the NCHW layer\'s', async () => {
      const engine = engineOf();
      const c = normalizeConfig({ N: 2, Cin: 5, Cout: 3, H: 6, W: 7, kernel: 3, padding: 1, layout: 'NHWC' });
      const inputs = caseInputs(c, 9);
      const layer = engine.createLayer(c, inputs.params);
      expect(layer instanceof ChannelsLastLayer).toBe(backend !== 'wasm');
      const nchw = engine.createLayer(nchwConfig(c), inputs.params);
      for (const l of [layer, nchw]) {
        await l.forward(inputs.x, 'eval');
        await l.backward(inputs.gradY);
      }
      expect(layer.memory().lastStepHeldBytes).toBe(nchw.memory().lastStepHeldBytes);
      layer.destroy();
      nchw.destroy();
    });

    test('with a padding mode: the pad in NHWC, then the NHWC layer; x and gradY checked at their own size; inputGrad false; memory', async () => {
      const engine = engineOf();
      const c = normalizeConfig({ N: 2, Cin: 2, Cout: 3, H: 4, W: 5, kernel: 3, padding: 1, layout: 'NHWC', paddingMode: 'replicate' });
      const inputs = caseInputs(c, 8);
      const layer = engine.createLayer(c, inputs.params);
      // Outermost the pad, which reads NHWC; inside it the pre-padded NHWC layer: WASM's own, WebGPU's behind host transposes.
      expect(layer).toBeInstanceOf(PaddingModeLayer);
      const padded = (layer as PaddingModeLayer).inner;
      expect(padded.config.layout).toBe('NHWC');
      expect(padded instanceof ChannelsLastLayer).toBe(backend !== 'wasm');
      expect(layer.config).toEqual(c);
      expect(layer.backend).toBe(backend);
      expect(() => layer.forward(new Float32Array(tensorSizes(c).x + 1), 'tune')).toThrow(/x\.length = 81 is invalid: must be 80/);
      await layer.forward(inputs.x, 'tune');
      expect(() => layer.backward(new Float32Array(5))).toThrow(/gradY\.length = 5 is invalid: must be 120/);
      const all = await layer.backward(inputs.gradY);
      const nchw = engine.createLayer(nchwConfig(c), inputs.params);
      await nchw.forward(toChannelsFirst(inputs.x, c.N, c.Cin, c.H * c.W), 'tune');
      expect(nchw.memory().heldForBackwardBytes).toBe(layer.memory().lastStepHeldBytes);
      await nchw.backward(toChannelsFirst(inputs.gradY, c.N, c.Cout, c.H * c.W));
      expect(nchw.memory()).toEqual(layer.memory());
      nchw.destroy();
      await layer.forward(inputs.x, 'eval');
      const params = await layer.backward(inputs.gradY, { inputGrad: false });
      expect(params.gradX).toBeUndefined();
      expect(all.gradX.length).toBe(tensorSizes(c).x);
      layer.destroy();
    });

    const { configs, seed, maxElements } = PLAN[backend];
    test(`${configs} random NHWC configs x 4 modes (seed ${seed})`, async () => {
      const engine = engineOf();
      const arb = configArb({ maxElements, maxSpatial: 9, maxBatch: 3, paddingModes: true, layouts: true })
        .filter((input) => normalizeConfig(input).layout === 'NHWC');
      await fc.assert(fc.asyncProperty(arb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.boolean(), async (config, dataSeed, recompute) => {
        for (const mode of MODES) {
          const r = await runCase(engine, { config, seed: dataSeed, mode, recompute: mode === 'train' && recompute });
          // Known float32 limits (harness.ts, knownLimit: padding modes in train) are the NCHW layer's, not the layout's.
          if (!r.pass && !r.knownLimit) throw new Error(`${describeResult(r)}\n  config ${JSON.stringify(toInput(normalizeConfig(config)))}`);
        }
      }), { seed, numRuns: configs });
    }, 200_000);
  });
}
