/**
 * ResNet-18's ConvBN layers (codegen/models/resnet18.ts: conv1, 16 3x3 convs,
 * 3 downsampling 1x1 convs, no conv bias), one training step (forward +
 * backward through the public layer API, so host copies of x, y, gradY and the
 * gradients are included) per mode, per layer; memory from layer.memory():
 * bytes held between forward and backward, and the peak of step buffers.
 * The same steps' kernels are also timed alone on device-resident buffers.
 * Layers run one after another; for the network we add the held bytes (a
 * network keeps every layer's saved tensors until its backward) and take the
 * largest step peak.
 *
 * `npx tsx bench/resnet18.ts [--quick] [--size 112] [--batch 8]` prints the markdown.
 */
import { configKey, normalizeConfig, tensorSizes, type ConvBNConfig } from '../codegen/config.js';
import { resnet18Layers } from '../codegen/models/resnet18.js';
import { DevicePlan, repetitionsFor, stepPlan } from '../codegen/tuning/measure.js';
import { TORCH_MODES, type TorchResults } from './peers/torch.js';
import { acquireDevice } from '../runtime/webgpu/device.js';
import { createWebGPUEngine } from '../runtime/webgpu/engine.js';
import { PipelineCache } from '../runtime/webgpu/pipelines.js';
import type { ConvBNLayer, Mode } from '../runtime/types.js';
import { randomParams, rng } from '../codegen/tuning/measure.js';
import { collectGarbage, fmt, isEntryScript, stat, type Stat } from './measure.js';

const MODES = ['train', 'train+recompute', 'eval', 'tune', 'deploy'] as const;
type ModeLabel = (typeof MODES)[number];

interface ModeTotals {
  /** Layer API steps (host copies included), summed over layers, one entry per timed pass. */
  ms: number[];
  /** The plan's kernels alone on device-resident buffers, summed over layers, per timed pass. */
  gpuMs: number[];
  held: number;
  peak: number;
}

const MiB = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

async function step(layer: ConvBNLayer, mode: ModeLabel, x: Float32Array, gy: Float32Array): Promise<number> {
  const recompute = mode === 'train+recompute';
  const t = performance.now();
  await layer.forward(x, (recompute ? 'train' : mode) as Mode, { recompute });
  await layer.backward(gy);
  return performance.now() - t;
}

export interface Resnet18Options {
  quick?: boolean;
  device?: GPUDevice;
  pipelines?: PipelineCache;
  /** Timed steps per layer and mode after the first (compile) one. */
  rounds?: number;
  size?: number;
  batch?: number;
  /** PyTorch's figures for the same layers (bench/peers/torch.ts), shown beside ours. */
  torch?: TorchResults;
}

/** The input size and batch of the ResNet-18 section (CONVBN_RESNET_SIZE, CONVBN_RESNET_BATCH; default 112, 8). */
export function resnetShape(): { size: number; batch: number } {
  const env = globalThis.process?.env ?? {};
  return { size: Number(env.CONVBN_RESNET_SIZE ?? 112), batch: Number(env.CONVBN_RESNET_BATCH ?? 8) };
}

export async function resnet18Section(opts: Resnet18Options = {}): Promise<string> {
  // The same shapes in --quick runs: llvmpipe compiles at first use (its disk cache then serves either run).
  const shape = resnetShape();
  const size = opts.size ?? shape.size;
  const batch = opts.batch ?? shape.batch;
  const rounds = opts.rounds ?? 3;
  const device = opts.device ?? (await acquireDevice()).device;
  const engine = await createWebGPUEngine({ device });
  const layers = resnet18Layers(batch, size).map((l) => ({ name: l.name, config: normalizeConfig(l.config) }));
  const totals = Object.fromEntries(MODES.map((m) => [m, { ms: new Array(rounds).fill(0), gpuMs: new Array(rounds).fill(0), held: 0, peak: 0 }])) as Record<ModeLabel, ModeTotals>;
  const pipelines = opts.pipelines ?? new PipelineCache(device);
  const firstMs = Object.fromEntries(MODES.map((m) => [m, 0])) as Record<ModeLabel, number>;
  // Eval's kernels without its BatchNorm ones: exactly what tune mode leaves out, so the least tune can take.
  const evalConvOnlyMs: number[] = new Array(rounds).fill(0);
  const perLayer: string[] = [];
  const t0 = performance.now();
  try {
    // Identical configs (layer1's four 3x3 convs...) share pipelines; every layer still runs.
    const seen = new Set<string>();
    for (const [i, { name, config: c }] of layers.entries()) {
      const r = rng(1000 + i);
      const layer = engine.createLayer(c, randomParams(c, r));
      const x = Float32Array.from({ length: tensorSizes(c).x }, r);
      const gy = Float32Array.from({ length: tensorSizes(c).y }, r);
      const row: Record<string, Stat> = {};
      const mem: Record<string, { held: number; peak: number }> = {};
      const fresh = !seen.has(configKey(c));
      seen.add(configKey(c));
      for (const mode of MODES) firstMs[mode] += await step(layer, mode, x, gy); // compiles on first use
      collectGarbage();
      const samples = Object.fromEntries(MODES.map((m) => [m, [] as number[]]));
      for (let k = 0; k < rounds; k++) {
        for (let j = 0; j < MODES.length; j++) {
          const mode = MODES[(j + k + i) % MODES.length];
          const ms = await step(layer, mode, x, gy);
          samples[mode].push(ms);
          totals[mode].ms[k] += ms;
          const m = layer.memory();
          mem[mode] = { held: m.lastStepHeldBytes, peak: m.lastStepPeakBytes };
        }
      }
      // The same step's kernels alone (no host copies), as the GPU sees them.
      const plan = new DevicePlan(device, pipelines, c, randomParams(c, r), x);
      const steps = Object.fromEntries(MODES.map((m) => {
        const sp = stepPlan(m, c, pipelines.target);
        return [m, [...sp.forward, ...sp.backward]];
      }));
      const evalConvOnly = steps.eval.filter((s) => !s.variant.kind.startsWith('bn_'));
      const onCpu = pipelines.target.profile?.isCpu ?? true;
      const reps = new Map<ModeLabel | undefined, number>();
      for (const mode of MODES) await plan.run(steps[mode]); // compiles (llvmpipe: at first dispatch)
      await plan.run(evalConvOnly);
      for (const mode of [...MODES, undefined]) {
        reps.set(mode, await repetitionsFor((t) => plan.run(mode ? steps[mode] : evalConvOnly, t), onCpu));
      }
      collectGarbage();
      for (let k = 0; k < rounds; k++) {
        for (let j = 0; j <= MODES.length; j++) {
          const mode = MODES[(j + k + i) % (MODES.length + 1)];
          const times = reps.get(mode)!;
          const t = performance.now();
          await plan.run(mode ? steps[mode] : evalConvOnly, times);
          const ms = (performance.now() - t) / times;
          if (mode) totals[mode].gpuMs[k] += ms;
          else evalConvOnlyMs[k] += ms;
        }
      }
      plan.destroy();
      for (const mode of MODES) {
        row[mode] = stat(samples[mode]);
        totals[mode].held += mem[mode].held;
        totals[mode].peak = Math.max(totals[mode].peak, mem[mode].peak);
      }
      perLayer.push(`| ${name}${fresh ? '' : ' (same shape as above)'} | ${c.Cin}→${c.Cout} ${c.H}² k${c.kH} s${c.strideH} | ` +
        `${fmt(row.eval.median)} | ${fmt(row.tune.median)} | ${(row.tune.median / row.eval.median).toFixed(2)} | ` +
        `${MiB(mem.eval.held)} | ${MiB(mem.tune.held)} | ${(mem.tune.held / mem.eval.held).toFixed(2)} |`);
      layer.destroy();
    }
  } finally {
    engine.destroy();
    if (!opts.device) device.destroy();
  }
  const total = Object.fromEntries(MODES.map((m) => [m, stat(totals[m].ms)])) as Record<ModeLabel, Stat>;
  const gpu = Object.fromEntries(MODES.map((m) => [m, stat(totals[m].gpuMs)])) as Record<ModeLabel, Stat>;
  const ev = total.eval.median;
  const evGpu = gpu.eval.median;
  const evHeld = totals.eval.held;
  const floor = stat(evalConvOnlyMs).median / evGpu;
  const evPeak = totals.eval.peak;
  const lines = [
    `Input ${size}x${size}, N = ${batch}, float32, ${layers.length} ConvBN layers (every conv of torchvision's resnet18; ` +
    `pooling, ReLU and residual adds are not ConvBN and not run). Each step: forward + backward through the layer API ` +
    `(host copies in and out included); ${rounds} timed steps per layer and mode after a first, compiling one, modes interleaved. ` +
    `Times are sums over the layers (median over the ${rounds} passes, min–max); held = sum over layers of the bytes kept ` +
    `from forward to backward; peak = the largest per-layer step peak (layer.memory()).`,
    '',
    '| mode | step ms, layer API (all layers) | vs eval | kernels only ms | vs eval | held for backward MiB | vs eval | peak step MiB | vs eval | first step (compile) s |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...MODES.map((m) => `| ${m} | ${fmt(total[m].median)} (${fmt(total[m].min)}–${fmt(total[m].max)}) | ` +
      `${(total[m].median / ev).toFixed(2)} | ${fmt(gpu[m].median)} (${fmt(gpu[m].min)}–${fmt(gpu[m].max)}) | ${(gpu[m].median / evGpu).toFixed(2)} | ` +
      `${MiB(totals[m].held)} | ${(totals[m].held / evHeld).toFixed(2)} | ` +
      `${MiB(totals[m].peak)} | ${(totals[m].peak / evPeak).toFixed(2)} | ${(firstMs[m] / 1000).toFixed(1)} |`),
    '',
    `"Kernels only": the same steps' kernels on device-resident buffers (one submission each, no host copies). ` +
    `Peak: dominated by layer4's weight gradient (9 MiB of weights: gradient, its wgrad partial sums, the readback copy), ` +
    `the same in every mode.`,
    '',
    `Targets (issue 4): tune <= 0.60x eval's held memory: ${(totals.tune.held / evHeld).toFixed(2)}x, ` +
    `**${totals.tune.held / evHeld <= 0.6 ? 'met' : 'not met'}**; tune <= 0.90x eval's step time: ` +
    `through the layer API ${(total.tune.median / ev).toFixed(2)}x, **${total.tune.median / ev <= 0.9 ? 'met' : 'not met'}**; ` +
    `kernels only ${(gpu.tune.median / evGpu).toFixed(2)}x, **${gpu.tune.median / evGpu <= 0.9 ? 'met' : 'not met'}**.`,
    '',
    `How much tune can save here: tune runs eval's convolution kernels and none of its BatchNorm kernels. Eval's plan ` +
    `with its BatchNorm kernels taken out runs in ${fmt(stat(evalConvOnlyMs).median)} ms, **${floor.toFixed(2)}x** eval's ` +
    `kernels-only time, in the same rotation: the BatchNorm passes are ${(100 * (1 - floor)).toFixed(0)}% of an eval step ` +
    `on this adapter, and tune's kernels cannot take less than about ${floor.toFixed(2)}x eval's time${floor > 0.9 ? ' (the 0.90x target needs those passes to be at least 10% of the step)' : ''}.`,
    '',
    ...torchLines(opts.torch, layers.map((l) => l.name), { evGpu, evHeld, ours: gpu, oursHeld: Object.fromEntries(MODES.map((m) => [m, totals[m].held])) }),
    '<details><summary>Per layer (median ms of one step; held MiB)</summary>',
    '',
    '| layer | shape | eval ms | tune ms | tune/eval | eval held | tune held | tune/eval |',
    '|---|---|---|---|---|---|---|---|',
    ...perLayer,
    '',
    '</details>',
    '',
    `ResNet section time: ${((performance.now() - t0) / 1000).toFixed(0)} s.`,
  ];
  return lines.join('\n');
}

/** PyTorch's totals over the same layers beside ours (kernels only), per mode. */
function torchLines(torch: TorchResults | undefined, names: string[],
  ours: { evGpu: number; evHeld: number; ours: Record<string, Stat>; oursHeld: Record<string, number> }): string[] {
  if (!torch) return [];
  const rows = names.map((n) => torch.resnet[n]).filter((r) => r !== undefined);
  if (rows.length !== names.length) return [`PyTorch ran ${rows.length} of the ${names.length} layers; no totals.`, ''];
  const total = (m: (typeof TORCH_MODES)[number]) => ({
    ms: rows.reduce((t, r) => t + r[m].time.median, 0),
    held: rows.reduce((t, r) => t + r[m].held, 0),
    peak: Math.max(...rows.map((r) => r[m].peak)),
  });
  const ev = total('eval');
  return [
    `PyTorch ${torch.torch} (cuDNN ${torch.cudnn}) on the same layers and GPU: the same step per mode (every gradient), CUDA-event ` +
    `times summed over the layers; held = bytes of the tensors autograd saves for backward (parameters not counted), summed; ` +
    `peak = the largest per-layer rise in allocated bytes during a step. Beside them, ours from the table above (kernels only).`,
    '',
    '| mode | PyTorch ms | vs its eval | held MiB | vs its eval | peak MiB | ours ms (kernels) | ours vs PyTorch | ours held MiB |',
    '|---|---|---|---|---|---|---|---|---|',
    ...TORCH_MODES.map((m) => {
      const t = total(m);
      const o = ours.ours[m].median;
      return `| ${m} | ${fmt(t.ms)} | ${(t.ms / ev.ms).toFixed(2)} | ${MiB(t.held)} | ${(t.held / ev.held).toFixed(2)} | ${MiB(t.peak)} | ` +
        `${fmt(o)} | ${(t.ms / o).toFixed(2)}x | ${MiB(ours.oursHeld[m])} |`;
    }),
    '',
    '"ours vs PyTorch": PyTorch\'s time over ours (above 1: ours is faster). Both held figures count x (PyTorch: the input ' +
    'autograd saves; ours: the layer\'s device copy). PyTorch\'s tune saves W\' (the size of the weights) for backward; ours ' +
    'rebuilds it from W in the backward kernels, so it holds what deploy holds.',
    '',
  ];
}

if (isEntryScript(import.meta.url)) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : undefined;
  };
  console.log(await resnet18Section({ quick: process.argv.includes('--quick'), size: arg('size'), batch: arg('batch') }));
}
