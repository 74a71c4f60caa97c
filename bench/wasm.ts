/**
 * WASM backend benchmark: layers a–g of shared/PLATFORM.md at N = 8, forward
 * in tune mode, interleaved in one process with onnxruntime-web (WASM EP, the
 * same thread count, Conv with BN folded) and tfjs-backend-wasm (1 thread),
 * plus a tune-mode training step for layer a. Timed with tinybench in rounds:
 * every round runs each implementation of a layer a few times, the order
 * rotating, so slow phases of this shared machine hit all of them.
 *
 * `npx tsx bench/wasm.ts [--quick]` prints the markdown. Env: CONVBN_BENCH_LAYERS=ad (a subset),
 * CONVBN_BENCH_ROUNDS=N (default 8, quick 2).
 */
import os from 'node:os';
import { forwardFlops, normalizeConfig, toInput, type ConvBNConfig } from '../codegen/config.js';
import { relativeError } from '../runtime/check/compare.js';
import { foldParams } from '../runtime/validate.js';
import type { ConvBNLayer, ConvBNParamsInput } from '../runtime/types.js';
import { createWasmEngine } from '../runtime/wasm/engine.js';
import { setKernelProfiling } from '../runtime/wasm/ops.js';
import { ortConv } from './peers/onnx.js';
import { tfjsConv } from './peers/tfjs.js';
import { cell, fmt, gflops, interleaved, isEntryScript, runsForLayer, stat, type Fn, type Stat } from './measure.js';
import { LAYERS } from './layers.js';
import { rng } from '../codegen/tuning/measure.js';

/**
 * Before each implementation's samples in a round: 50 ms idle, then one untimed call. onnxruntime-web's pool
 * threads spin after its calls and slowed whatever ran next in this process (our depthwise layer d measured
 * 3.0 ms interleaved against 1.8 ms alone); settled, each library's figures match it run alone in its own process.
 */
const SETTLE = { idleMs: 50, warm: true };

/** 128-bit WASM SIMD peak per core on this machine (shared/PLATFORM.md). */
const PEAK_PER_CORE = 58.6;

function params(c: ConvBNConfig, r: () => number): ConvBNParamsInput {
  const fan = (c.Cin / c.groups) * c.kH * c.kW;
  const wN = c.Cout * fan;
  return {
    weight: Float32Array.from({ length: wN }, () => (2 * r()) / Math.sqrt(fan)),
    bias: Float32Array.from({ length: c.Cout }, () => r()),
    gamma: Float32Array.from({ length: c.Cout }, () => 1 + r()),
    beta: Float32Array.from({ length: c.Cout }, () => r()),
    runningMean: Float32Array.from({ length: c.Cout }, () => r()),
    runningVar: Float32Array.from({ length: c.Cout }, () => 1 + r()),
  };
}

/** Median process CPU time (user + system, ms) of `fn` over `runs` calls: on one thread, it is steadier than wall time here. */
async function cpuMedian(fn: Fn, runs: number): Promise<number> {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const u0 = process.cpuUsage();
    await fn();
    const u = process.cpuUsage(u0);
    ms.push((u.user + u.system) / 1000);
  }
  return stat(ms).median;
}

/** Why a layer can miss a target here; shown next to a miss. */
const KNOWN_CAUSES: Record<string, string> = {
  d: 'depthwise: 0.03 GFLOP against 12.8 MB copied in and out per call, so memory traffic bounds every library ' +
    '(see its share of one core in the CPU-time table)',
  e: 'grouped with 4 channels per group: the 4 out-channel x 8 pixel micro-kernel sees only 4 input channels per tap, ' +
    'so each load feeds fewer multiply-adds than on the dense layers (see the CPU-time table)',
};

interface LayerResult {
  key: string; speedup: number; peakShare: number; fastestShare: number;
  /** Where a call goes: its conv jobs (packing included) and the rest (x copied in, y out, setup), median ms. */
  split: ForwardSplit;
  flops: number;
  /** The conv jobs' GFLOP/s as a share of the peak. */
  jobShare: number;
}

interface ForwardSplit { call: number; jobs: number; rest: number; copiedMB: number }

/** Medians over `runs` forward calls (no grad) of the call and of its kernel jobs, wall clock. */
async function forwardSplit(layer: ConvBNLayer, x: Float32Array, yLength: number, runs: number): Promise<ForwardSplit> {
  const calls: number[] = [];
  const jobs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const prof = setKernelProfiling(true)!;
    const t = performance.now();
    await layer.forward(x, 'tune', { requiresGrad: false });
    calls.push(performance.now() - t);
    jobs.push([...prof.values()].reduce((a, b) => a + b, 0));
  }
  setKernelProfiling(false);
  const call = stat(calls).median;
  const job = stat(jobs).median;
  return { call, jobs: job, rest: call - job, copiedMB: ((x.length + yLength) * 4) / 1e6 };
}

/** Each issue-3 target: met, or missed by how much and why (`coreShare`: one thread's CPU-time share of a core's peak). */
function targetVerdicts(results: LayerResult[], stepRatio: number, coreShare: Record<string, number>): string[] {
  const noise = (key: string) => {
    const r = results.find((x) => x.key === key);
    if (!r || coreShare[key] === undefined) return ': no known cause (noise on this shared host?)';
    return `: its conv jobs alone ran at ${(100 * r.jobShare).toFixed(0)}% of the peak, and the rest of the call ` +
      `(${r.split.copiedMB.toFixed(1)} MB of x copied in and y out on the calling thread, setup) took ` +
      `${fmt(r.split.rest)} of its ${fmt(r.split.call)} ms (the table under this one); the wall clock also moves with ` +
      `this shared host: the fastest run reached ${(100 * r.fastestShare).toFixed(0)}%, and one thread's CPU time ` +
      `${(100 * coreShare[key]).toFixed(0)}% of a core's peak (the CPU-time table)`;
  };
  const why = (key: string) => (KNOWN_CAUSES[key] ? `: ${KNOWN_CAUSES[key]}` : noise(key));
  const lines = results.map(({ key, speedup }) => speedup >= 1.2
    ? `- layer ${key}: ${speedup.toFixed(2)}x onnxruntime-web, target >= 1.2x **met**`
    : `- layer ${key}: ${speedup.toFixed(2)}x onnxruntime-web, target >= 1.2x **missed** by ${(1.2 - speedup).toFixed(2)}x${why(key)}`);
  for (const { key, peakShare } of results.filter((r) => 'abcfg'.includes(r.key))) {
    // One decimal: a share just under 60% must not read as "60%, missed by 0 points".
    const pct = (100 * peakShare).toFixed(1);
    lines.push(peakShare >= 0.6
      ? `- layer ${key}: ${pct}% of the 2-core peak, target >= 60% **met**`
      : `- layer ${key}: ${pct}% of the 2-core peak, target >= 60% **missed** by ${(60 - 100 * peakShare).toFixed(1)} points${why(key)}`);
  }
  if (Number.isFinite(stepRatio)) {
    lines.push(stepRatio <= 3
      ? `- training step of layer a: ${stepRatio.toFixed(2)}x its forward, target <= 3x **met**`
      : `- training step of layer a: ${stepRatio.toFixed(2)}x its forward on the wall clock, target <= 3x **missed** by ` +
        `${(stepRatio - 3).toFixed(2)}x: the step is three convolutions of equal cost plus the backward's copies, transposes ` +
        'and sums (the breakdown under the training-step table); the one-thread CPU-time figure below is the steadier ' +
        'measure on this host');
  }
  return lines;
}

/** Timed runs per round for a layer (runsForLayer; --quick: one for tfjs's slow grouped conv e). */
function layerIterations(flops: number, iterations: number, quick: boolean, key: string): number {
  if (quick) return key === 'e' ? 1 : iterations;
  return runsForLayer(flops, iterations);
}

/** Medians over `runs` training steps of the forward, the backward and the backward's kernel groups (ms, wall clock). */
async function stepBreakdown(layer: ConvBNLayer, x: Float32Array, gy: Float32Array, runs: number) {
  const rows: Record<string, number[]> = {};
  const add = (k: string, v: number) => (rows[k] ??= []).push(v);
  for (let i = 0; i < runs; i++) {
    let prof = setKernelProfiling(true)!;
    let t = performance.now();
    await layer.forward(x, 'tune');
    add('forward', performance.now() - t);
    add('forwardConv', [...prof].filter(([k]) => k.startsWith('conv_')).reduce((s, [, v]) => s + v, 0));
    prof = setKernelProfiling(true)!;
    t = performance.now();
    await layer.backward(gy);
    add('backward', performance.now() - t);
    const sum = (test: (k: string) => boolean) => [...prof].filter(([k]) => test(k)).reduce((s, [, v]) => s + v, 0);
    add('dgrad', sum((k) => k.startsWith('conv_') || k === 'pack_weights' || k === 'pack_input'));
    const isSums = (k: string) => k === 'chan_sum' || k === 'wgrad_nhwc_chan_sums';
    add('wgrad', sum((k) => k.includes('wgrad') && !isSums(k)));
    add('wgradCore', sum((k) => k === 'wgrad_nhwc' || k === 'wgrad4' || k === 'wgrad1' || k === 'wgrad_scalar'));
    add('sums', sum(isSums));
  }
  setKernelProfiling(false);
  return Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, stat(v).median])) as
    Record<'forward' | 'forwardConv' | 'backward' | 'dgrad' | 'wgrad' | 'wgradCore' | 'sums', number>;
}

/** A tune-mode training step of `layer` on x and gy: forward, then every gradient (gradX unless `inputGrad` is false). */
function tuneStep(layer: ConvBNLayer, x: Float32Array, gy: Float32Array, inputGrad = true): Fn {
  return async () => {
    await layer.forward(x, 'tune');
    return layer.backward(gy, { inputGrad });
  };
}

/** Layers whose backward takes the strided dgrad: their tune-mode step with it, with the zero-inserted one, and without gradX. */
const STRIDED_STEP_LAYERS = ['b', 'g'];

/**
 * A tune-mode training step of a strided layer, interleaved: the stride-phase dgrad (default), the
 * zero-inserted dgrad it replaces (`dgradPhases: false`), and `inputGrad: false` (no dgrad at all:
 * what a network's first layer needs).
 */
async function stridedStepRow(
  engine: Awaited<ReturnType<typeof createWasmEngine>>, key: string, c: ConvBNConfig, p: ConvBNParamsInput,
  x: Float32Array, gy: Float32Array, rounds: number, iterations: number,
): Promise<string> {
  const phases = engine.createLayer(c, p);
  const zeros = engine.createLayer(c, p, { kernels: { dgradPhases: false } });
  try {
    const t = await interleaved({
      forward: () => phases.forward(x, 'tune', { requiresGrad: false }),
      phases: tuneStep(phases, x, gy),
      zeros: tuneStep(zeros, x, gy),
      noGradX: tuneStep(phases, x, gy, false),
    }, rounds, iterations, SETTLE);
    const f = t.forward.median;
    const vs = (s: Stat) => `${cell(s)} | ${(s.median / f).toFixed(2)}x`;
    return `| ${key} | ${LAYERS[key].label} | ${cell(t.forward)} | ${vs(t.phases)} | ${vs(t.zeros)} | ${vs(t.noGradX)} |`;
  } finally {
    phases.destroy();
    zeros.destroy();
  }
}

/**
 * Layer a with NHWC tensors (the WASM layer transposes them in its heap) beside the same layer in NCHW,
 * interleaved: the forward and the tune-mode step.
 */
async function layoutRows(
  engine: Awaited<ReturnType<typeof createWasmEngine>>, c: ConvBNConfig, p: ConvBNParamsInput,
  x: Float32Array, gy: Float32Array, rounds: number, iterations: number,
): Promise<string[]> {
  const nchw = engine.createLayer(c, p);
  const nhwc = engine.createLayer({ ...toInput(c), layout: 'NHWC' }, p);
  try {
    const t = await interleaved({
      forwardNchw: () => nchw.forward(x, 'tune', { requiresGrad: false }),
      forwardNhwc: () => nhwc.forward(x, 'tune', { requiresGrad: false }),
      stepNchw: tuneStep(nchw, x, gy),
      stepNhwc: tuneStep(nhwc, x, gy),
    }, rounds, iterations, SETTLE);
    const vs = (a: Stat, b: Stat) => `${(a.median / b.median).toFixed(2)}x`;
    return [
      '| layer a, tune mode | NCHW ms | NHWC ms | NHWC vs NCHW |',
      '|---|---|---|---|',
      `| forward (no grad) | ${cell(t.forwardNchw)} | ${cell(t.forwardNhwc)} | ${vs(t.forwardNhwc, t.forwardNchw)} |`,
      `| training step | ${cell(t.stepNchw)} | ${cell(t.stepNhwc)} | ${vs(t.stepNhwc, t.stepNchw)} |`,
    ];
  } finally {
    nchw.destroy();
    nhwc.destroy();
  }
}

/**
 * One thread, CPU time: what one core does per forward (copies in and out
 * included) while it runs, whatever else the shared host is doing. Run before
 * any peer starts (their idle threads would add CPU time to this process).
 */
async function cpuTimeSection(layers: [string, ConvBNConfig][], runs: number): Promise<{ markdown: string; coreShare: Record<string, number> }> {
  const engine = await createWasmEngine({ threads: 1 });
  const rows: string[] = [];
  const coreShare: Record<string, number> = {};
  let train = '';
  try {
    for (const [key, c] of layers) {
      const r = rng(key.charCodeAt(0) + 100);
      const layer = engine.createLayer(c, params(c, r));
      const x = Float32Array.from({ length: c.N * c.Cin * c.H * c.W }, r);
      const flops = forwardFlops(c);
      const fwd = await cpuMedian(() => layer.forward(x, 'tune', { requiresGrad: false }), runs);
      const g = flops / fwd / 1e6;
      coreShare[key] = g / PEAK_PER_CORE;
      rows.push(`| ${key} | ${fmt(fwd)} | ${g.toFixed(1)} | ${((100 * g) / PEAK_PER_CORE).toFixed(0)}% |`);
      if (key === 'a') {
        const y = await layer.forward(x, 'tune', { requiresGrad: false });
        const gy = Float32Array.from({ length: y.length }, r);
        const step = await cpuMedian(tuneStep(layer, x, gy), runs);
        train = `Training step (tune, layer a), one thread, CPU time: forward ${fmt(fwd)} ms, step ${fmt(step)} ms, ` +
          `**${(step / fwd).toFixed(2)}x**.`;
      }
      layer.destroy();
    }
  } finally {
    engine.destroy();
  }
  const markdown = [
    '| layer | ours 1t CPU ms (median) | GFLOP/s per core | % of one core\'s peak |',
    '|---|---|---|---|',
    ...rows,
    '',
    train,
  ].join('\n');
  return { markdown, coreShare };
}

export async function runWasmBench(opts: { quick?: boolean } = {}): Promise<{ title: string; markdown: string }> {
  const threads = Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  const rounds = Number(globalThis.process?.env?.CONVBN_BENCH_ROUNDS ?? (opts.quick ? 2 : 8));
  const iterations = opts.quick ? 1 : 3;
  const selected = Object.entries(LAYERS)
    .filter(([key]) => {
      const only = (globalThis.process?.env?.CONVBN_BENCH_LAYERS ?? '').split('').filter((k) => k in LAYERS);
      return only.length === 0 || only.includes(key);
    })
    .map(([key, l]): [string, ConvBNConfig] => [key, normalizeConfig(l.config)]);
  const cpuSection = await cpuTimeSection(selected, opts.quick ? 3 : 9);
  const engine = await createWasmEngine({ threads });
  const peak = PEAK_PER_CORE * threads;
  const rows: string[] = [];
  const notes: string[] = [];
  const ratios: number[] = [];
  const results: LayerResult[] = [];
  let stepRatio = Number.NaN;
  let trainSection = '';
  const stridedRows: string[] = [];
  try {
    const only = (globalThis.process?.env?.CONVBN_BENCH_LAYERS ?? '').split('').filter((k) => k in LAYERS);
    for (const [key, layerDef] of Object.entries(LAYERS)) {
      if (only.length > 0 && !only.includes(key)) continue;
      const c = normalizeConfig(layerDef.config);
      const r = rng(key.charCodeAt(0));
      const p = params(c, r);
      const x = Float32Array.from({ length: c.N * c.Cin * c.H * c.W }, r);
      const flops = forwardFlops(c);
      const layer = engine.createLayer(c, p) as ConvBNLayer & { kernels: { forward: string } };
      const folded = foldParams(c, p);
      const ort = await ortConv(c, x, folded.weight, folded.bias, threads);
      const tf = await tfjsConv(c, x, p.weight, folded.bias);
      // Same computation? (tfjs gets the unfolded weights: it is only a speed reference.)
      const ours = await layer.forward(x, 'tune', { requiresGrad: false });
      const theirs = await ort.run();
      const diff = relativeError(ours, theirs);
      const st = await interleaved({
        ours: () => layer.forward(x, 'tune', { requiresGrad: false }),
        ort: () => ort.run(),
        tfjs: () => tf.run(),
      }, rounds, layerIterations(flops, iterations, opts.quick ?? false, key), SETTLE);
      const speedup = st.ort.median / st.ours.median;
      ratios.push(speedup);
      const ourG = flops / st.ours.median / 1e6;
      const split = await forwardSplit(layer, x, ours.length, 9);
      results.push({ key, speedup, peakShare: ourG / peak, fastestShare: flops / st.ours.min / 1e6 / peak, split, flops,
        jobShare: flops / split.jobs / 1e6 / peak });
      rows.push(`| ${key} | ${layerDef.label} | ${(flops / 1e9).toFixed(2)} | ${layer.kernels.forward} | ${cell(st.ours)} | ` +
        `${ourG.toFixed(1)} | ${((100 * ourG) / peak).toFixed(0)}% | ${cell(st.ort)} | ${gflops(flops, st.ort.median)} | ` +
        `${cell(st.tfjs)} | ${gflops(flops, st.tfjs.median)} | ${speedup.toFixed(2)}x | ${diff.toExponential(1)} |`);
      if (c.groups > 1) notes.push(`layer ${key}: tfjs ${tf.note}`);
      await ort.release();
      tf.dispose();

      if (key === 'a') {
        // Tune-mode training step (forward + every gradient) against our forward alone.
        const gy = Float32Array.from({ length: ours.length }, r);
        const t = await interleaved({
          forward: () => layer.forward(x, 'tune', { requiresGrad: false }),
          step: tuneStep(layer, x, gy),
        }, rounds, iterations, SETTLE);
        await layer.forward(x, 'tune');
        await layer.backward(gy);
        const m = layer.memory();
        stepRatio = t.step.median / t.forward.median;
        const parts = await stepBreakdown(layer, x, gy, 9);
        const layouts = await layoutRows(engine, c, p, x, gy, rounds, iterations);
        trainSection = [
          '| layer a, tune mode | ms median (min–max) | vs forward |',
          '|---|---|---|',
          `| forward (no grad) | ${cell(t.forward)} | 1.00x |`,
          `| training step: forward + grad x, W, b, gamma, beta | ${cell(t.step)} | ${(t.step.median / t.forward.median).toFixed(2)}x |`,
          '',
          `Held between forward and backward: ${(m.lastStepHeldBytes / 2 ** 20).toFixed(1)} MiB (x only); ` +
          `peak step buffers ${(m.lastStepPeakBytes / 2 ** 20).toFixed(1)} MiB.`,
          '',
          `Where a step goes (medians of 9 steps, wall clock, kernel jobs timed one by one): forward ${fmt(parts.forward)} ms ` +
          `(its conv ${fmt(parts.forwardConv)} ms); backward ${fmt(parts.backward)} ms = dgrad conv ${fmt(parts.dgrad)} ms ` +
          `+ wgrad ${fmt(parts.wgrad)} ms (${fmt(parts.wgradCore)} ms of it the main job: each task's transposes and ` +
          `multiply-adds, while this thread also copies gx out; the rest adds the partial sums) + bias-gradient sums ` +
          `${fmt(parts.sums)} ms + dy copied in, the small gradients and the rest ` +
          `${fmt(parts.backward - parts.dgrad - parts.wgrad - parts.sums)} ms. ` +
          `Three convolutions of equal cost make 3x by themselves: the step's ratio to the forward stays under 3x only ` +
          `while the backward's own copies, transposes and sums weigh less than the forward's copies (x in, y out) twice.`,
          '',
          'With NHWC tensors (`layout: \'NHWC\'`: x and gradY copied in as they are and transposed to NCHW by a kernel ' +
          'job in the heap, y and gradX transposed back before they are copied out), the same protocol:',
          '',
          ...layouts,
        ].join('\n');
      }
      if (STRIDED_STEP_LAYERS.includes(key)) {
        const gy = Float32Array.from({ length: ours.length }, r);
        stridedRows.push(await stridedStepRow(engine, key, c, p, x, gy, rounds, iterations));
      }
      layer.destroy();
    }
  } finally {
    engine.destroy();
  }
  const stridedSection = stridedRows.length === 0 ? [] : [
    '',
    'Strided layers, tune mode, the same protocol (ms median (min–max), and vs the forward): the backward\'s input ' +
    'gradient as one stride-1 correlation per stride phase of gx (the default), as one correlation over dz with zeros ' +
    'inserted between its values (`kernels: { dgradPhases: false }`: (stride² - 1) of every stride² multiply-adds ' +
    'meet a zero), and left out (`backward(gradY, { inputGrad: false })`: a network\'s first layer, whose input is the data).',
    '',
    '| layer | shape | forward | step, stride phases | vs forward | step, zero-inserted dz | vs forward | step without gradX | vs forward |',
    '|---|---|---|---|---|---|---|---|---|',
    ...stridedRows,
  ];
  const header = [
    `| layer | shape | GFLOP | our path | ours ${threads}t ms | GFLOP/s | % of ${threads}-core peak | ` +
    `onnxruntime-web ${threads}t ms | GFLOP/s | tfjs-wasm 1t ms | GFLOP/s | ours vs ORT | rel. diff vs ORT |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const markdown = [
    `Float32, N = 8, forward in tune mode (BN applied while packing weights), ${threads} threads, ` +
    `medians of ${rounds} interleaved rounds x ${iterations} runs (${4 * iterations} for layer d, a few ms each) (min–max). Each implementation starts its ` +
    `samples in a round after a full garbage collection, ${SETTLE.idleMs} ms idle and one untimed call: onnxruntime-web's pool threads spin after its ` +
    `calls, and without the pause they slowed whatever ran next in this process; with it, each library measures as it ` +
    `does run alone in a process of its own. Peak: ${peak.toFixed(0)} GFLOP/s ` +
    `(${PEAK_PER_CORE} per core, 128-bit SIMD, from shared/PLATFORM.md). Times include copying x in and y out.`,
    '',
    ...header,
    ...rows,
    '',
    `onnxruntime-web ${(await import('onnxruntime-web')).env.versions.web ?? ''}: WASM execution provider, ` +
    `\`env.wasm.numThreads = ${threads}\` (its threaded build runs on Node worker_threads), a one-node Conv model ` +
    `with BN folded (built in code, bench/peers/onnx-model.ts). tfjs-backend-wasm: \`fused.conv2d\` in NHWC, ` +
    `one thread (its threaded build does not start in Node), output read back with \`data()\`.`,
    ...notes.map((n) => `- ${n}`),
    '',
    `Geometric-mean speedup over onnxruntime-web: ${Math.exp(ratios.reduce((s, v) => s + Math.log(v), 0) / ratios.length).toFixed(2)}x.`,
    '',
    `Where one of our forward calls goes (${threads} threads, medians of 9 calls after the rounds above, wall clock): ` +
    'the kernel jobs (weights packed, the conv with its input packing fused) and the rest of the call: x copied into ' +
    'the WebAssembly heap and y copied out to a new array, on the calling thread while the workers wait, and setup.',
    '',
    '| layer | call ms | conv jobs ms | conv jobs GFLOP/s | % of peak | rest ms | MB copied in + out |',
    '|---|---|---|---|---|---|---|',
    ...results.map(({ key, split, flops, jobShare }) => `| ${key} | ${fmt(split.call)} | ${fmt(split.jobs)} | ` +
      `${gflops(flops, split.jobs)} | ${(100 * jobShare).toFixed(0)}% | ${fmt(split.rest)} | ` +
      `${split.copiedMB.toFixed(1)} |`),
    '',
    '### Training step',
    '',
    trainSection,
    ...stridedSection,
    '',
    '### Targets (issue 3), from this run',
    '',
    ...targetVerdicts(results, stepRatio, cpuSection.coreShare),
    '',
    '### One core, CPU time',
    '',
    'Wall-clock figures above move with whatever else runs on this shared 2-vCPU host (peers included: ' +
    'their idle threads spin). Process CPU time of a one-thread engine measures what a core achieves while it runs:',
    '',
    cpuSection.markdown,
  ].join('\n');
  return { title: 'WASM backend (AssemblyScript SIMD) vs onnxruntime-web and tfjs-backend-wasm', markdown };
}

if (isEntryScript(import.meta.url)) {
  const { markdown, title } = await runWasmBench({ quick: process.argv.includes('--quick') });
  console.log(`## ${title}\n\n${markdown}`);
}
