/**
 * Running and timing kernels on device-resident buffers, for the tuner and the
 * benchmarks: a layer's plan (the same plans and pipeline cache the runtime
 * uses) is encoded, submitted and waited for with queue.onSubmittedWorkDone().
 * No timestamp queries needed (llvmpipe has none): host clocks around the wait.
 */
import { tensorSizes, type ConvBNConfig, type Mode } from '../config.js';
import { planFor, roleElements, type ModePlan, type PlanStep, type Role } from '../plans.js';
import type { ConvBNParamsInput } from '../../runtime/types.js';
import { foldParams } from '../../runtime/validate.js';
import { BufferUsage, MapMode } from '../../runtime/webgpu/flags.js';
import { mulberry32 } from '../../runtime/random.js';
import type { PipelineCache } from '../../runtime/webgpu/pipelines.js';
import type { Pass, PassChoice } from './choice.js';
import type { KernelTarget } from './select.js';

/** Seeded values in [-0.5, 0.5) (runtime/random.ts's mulberry32, centred): test and bench data. */
export function rng(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => uniform() - 0.5;
}

/** Parameters of realistic scale: weights by fan-in, gamma near 1, running variance in [0.5, 1.5). */
export function randomParams(c: ConvBNConfig, r: () => number): ConvBNParamsInput {
  const fan = (c.Cin / c.groups) * c.kH * c.kW;
  return {
    weight: Float32Array.from({ length: tensorSizes(c).weight }, () => (2 * r()) / Math.sqrt(fan)),
    ...(c.bias ? { bias: Float32Array.from({ length: c.Cout }, () => r()) } : {}),
    gamma: Float32Array.from({ length: c.Cout }, () => 1 + r()),
    beta: Float32Array.from({ length: c.Cout }, () => r()),
    runningMean: Float32Array.from({ length: c.Cout }, () => r()),
    runningVar: Float32Array.from({ length: c.Cout }, () => 1 + r()),
  };
}

const STORAGE = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;

/**
 * A layer's plan run on device-resident buffers: every role gets a buffer
 * (parameters realistic, tensors random), steps are encoded as the runtime
 * does (bindings by reflected name), and a run ends when the queue is done.
 */
export class DevicePlan {
  private readonly buffers = new Map<Role, GPUBuffer>();

  constructor(readonly device: GPUDevice, readonly pipelines: PipelineCache, readonly config: ConvBNConfig, params: ConvBNParamsInput,
    x: Float32Array) {
    const c = config;
    const channels = new Float32Array(5 * c.Cout);
    channels.set(params.bias ?? new Float32Array(c.Cout), 0);
    channels.set(params.gamma, c.Cout);
    channels.set(params.beta, 2 * c.Cout);
    channels.set(params.runningMean, 3 * c.Cout);
    channels.set(params.runningVar, 4 * c.Cout);
    const folded = foldParams(c, params);
    const foldedChannels = new Float32Array(5 * c.Cout);
    foldedChannels.set(folded.bias, 0);
    this.write('weight', params.weight);
    this.write('channels', channels);
    this.write('foldedWeight', folded.weight);
    this.write('foldedChannels', foldedChannels);
    this.write('x', x);
    const r = rng(7);
    this.write('gradY', Float32Array.from({ length: tensorSizes(c).y }, r));
  }

  private write(role: Role, data: Float32Array): void {
    this.device.queue.writeBuffer(this.buffer(role), 0, data);
  }

  private buffer(role: Role): GPUBuffer {
    let b = this.buffers.get(role);
    if (!b) {
      b = this.device.createBuffer({ size: Math.max(16, roleElements(role, this.config) * 4), usage: STORAGE, label: role });
      this.buffers.set(role, b);
    }
    return b;
  }

  /**
   * Encodes `steps` in one compute pass, submits, waits for the queue. `times` > 1 encodes them that many
   * times in the same pass: on a GPU one step takes about as long as a submit-and-wait round trip, so
   * timings divide a repeated run by `times` to measure the kernels rather than the round trip.
   */
  async run(steps: readonly PlanStep[], times = 1): Promise<void> {
    const { device } = this;
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    const encoded = steps.map((s) => {
      const compiled = this.pipelines.get(s.variant, this.config);
      const entries = compiled.kernel.bindings.map((b) => ({ binding: b.binding, resource: { buffer: this.buffer(s.bind[b.name]) } }));
      return { compiled, bindGroup: device.createBindGroup({ layout: compiled.layout, entries }) };
    });
    for (let t = 0; t < times; t++) {
      for (const { compiled, bindGroup } of encoded) {
        pass.setPipeline(compiled.pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(...compiled.kernel.dispatch);
      }
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  }

  async read(role: Role): Promise<Float32Array> {
    const bytes = roleElements(role, this.config) * 4;
    const staging = this.device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const encoder = this.device.createCommandEncoder();
    encoder.copyBufferToBuffer(this.buffer(role), 0, staging, 0, bytes);
    this.device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MapMode.READ);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.destroy();
    return out;
  }

  destroy(): void {
    for (const b of this.buffers.values()) b.destroy();
    this.buffers.clear();
  }
}

/**
 * How many repetitions of `run` one timed sample should hold so that it lasts about `targetMs`: on a
 * GPU a layer's kernels take about as long as a submit-and-wait round trip, which would otherwise be
 * what is timed (DevicePlan.run's `times`). 1 on a CPU rasteriser, where one run takes milliseconds.
 */
export async function repetitionsFor(run: (times: number) => Promise<unknown>, onCpu: boolean, targetMs = 10): Promise<number> {
  if (onCpu) return 1;
  await run(1);
  const t = performance.now();
  await run(1);
  const ms = performance.now() - t;
  return Math.max(1, Math.min(500, Math.ceil(targetMs / Math.max(ms, 1e-3))));
}

/** A training step's plan for a mode label ('train+recompute' included). */
export function stepPlan(mode: string, c: ConvBNConfig, target: KernelTarget): ModePlan {
  const recompute = mode === 'train+recompute';
  return planFor((recompute ? 'train' : mode) as Mode, c, { recompute, target });
}

/** The plan steps of one conv pass in tune mode (dgrad: the input gradient; wgrad: both of its passes). */
export function passSteps(pass: Pass, c: ConvBNConfig, choice: PassChoice, target: KernelTarget = {}): PlanStep[] {
  const plan = planFor('tune', c, { target: { ...target, force: { ...target.force, [pass]: choice } } });
  switch (pass) {
    case 'forward': return [...plan.forward];
    case 'dgrad': return plan.backward.filter((s) => s.bind.gradX === 'gradX');
    case 'wgrad': return plan.backward.filter((s) => s.bind.gradX === undefined);
  }
}
