/**
 * Every WebGPU convolution implementation the selector or the tuner can pick
 * (direct, register-blocked with its tile shapes, workgroup-memory implicit
 * GEMM) on small random configs (stride, asymmetric padding, dilation, groups,
 * depthwise multipliers), forward and backward in every mode, train also with
 * recompute, against the float64 oracle with the suite's TOLERANCE.
 * Each variant is forced through the engine's `kernels.force` option, the
 * same switch benchmarks and the tuner use.
 */
import { setMaxListeners } from 'node:events';
import { afterAll, describe, expect, test } from 'vitest';
import { normalizeConfig, tensorSizes, toInput, type ConvBNConfig, type ConvBNConfigInput, type Mode } from '../codegen/config.js';
import { generateKernel } from '../codegen/generate.js';
import { allVariants, planFor } from '../codegen/plans.js';
import { tuningCandidates, divisorUpTo } from '../codegen/tuning/candidates.js';
import { TuningCache } from '../codegen/tuning/cache.js';
import { choiceProblem, describeChoice, PASSES, type KernelChoice, type Pass, type PassChoice } from '../codegen/tuning/choice.js';
import { GENERIC_CPU, GENERIC_GPU, profileFromInfo } from '../codegen/tuning/profile.js';
import { selectKernels } from '../codegen/tuning/select.js';
import { canFlatten } from '../codegen/tiles/forward.js';
import { relativeError, TOLERANCE } from '../runtime/check/compare.js';
import { acquireDevice } from '../runtime/webgpu/device.js';
import { createWebGPUEngine } from '../runtime/webgpu/engine.js';
import { PipelineCache } from '../runtime/webgpu/pipelines.js';
import { mulberry32, randomParams, randomTensor, randomValidConfig } from './helpers/random.js';
import { referenceCase, type CaseInputs } from './oracle/reference.js';
import { IN_CI } from './helpers/backends.js';
import { produceOn } from '../runtime/check/run.js';

type Force = Partial<Record<Pass, PassChoice | 'direct' | 'reg' | 'wg'>>;

/** Named variant families; tiles that depend on the config are built per config. */
const FAMILIES: Record<string, (c: ConvBNConfig) => Force> = {
  direct: () => ({ forward: 'direct', dgrad: 'direct', wgrad: 'direct' }),
  'reg (heuristic)': () => ({ forward: 'reg', dgrad: 'reg', wgrad: 'reg' }),
  'reg (odd tiles, kernel rows unrolled, one kernel row per wgrad invocation)': (c) => ({
    forward: { algo: 'reg', tile: { CO_B: 1, PY: 3, PX: 5, UNROLL_KH: 1, FLAT: 0 } },
    dgrad: { algo: 'reg', tile: { CI_B: 1, PY: 3, PX: 5 } },
    wgrad: { algo: 'reg', tile: { CO_B: 1, CI_B: 1, PX: 3, KH_B: 1 } },
    ...(canFlatten(c) ? { forward: { algo: 'reg', tile: { CO_B: 1, PY: 1, PX: 7, UNROLL_KH: 0, FLAT: 1 } } } : {}),
  }),
  'reg (wide channel blocks)': (c) => {
    const ci = divisorUpTo(c.Cin / c.groups, 16);
    const co = divisorUpTo(c.Cout / c.groups, 16);
    return {
      forward: { algo: 'reg', tile: { CO_B: co, PY: 2, PX: 2, UNROLL_KH: 0, FLAT: 0 } },
      dgrad: { algo: 'reg', tile: { CI_B: ci, PY: 1, PX: 4 } },
      wgrad: { algo: 'reg', tile: { CO_B: co, CI_B: ci, PX: 6, KH_B: c.kH } },
    };
  },
  'wg (heuristic)': () => ({ forward: 'wg', dgrad: 'wg', wgrad: 'wg' }),
  'wg (8x16 tiles, K step 4)': () => ({
    forward: { algo: 'wg', tile: { TM: 8, TN: 16, TK: 4, KS: 1 } },
    dgrad: { algo: 'wg', tile: { TM: 16, TN: 8, TK: 4, KS: 1 } },
    wgrad: { algo: 'wg', tile: { TM: 8, TN: 8, TK: 16, KS: 1 } },
  }),
  'wg (K split across 2 and 4 slices of the workgroup)': () => ({
    forward: { algo: 'wg', tile: { TM: 32, TN: 32, TK: 8, KS: 4 } },
    dgrad: { algo: 'wg', tile: { TM: 16, TN: 32, TK: 4, KS: 2 } },
    wgrad: { algo: 'wg', tile: { TM: 16, TN: 16, TK: 8, KS: 4 } },
  }),
};

const RUNS: { mode: Mode; recompute?: boolean }[] = [
  { mode: 'train' }, { mode: 'train', recompute: true }, { mode: 'eval' }, { mode: 'tune' }, { mode: 'deploy' },
];

/** Produced tensors keyed as the oracle names them (the same outputs `convbn check` compares). */
async function runAll(engine: Awaited<ReturnType<typeof createWebGPUEngine>>, c: ConvBNConfig, inputs: CaseInputs,
  params: ReturnType<typeof randomParams>, mode: Mode, recompute: boolean): Promise<Record<string, Float32Array>> {
  const layer = engine.createLayer(c, params, { recompute });
  try {
    return await produceOn(layer, inputs.x as Float32Array, inputs.grad_y as Float32Array, mode);
  } finally {
    layer.destroy();
  }
}

/** Worst relative error per mode run, with the tensor that gave it. */
async function checkForced(c: ConvBNConfig, force: Force, seed: number, runs = RUNS): Promise<{ run: string; tensor: string; error: number }[]> {
  const engine = await createWebGPUEngine({ device: device!, kernels: { force } });
  try {
    const rng = mulberry32(seed);
    const params = randomParams(rng, c);
    const s = tensorSizes(c);
    const inputs: CaseInputs = {
      x: randomTensor(rng, s.x), weight: params.weight, ...(params.bias ? { bias: params.bias } : {}),
      gamma: params.gamma, beta: params.beta, running_mean: params.runningMean, running_var: params.runningVar,
      grad_y: randomTensor(rng, s.y),
    };
    const results: { run: string; tensor: string; error: number }[] = [];
    for (const { mode, recompute } of runs) {
      const ref = referenceCase(c, inputs, mode);
      const got = await runAll(engine, c, inputs, params, mode, recompute ?? false);
      let worst = { tensor: '-', error: 0 };
      for (const [name, expected] of Object.entries(ref)) {
        const err = got[name] ? relativeError(got[name], expected) : Infinity;
        if (!(err <= worst.error)) worst = { tensor: name, error: Number.isNaN(err) ? Infinity : err };
      }
      results.push({ run: `${mode}${recompute ? '+recompute' : ''}`, ...worst });
    }
    expect(engine.uncapturedErrors).toEqual([]);
    return results;
  } finally {
    engine.destroy();
  }
}

/** Small random configs: every awkward corner, few elements (llvmpipe compiles every kernel). */
function randomConfigs(seed: number, count: number): ConvBNConfig[] {
  const rng = mulberry32(seed);
  return Array.from({ length: count }, () => normalizeConfig(randomValidConfig(rng, { maxElements: 1200, maxSpatial: 9 })));
}

/** Configs chosen to reach the paths random draws hit rarely: 1x1 flattening, stride 2 phases, depthwise x2. */
const FIXED: ConvBNConfigInput[] = [
  { N: 2, Cin: 6, Cout: 4, H: 5, W: 7, kernel: 1, bias: true },
  // A 1x1 whose planes come in fours: the heuristic flattened tile reads x as vec4 (the odd-tile family does not).
  { N: 2, Cin: 5, Cout: 4, H: 4, W: 8, kernel: 1 },
  { N: 2, Cin: 4, Cout: 6, H: 9, W: 8, kernel: 3, stride: 2, padding: [1, 0, 2, 1], bias: false },
  { N: 1, Cin: 3, Cout: 6, H: 7, W: 6, kernel: [3, 2], padding: [2, 1], dilation: [2, 1], groups: 3 },
  { N: 2, Cin: 3, Cout: 4, H: 11, W: 10, kernel: 5, stride: [2, 3], padding: 2 },
  // Stride phases no tap reaches (their gradient is 0), phases of unequal sizes, stride and dilation sharing a factor.
  { N: 2, Cin: 4, Cout: 6, H: 7, W: 6, kernel: 1, stride: 2 },
  { N: 1, Cin: 2, Cout: 4, H: 9, W: 11, kernel: 3, stride: 2, dilation: 2, padding: [2, 1, 1, 2] },
];

let device: GPUDevice | undefined;
try {
  device = (await acquireDevice()).device;
  // Every engine below shares this device and adds its own error listener.
  setMaxListeners(64, device as unknown as EventTarget);
} catch (e) {
  if (IN_CI) throw e;
  console.warn(`webgpu-kernels tests skipped: ${(e as Error).message}`);
}

describe('kernel selection (no device)', () => {
  test('the selector gives a fitting choice for every random config, on a CPU and on a GPU profile', () => {
    for (const c of randomConfigs(11, 60)) {
      for (const profile of [GENERIC_CPU, GENERIC_GPU]) {
        const k = selectKernels(c, { profile });
        for (const pass of PASSES) expect(choiceProblem(pass, k[pass], c), `${pass} ${describeChoice(k[pass])}`).toBeUndefined();
        const algo = k.forward.algo;
        expect(algo).toBe(profile.isCpu ? 'reg' : 'wg');
        for (const v of allVariants(c, { kernels: k })) expect(() => generateKernel(v, c)).not.toThrow();
      }
    }
  });

  test('adapter profiles: CPU rasterisers are told apart from GPUs', () => {
    expect(profileFromInfo({ device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'OpenGL ES 3.2 Mesa 22.3.6' }).isCpu).toBe(true);
    expect(profileFromInfo({ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H100' }).isCpu).toBe(false);
    expect(profileFromInfo({ description: 'SwiftShader Device (Subzero)' }).isCpu).toBe(true);
  });

  test('tuner candidates fit their config and come heuristic first', () => {
    for (const c of randomConfigs(12, 100)) {
      for (const profile of [GENERIC_CPU, GENERIC_GPU]) {
        for (const pass of PASSES) {
          const list = tuningCandidates(pass, c, profile);
          expect(list.length).toBeGreaterThan(1);
          expect(describeChoice(list[0])).toBe(describeChoice(selectKernels(c, { profile })[pass]));
          for (const choice of list) expect(choiceProblem(pass, choice, c)).toBeUndefined();
        }
      }
    }
  });

  test('the tuning cache: exact config first, then the same layer at another batch size; misfits ignored', () => {
    const c = normalizeConfig({ N: 8, Cin: 8, Cout: 8, H: 6, W: 6, kernel: 3, padding: 1 });
    const cache = new TuningCache();
    const choice: PassChoice = { algo: 'reg', tile: { CO_B: 4, PY: 1, PX: 6, UNROLL_KH: 0, FLAT: 0 } };
    cache.store(GENERIC_CPU.key, c, { forward: choice });
    expect(cache.lookup(GENERIC_CPU.key, c, 'forward')).toEqual(choice);
    expect(cache.lookup(GENERIC_CPU.key, normalizeConfig({ ...toInput(c), N: 3 }), 'forward')).toEqual(choice);
    expect(cache.lookup('another adapter', c, 'forward')).toBeUndefined();
    expect(cache.lookup(GENERIC_CPU.key, c, 'dgrad')).toBeUndefined();
    const round = TuningCache.parse(JSON.stringify(cache.toJSON()));
    expect(selectKernels(c, { profile: GENERIC_CPU, cache: round }).forward).toEqual(choice);
    // A cached tile that cannot run the config (CO_B does not divide 6) falls back to the heuristic.
    const other = normalizeConfig({ N: 8, Cin: 8, Cout: 6, H: 6, W: 6, kernel: 3, padding: 1 });
    cache.store(GENERIC_CPU.key, other, { forward: choice });
    expect(selectKernels(other, { profile: GENERIC_CPU, cache }).forward).toEqual(selectKernels(other, { profile: GENERIC_CPU }).forward);
  });

  test('flattened 1x1 forwards read x as vec4 exactly when planes and tiles come in fours', () => {
    const fwd = (input: ConvBNConfigInput, tile?: PassChoice) => {
      const c = normalizeConfig(input);
      const step = planFor('tune', c, { target: { profile: GENERIC_CPU, ...(tile ? { force: { forward: tile } } : {}) } }).forward[0];
      expect(step.variant.params?.FLAT).toBe(1);
      return generateKernel(step.variant, c).code;
    };
    expect(fwd({ N: 2, Cin: 5, Cout: 4, H: 4, W: 8, kernel: 1 })).toContain('alias XElement = vec4<f32>;');
    expect(fwd({ N: 2, Cin: 6, Cout: 4, H: 5, W: 7, kernel: 1 })).toContain('alias XElement = f32;');
    expect(fwd({ N: 2, Cin: 5, Cout: 4, H: 4, W: 8, kernel: 1 },
      { algo: 'reg', tile: { CO_B: 1, PY: 1, PX: 7, UNROLL_KH: 0, FLAT: 1 } })).toContain('alias XElement = f32;');
  });

  test('train statistics come from the forward epilogue (bn_stats_tiles) where a reg or wg tile\'s partials fit in y', () => {
    const plan = (input: ConvBNConfigInput, profile = GENERIC_CPU, recompute = false) =>
      planFor('train', normalizeConfig(input), { recompute, target: { profile } });
    const kinds = (steps: readonly { variant: { kind: string } }[]) => steps.map((st) => st.variant.kind);
    const layer = { N: 2, Cin: 4, Cout: 8, H: 12, W: 12, kernel: 3, padding: 1 };
    const train = plan(layer);
    expect(kinds(train.forward)).toEqual(['conv_fwd_reg', 'bn_stats_tiles', 'bn_apply']);
    expect(train.forward[0].variant.flags.STATS).toBe(true);
    expect(train.forward[0].bind.statsScratch).toBe('y');
    // One partial per tile: 2 images x 12 rows x 1 column of 12 pixels (PX = 12 fits a 12-wide row).
    const regTile = train.forward[0].variant.params!;
    expect(train.forward[1].variant.params).toEqual({ TILES: 2 * Math.ceil(12 / regTile.PY) * Math.ceil(12 / regTile.PX) });
    // Recompute's backward conv only rebuilds z; eval keeps bn_stats.
    expect(plan(layer, GENERIC_CPU, true).backward[0].variant.flags.STATS).toBe(false);
    expect(kinds(planFor('eval', normalizeConfig(layer), { target: { profile: GENERIC_CPU } }).forward)).toContain('bn_stats');
    // The GPU path: one partial per channel and N tile of the GEMM (N = 2 x 12 x 12 pixels).
    const gpu = plan(layer, GENERIC_GPU);
    expect(kinds(gpu.forward)).toEqual(['conv_fwd_wg', 'bn_stats_tiles', 'bn_apply']);
    expect(gpu.forward[0].variant.flags.STATS).toBe(true);
    expect(gpu.forward[1].variant.params).toEqual({ TILES: Math.ceil(288 / gpu.forward[0].variant.params!.TN) });
    expect(plan(layer, GENERIC_GPU, true).backward[0].variant.flags.STATS).toBe(false);
    // Two values per channel, one per tile: 3 floats per tile do not fit in y.
    expect(kinds(plan({ N: 2, Cin: 2, Cout: 2, H: 1, W: 1, kernel: 1 }).forward)).toEqual(['conv_fwd_reg', 'bn_stats', 'bn_apply']);
  });

  test('a forced tile that does not fit is refused naming the problem', () => {
    const c = normalizeConfig({ N: 1, Cin: 4, Cout: 6, H: 5, W: 5, kernel: 3 });
    expect(() => planFor('tune', c, { target: { force: { forward: { algo: 'reg', tile: { CO_B: 4, PY: 1, PX: 4, UNROLL_KH: 0, FLAT: 0 } } } } }))
      .toThrow(/CO_B = 4 must divide/);
  });
});

describe.skipIf(!device)('every kernel family against the float64 oracle', () => {
  afterAll(() => device?.destroy());

  // Each family gets the fixed configs and its own random ones; seeds differ per family so, together,
  // the families see many configs. Tolerance: runtime/check/compare.ts TOLERANCE, as the shared vectors.
  const names = Object.keys(FAMILIES);
  names.forEach((name, f) => {
    test(`${name}`, async () => {
      const configs = [...FIXED.map((x) => normalizeConfig(x)), ...randomConfigs(100 + f, 3)];
      const failures: string[] = [];
      for (const [i, c] of configs.entries()) {
        const force = FAMILIES[name](c);
        for (const r of await checkForced(c, force, 1000 * f + i)) {
          if (!(r.error <= TOLERANCE)) failures.push(`${JSON.stringify(c)} ${r.run}: ${r.tensor} ${r.error.toExponential(2)}`);
        }
      }
      expect(failures).toEqual([]);
    });
  });

  test.each(['reg', 'wg'] as const)('train statistics from %s tile partials: a constant channel gets exactly its value as mean and 0 as variance', async (algo) => {
    const c = normalizeConfig({ N: 2, Cin: 3, Cout: 4, H: 7, W: 9, kernel: 3, padding: 1 });
    const kernels = { force: { forward: algo } };
    const engine = await createWebGPUEngine({ device: device!, kernels });
    try {
      const forward = planFor('train', c, { target: new PipelineCache(device!, kernels).target }).forward;
      expect(forward.map((st) => st.variant.kind)).toEqual([`conv_fwd_${algo}`, 'bn_stats_tiles', 'bn_apply']);
      const params = randomParams(mulberry32(5), c);
      // Zero weights: z is the bias, one constant per channel, so xhat = 0 and y = beta exactly.
      params.weight.fill(0);
      const layer = engine.createLayer(c, params);
      const y = await layer.forward(randomTensor(mulberry32(6), tensorSizes(c).x), 'train', { requiresGrad: false });
      const after = await layer.getParameters();
      layer.destroy();
      const plane = y.length / (c.N * c.Cout);
      for (let i = 0; i < y.length; i++) expect(y[i]).toBe(params.beta[Math.floor(i / plane) % c.Cout]);
      for (let o = 0; o < c.Cout; o++) {
        // Unbiased variance 0: the running variance only decays; the running mean moves towards the bias.
        expect(after.runningVar[o]).toBeCloseTo((1 - c.momentum) * params.runningVar[o], 6);
        expect(after.runningMean[o]).toBeCloseTo((1 - c.momentum) * params.runningMean[o] + c.momentum * params.bias![o], 6);
      }
      expect(engine.uncapturedErrors).toEqual([]);
    } finally {
      engine.destroy();
    }
  });

  // train (TUNE off, wgrad_reduce without FOLD) and tune (TUNE on, FOLD on) reach every tile-dependent kernel;
  // the other modes differ only in per-channel kernels the families above cover.
  test('every tuner candidate (CPU and GPU lists) on two configs, train and tune', async () => {
    const configs = [
      normalizeConfig({ N: 2, Cin: 8, Cout: 16, H: 9, W: 9, kernel: 3, padding: 1, stride: 2 }),
      normalizeConfig({ N: 2, Cin: 12, Cout: 8, H: 6, W: 5, kernel: 1 }),
    ];
    const failures: string[] = [];
    for (const [i, c] of configs.entries()) {
      const lists = PASSES.map((pass) => {
        const seen = new Map<string, PassChoice>();
        for (const profile of [GENERIC_CPU, GENERIC_GPU]) for (const ch of tuningCandidates(pass, c, profile)) seen.set(describeChoice(ch), ch);
        return [...seen.values()];
      });
      // Candidates of the three passes are paired up by index (the shorter lists wrap), so every candidate runs once.
      const rounds = Math.max(...lists.map((l) => l.length));
      for (let k = 0; k < rounds; k++) {
        const force = Object.fromEntries(PASSES.map((pass, p) => [pass, lists[p][k % lists[p].length]])) as Partial<KernelChoice>;
        for (const r of await checkForced(c, force, 7000 + 10 * i + k, [{ mode: 'train' }, { mode: 'tune' }])) {
          if (!(r.error <= TOLERANCE)) {
            failures.push(`${JSON.stringify(c)} ${PASSES.map((p) => describeChoice(force[p]!)).join(' | ')} ${r.run}: ${r.tensor} ${r.error.toExponential(2)}`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  test('convbn tune times the candidates, writes the cache, and the runtime and gen pick the winners from it', async () => {
    const { mkdtemp, readFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { runTuneCommand } = await import('../codegen/cli/tune.js');
    const dir = await mkdtemp(path.join(tmpdir(), 'convbn-tune-'));
    try {
      const file = path.join(dir, 'tuning.json');
      const log = console.log;
      console.log = () => {};
      let code: number;
      try {
        code = await runTuneCommand(['--N', '2', '--Cin', '4', '--Cout', '8', '--H', '6', '--W', '6', '--kernel', '3', '--padding', '1',
          '--cache', file, '--rounds', '1']);
      } finally {
        console.log = log;
      }
      expect(code).toBe(0);
      const cache = TuningCache.parse(await readFile(file, 'utf8'));
      const [adapter] = Object.keys(cache.data.adapters);
      const c = normalizeConfig({ N: 2, Cin: 4, Cout: 8, H: 6, W: 6, kernel: 3, padding: 1 });
      const entry = cache.lookupAll(adapter, c);
      for (const pass of PASSES) expect(entry[pass], pass).toBeDefined();
      // The runtime: the pipeline cache of an engine given the cache (option kernels.cache) plans with the cached winners.
      const plan = planFor('tune', c, { target: new PipelineCache(device!, { cache }).target });
      const expected = planFor('tune', c, { kernels: entry as KernelChoice });
      expect(plan.forward.map((st) => st.variant)).toEqual(expected.forward.map((st) => st.variant));
      expect(plan.backward.map((st) => st.variant)).toEqual(expected.backward.map((st) => st.variant));
      // convbn gen --tuning: the manifest's tune-mode kernels are the cached winners.
      const { runGenCommand } = await import('../codegen/cli/gen.js');
      const out = path.join(dir, 'kernels');
      console.log = () => {};
      try {
        expect(await runGenCommand(['--N', '2', '--Cin', '4', '--Cout', '8', '--H', '6', '--W', '6', '--kernel', '3', '--padding', '1',
          '--tuning', file, '--out', out])).toBe(0);
      } finally {
        console.log = log;
      }
      const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8')) as {
        layers: { plans: Record<string, { forward: string[] }> }[]; kernels: Record<string, { kind: string; params?: Record<string, number> }>;
      };
      const forwardKernel = manifest.kernels[manifest.layers[0].plans.tune.forward[0]];
      const cachedForward = entry.forward!;
      if (cachedForward.algo !== 'direct') expect(forwardKernel.params).toEqual(cachedForward.tile);
      const worst = await checkForced(c, entry as Force, 99, [{ mode: 'tune' }]);
      expect(worst[0].error).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a batch split into chunks (device buffer limits) sums the chunked wgrad per chunk correctly, tune mode', async () => {
    const c = normalizeConfig({ N: 4, Cin: 4, Cout: 4, H: 6, W: 6, kernel: 3, padding: 1 });
    const perImage = tensorSizes(normalizeConfig({ ...toInput(c), N: 1 }));
    // Room for two images' tensors (and their wgrad partial sums) per chunk.
    const bytes = 2 * 4 * Math.max(perImage.x, perImage.y, 64 * (perImage.weight + c.Cout));
    const engine = await createWebGPUEngine({
      device: device!, kernels: { force: { forward: 'reg', dgrad: 'reg', wgrad: 'reg' } }, limits: { maxStorageBufferBindingSize: bytes },
    });
    try {
      const rng = mulberry32(5);
      const params = randomParams(rng, c);
      const x = randomTensor(rng, tensorSizes(c).x);
      const gy = randomTensor(rng, tensorSizes(c).y);
      const ref = referenceCase(c, {
        x, weight: params.weight, bias: params.bias, gamma: params.gamma, beta: params.beta,
        running_mean: params.runningMean, running_var: params.runningVar, grad_y: gy,
      }, 'tune');
      const layer = engine.createLayer(c, params);
      expect(relativeError(await layer.forward(x, 'tune'), ref.y)).toBeLessThanOrEqual(TOLERANCE);
      const g = await layer.backward(gy);
      expect(relativeError(g.gradX, ref.grad_x)).toBeLessThanOrEqual(TOLERANCE);
      expect(relativeError(g.gradWeight!, ref.grad_weight)).toBeLessThanOrEqual(TOLERANCE);
      expect(relativeError(g.gradGamma!, ref.grad_gamma)).toBeLessThanOrEqual(TOLERANCE);
      expect(relativeError(g.gradBeta!, ref.grad_beta)).toBeLessThanOrEqual(TOLERANCE);
      layer.destroy();
    } finally {
      engine.destroy();
    }
  });
});
