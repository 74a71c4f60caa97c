/**
 * The wasm backend's threading, memory accounting and input checks: 1 and 2
 * threads give identical bits, recompute gives the same gradients, bad input
 * is refused before any kernel runs, and workers never hold the process.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODES, normalizeConfig, outputShape, tensorSizes } from '../codegen/config.js';
import { ConvBNInputError } from '../codegen/errors.js';
import { createWasmEngine, type KernelChoice } from '../runtime/wasm/engine.js';
import { WasmHeap } from '../runtime/wasm/heap.js';
import { BN } from '../runtime/wasm/layout.js';
import { Runner } from '../runtime/wasm/ops.js';
import { loadModule, MAX_PAGES, ThreadPool } from '../runtime/wasm/pool.js';
import { mulberry32, randomParams, randomTensor } from './helpers/random.js';
import { repoRoot, runCase, sameBits } from './wasm-helpers.js';

type Engine = Awaited<ReturnType<typeof createWasmEngine>>;

let one: Engine;
let two: Engine;

beforeAll(async () => {
  one = await createWasmEngine({ threads: 1 });
  two = await createWasmEngine({ threads: 2 });
});

afterAll(() => {
  one?.destroy();
  two?.destroy();
});

/** Big enough that every job has many tasks spread over both threads. */
const CONFIGS = [
  normalizeConfig({ N: 3, Cin: 16, Cout: 20, H: 17, W: 19, kernel: 3, padding: 1 }),
  normalizeConfig({ N: 2, Cin: 24, Cout: 24, H: 15, W: 15, kernel: 3, stride: 2, padding: [1, 0, 2, 1], groups: 4 }),
  normalizeConfig({ N: 2, Cin: 16, Cout: 32, H: 13, W: 14, kernel: 3, padding: 1, groups: 16 }),
  normalizeConfig({ N: 4, Cin: 32, Cout: 16, H: 12, W: 12, kernel: 1 }),
];

const PATHS: Partial<KernelChoice>[] = [
  {}, { fusePack: false, wgrad: 'simd4' }, { wgrad: 'nhwc' }, { forward: 'scalar', dgrad: 'scalar', wgrad: 'scalar' },
  { forward: 'direct1', dgrad: 'direct1', wgrad: 'simd1' }, { dgradPhases: false },
];

function data(seed: number, c: (typeof CONFIGS)[number]) {
  const rng = mulberry32(seed);
  const o = outputShape(c);
  return {
    ...randomParams(rng, c),
    x: randomTensor(rng, tensorSizes(c).x),
    gradY: randomTensor(rng, o.N * o.C * o.H * o.W),
  };
}

describe('wasm backend: threads', () => {
  it('reports its thread count', () => {
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    expect(two.description).toMatch(/2 threads/);
  });

  it('1 and 2 threads give bit-identical outputs and gradients in every mode and path', async () => {
    for (const [i, c] of CONFIGS.entries()) {
      const d = data(100 + i, c);
      for (const kernels of PATHS) {
        for (const mode of MODES) {
          const a = await runCase(one, c, d, mode, { kernels });
          const b = await runCase(two, c, d, mode, { kernels });
          expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
          for (const k of Object.keys(a)) {
            expect(sameBits(a[k], b[k]), `${JSON.stringify(kernels)} ${mode} ${k} config ${i}`).toBe(true);
          }
        }
      }
    }
  });

  it('recompute gives the same bits as keeping z, and holds less', async () => {
    for (const [i, c] of CONFIGS.entries()) {
      const d = data(200 + i, c);
      const kept = two.createLayer(c, d);
      const re = two.createLayer(c, d, { recompute: true });
      expect(re.options.recompute).toBe(true);
      const y1 = await kept.forward(d.x, 'train');
      const held1 = kept.memory().heldForBackwardBytes;
      const y2 = await re.forward(d.x, 'train');
      const held2 = re.memory().heldForBackwardBytes;
      expect(sameBits(y1, y2)).toBe(true);
      expect(held2).toBeLessThan(held1);
      const g1 = await kept.backward(d.gradY);
      const g2 = await re.backward(d.gradY);
      for (const k of ['gradX', 'gradWeight', 'gradGamma', 'gradBeta'] as const) {
        expect(sameBits(g1[k]!, g2[k]!), `${k} config ${i}`).toBe(true);
      }
      // The per-call option overrides the layer's.
      const y3 = await kept.forward(d.x, 'train', { recompute: true });
      expect(kept.memory().heldForBackwardBytes).toBe(held2);
      expect(y3.length).toBe(y1.length);
      kept.destroy();
      re.destroy();
    }
  });

  it('workers do not keep the process alive', () => {
    const script = [
      "import { createWasmEngine } from './runtime/wasm/engine.ts';",
      'const e = await createWasmEngine({ threads: 2 });',
      'const ch = () => new Float32Array(4).fill(1);',
      "const l = e.createLayer({ N: 1, Cin: 4, Cout: 4, H: 8, W: 8, kernel: 3, padding: 1 }, " +
        '{ weight: new Float32Array(144), bias: ch(), gamma: ch(), beta: ch(), runningMean: ch(), runningVar: ch() });',
      "await l.forward(new Float32Array(256), 'eval');",
      "console.log('done');",
    ].join('\n');
    const withDestroy = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `${script}\ne.destroy();`],
      { cwd: repoRoot, timeout: 60_000, encoding: 'utf8' });
    expect(withDestroy.stdout).toContain('done');
    expect(withDestroy.status).toBe(0);
    const without = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: repoRoot, timeout: 60_000, encoding: 'utf8' });
    expect(without.stdout).toContain('done');
    expect(without.status).toBe(0);
  }, 130_000);
});

describe('wasm backend: job hand-over between threads', () => {
  // Regression: a worker woken late for a job that the other threads had already finished read the next
  // job's kernel, parameters and task count, then claimed from the finished job's task counter. It ran a
  // task of the next job that another thread ran too, and counted it in that job's DONE, so the caller
  // could go on before the job was done (or, with fields of two jobs mixed, ran a task out of range). It
  // showed mostly in the nhwc wgrad (its partial sum adds in place, so a task run twice adds twice), on
  // configs like this one whose tiny jobs (2 wgrad tasks, then 40 sum tasks) follow each other within
  // microseconds: with plain timing about 1 run in 10^3 to 10^4, depending on load, as it needs the caller
  // descheduled between writing a job and opening it. `jitter` makes every thread spin for random lengths
  // between its steps of handing out, taking and finishing tasks: with it the old hand-over gave wrong bits
  // within a few hundred runs of this test (20 of 20 tries), so it fails with near certainty; the plain
  // runs keep the production timing covered too.
  const c = normalizeConfig({
    N: 2, Cin: 5, Cout: 15, H: 1, W: 5, kernel: 2, stride: 3, padding: [0, 1, 0, 0], groups: 5, bias: false,
    eps: 0.1, momentum: 0.1,
  });
  const kernels: Partial<KernelChoice> = { wgrad: 'nhwc' };
  const d = data(300, c);
  const ref: Record<string, Record<string, Float32Array>> = {};

  beforeAll(async () => {
    for (const mode of MODES) ref[mode] = await runCase(one, c, d, mode, { kernels });
  });

  const RUNS: [threads: number, jitter: number, reps: number][] = [[2, 1024, 500], [4, 1024, 500], [2, 0, 500], [4, 0, 500]];
  for (const [threads, jitter, reps] of RUNS) {
    it(`depthwise nhwc wgrad, ${reps} x 4 modes on ${threads} threads${jitter ? ' with jitter' : ''}: the 1-thread bits every time`,
      async () => {
        const engine = await createWasmEngine({ threads, jitter });
        const bad: string[] = [];
        try {
          for (let rep = 0; rep < reps; rep++) {
            for (const mode of MODES) {
              const got = await runCase(engine, c, d, mode, { kernels });
              for (const k of Object.keys(ref[mode])) if (!sameBits(got[k], ref[mode][k])) bad.push(`run ${rep}, ${mode} ${k}`);
            }
          }
        } finally {
          engine.destroy();
        }
        expect(bad).toEqual([]);
      }, 60_000);
  }

  it('every path and config gives the 1-thread bits on 3 jittered threads', async () => {
    const jittered = await createWasmEngine({ threads: 3, jitter: 256 });
    try {
      for (const [i, cfg] of CONFIGS.entries()) {
        const dd = data(400 + i, cfg);
        for (const paths of PATHS) {
          for (const mode of MODES) {
            const a = await runCase(one, cfg, dd, mode, { kernels: paths });
            const b = await runCase(jittered, cfg, dd, mode, { kernels: paths });
            for (const k of Object.keys(a)) {
              expect(sameBits(a[k], b[k]), `${JSON.stringify(paths)} ${mode} ${k} config ${i}`).toBe(true);
            }
          }
        }
      }
    } finally {
      jittered.destroy();
    }
  }, 60_000);
});

describe('wasm backend: host work alongside a job', () => {
  // The backward copies gx out of the heap on the calling thread while the workers start the weight gradient.
  it('runs once on the calling thread, the job still completes, and a failure in it is thrown after the job', async () => {
    const memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    const pool = await ThreadPool.create(await loadModule(true), memory, 2);
    const runner = new Runner(new WasmHeap(memory, 1024, MAX_PAGES), pool);
    try {
      const [N, C, HW] = [3, 5, 7];
      const values = randomTensor(mulberry32(11), N * C * HW);
      const src = runner.heap.alloc(values.length * 4);
      runner.heap.f32(src, values.length).set(values);
      const out = runner.heap.alloc(C * 4);
      const expected = Float32Array.from({ length: C }, (_, c) => {
        let s = 0;
        for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += values[(n * C + c) * HW + i];
        return s;
      });
      const ints = { [BN.N]: N, [BN.C]: C, [BN.HW]: HW, [BN.DY]: src, [BN.GBETA]: out };
      const sums = () => Array.from(runner.heap.f32(out, C), (v, c) => Math.abs(v - expected[c]) / Math.abs(expected[c]));
      let calls = 0;
      await runner.run('chan_sum', ints, C, { alongside: () => { calls++; } });
      expect(calls).toBe(1);
      for (const e of sums()) expect(e).toBeLessThan(1e-6);
      runner.heap.f32(out, C).fill(0);
      await expect(runner.run('chan_sum', ints, C, { alongside: () => { throw new Error('copy failed'); } })).rejects.toThrow('copy failed');
      for (const e of sums()) expect(e).toBeLessThan(1e-6);
      // The pool takes the next job as usual.
      runner.heap.f32(out, C).fill(0);
      await runner.run('chan_sum', ints, C);
      for (const e of sums()) expect(e).toBeLessThan(1e-6);
    } finally {
      pool.destroy();
    }
  });
});

describe('wasm backend: memory accounting', () => {
  const c = normalizeConfig({ N: 2, Cin: 4, Cout: 6, H: 9, W: 9, kernel: 3, padding: 1 });
  const s = tensorSizes(c);
  const xBytes = s.x * 4, yBytes = s.y * 4, chanBytes = c.Cout * 8; // batch mean, invstd: float64

  it('counts what each mode holds for backward', async () => {
    const d = data(5, c);
    const layer = two.createLayer(c, d);
    const params = (s.weight + 5 * c.Cout) * 4;
    expect(layer.memory().parameterBytes).toBe(params);
    const expected: Record<string, number> = {
      tune: xBytes, deploy: xBytes, eval: xBytes + yBytes, train: xBytes + yBytes + 2 * chanBytes,
    };
    for (const mode of MODES) {
      await layer.forward(d.x, mode);
      const m = layer.memory();
      expect(m.heldForBackwardBytes, mode).toBe(expected[mode]);
      await layer.backward(d.gradY);
      const after = layer.memory();
      expect(after.heldForBackwardBytes).toBe(0);
      expect(after.lastStepHeldBytes, mode).toBe(expected[mode]);
      expect(after.lastStepPeakBytes).toBeGreaterThanOrEqual(expected[mode] + yBytes + xBytes);
    }
    // Deploy folded W', b' once: they count as parameters.
    expect(layer.memory().parameterBytes).toBe(params + (s.weight + c.Cout) * 4);
    // An inference forward leaves the last training step's figures alone.
    const lastStep = layer.memory();
    await layer.forward(d.x, 'eval', { requiresGrad: false });
    expect(layer.memory().heldForBackwardBytes).toBe(0);
    expect(layer.memory().lastStepHeldBytes).toBe(lastStep.lastStepHeldBytes);
    expect(layer.memory().lastStepPeakBytes).toBe(lastStep.lastStepPeakBytes);
    await expect(layer.backward(d.gradY)).rejects.toThrow(/requiresGrad/);
    layer.destroy();
  });

  it('train recompute holds only x and the batch statistics', async () => {
    const d = data(6, c);
    const layer = two.createLayer(c, d, { recompute: true });
    await layer.forward(d.x, 'train');
    expect(layer.memory().heldForBackwardBytes).toBe(xBytes + 2 * chanBytes);
    await layer.backward(d.gradY);
    layer.destroy();
  });

  it('frees everything on destroy (the heap does not grow over repeated layers)', async () => {
    const d = data(7, c);
    for (let i = 0; i < 3; i++) {
      const layer = two.createLayer(c, d);
      await layer.forward(d.x, 'train');
      await layer.backward(d.gradY);
      layer.destroy();
    }
    const used = (two as unknown as { heap: { used: number } }).heap.used;
    for (let i = 0; i < 5; i++) {
      const layer = two.createLayer(c, d);
      await layer.forward(d.x, 'train');
      await layer.backward(d.gradY);
      layer.destroy();
    }
    expect((two as unknown as { heap: { used: number } }).heap.used).toBe(used);
  });
});

describe('wasm backend: input checks', () => {
  const c = normalizeConfig({ N: 1, Cin: 2, Cout: 3, H: 5, W: 5, kernel: 3 });
  const d = data(9, c);

  it('refuses bad parameters', () => {
    expect(() => two.createLayer(c, { ...d, weight: new Float32Array(3) })).toThrow(ConvBNInputError);
    const nanVar = d.runningVar.slice();
    nanVar[1] = NaN;
    expect(() => two.createLayer(c, { ...d, runningVar: nanVar })).toThrow(/runningVar\[1\]/);
    const negVar = d.runningVar.slice();
    negVar[0] = -1;
    expect(() => two.createLayer(c, { ...d, runningVar: negVar })).toThrow(/eps/);
    expect(() => two.createLayer(c, { ...d, bias: undefined })).toThrow(/bias/);
    const layer = two.createLayer(c, d);
    expect(() => layer.setParameters({ ...d, gamma: new Float32Array([1, 2]) })).toThrow(/gamma/);
    expect(() => layer.setFoldedParameters({ weight: new Float32Array(1), bias: new Float32Array(3) })).toThrow(/folded weight/);
    layer.destroy();
  });

  it('refuses bad forward and backward calls', async () => {
    const layer = two.createLayer(c, d);
    expect(() => layer.forward(new Float32Array(3), 'eval')).toThrow(/x.length/);
    expect(() => layer.forward([1, 2] as unknown as Float32Array, 'eval')).toThrow(/Float32Array/);
    expect(() => layer.forward(d.x, 'inference' as never)).toThrow(/mode/);
    expect(() => layer.forward(d.x, 'eval', { requiresGrad: 'yes' as never })).toThrow(/requiresGrad/);
    await expect(layer.backward(d.gradY)).rejects.toThrow(/requiresGrad/);
    await layer.forward(d.x, 'eval');
    expect(() => layer.backward(new Float32Array(2))).toThrow(/gradY/);
    layer.destroy();
    expect(() => layer.forward(d.x, 'eval')).toThrow(/destroyed/);
  });

  it('refuses a train batch with one value per channel, and bad engine options', async () => {
    const tiny = normalizeConfig({ N: 1, Cin: 1, Cout: 1, H: 3, W: 3, kernel: 3 });
    const one = () => new Float32Array([1]);
    const layer = two.createLayer(tiny, {
      weight: new Float32Array(9).fill(0.1), bias: one(), gamma: one(), beta: one(), runningMean: one(), runningVar: one(),
    });
    expect(() => layer.forward(new Float32Array(9), 'train')).toThrow(ConvBNInputError);
    expect((await layer.forward(new Float32Array(9), 'eval')).length).toBe(1);
    layer.destroy();
    await expect(createWasmEngine({ threads: 0 })).rejects.toThrow(/threads/);
    await expect(createWasmEngine({ threads: 2, jitter: -1 })).rejects.toThrow(/jitter/);
    expect(() => two.createLayer(c, d, { kernels: { forward: 'gemm' } })).toThrow(/1x1/);
  });

  it('propagates NaN in x as PyTorch does (no checks on x values)', async () => {
    const layer = two.createLayer(c, d);
    const x = d.x.slice();
    x[0] = NaN;
    const y = await layer.forward(x, 'eval');
    expect(Number.isNaN(y[0])).toBe(true);
    expect(y.some((v) => !Number.isNaN(v))).toBe(true);
    layer.destroy();
  });

  it('updateParameters replaces what it names and keeps the running stats train mode updated', async () => {
    const layer = two.createLayer(c, d);
    await layer.forward(d.x, 'train');
    await layer.backward(d.gradY);
    const afterTrain = await layer.getParameters();
    const weight = d.weight.map((v) => v * 2);
    layer.updateParameters({ weight });
    const now = await layer.getParameters();
    expect(now.weight).toEqual(weight);
    expect(now.runningMean).toEqual(afterTrain.runningMean);
    expect(now.runningVar).toEqual(afterTrain.runningVar);
    expect(now.gamma).toEqual(afterTrain.gamma);
    expect(() => layer.updateParameters({ weights: weight } as never)).toThrow(ConvBNInputError);
    expect(() => layer.updateParameters({ gamma: new Float32Array(2) })).toThrow(/gamma\.length/);
    // Deploy re-folds from the updated parameters.
    const folded = await layer.getFoldedParameters();
    layer.updateParameters({ gamma: d.gamma.map((v) => v + 1) });
    expect((await layer.getFoldedParameters()).weight).not.toEqual(folded.weight);
    layer.destroy();
  });

  it('train mode updates the running statistics; getParameters returns copies', async () => {
    const layer = two.createLayer(c, d);
    const before = await layer.getParameters();
    await layer.forward(d.x, 'train', { requiresGrad: false });
    const after = await layer.getParameters();
    expect(sameBits(after.runningMean, before.runningMean)).toBe(false);
    after.runningMean.fill(0);
    expect((await layer.getParameters()).runningMean.some((v) => v !== 0)).toBe(true);
    layer.destroy();
  });
});

