/**
 * One ConvBN layer on WebGPU: parameters on the device (with a host copy),
 * forward and backward executed from the mode plans in codegen/plans.ts.
 */
import { outputShape, tensorSizes, type ConvBNConfig, type Mode } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import { planFor, roleElements, type ModePlan, type PersistentRole, type Role, type StepRole } from '../../codegen/plans.js';
import type {
  ConvBNGrads, ConvBNLayer, ConvBNParams, ConvBNParamsInput, FoldedParams, ForwardOptions, LayerOptions, MemoryStats,
} from '../types.js';
import { checkFolded, checkMode, checkParams, checkTensor, foldParams } from '../validate.js';
import { uploadable, type BufferPool } from './buffers.js';
import type { PipelineCache } from './pipelines.js';
import { BufferUsage, MapMode } from './flags.js';

export interface WebGPUContext {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  /** Throws if the device is gone (lost or destroyed). */
  assertUsable(): void;
}

const STORAGE = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;

interface Held {
  readonly mode: Mode;
  readonly plan: ModePlan;
  readonly buffers: Map<StepRole, GPUBuffer>;
}

/** [bias | gamma | beta | running mean | running var]: the layout templates/common.wgsl reads. */
function packChannels(c: ConvBNConfig, p: { bias?: Float32Array; gamma?: Float32Array; beta?: Float32Array;
  runningMean?: Float32Array; runningVar?: Float32Array }): Float32Array {
  const out = new Float32Array(5 * c.Cout);
  if (p.bias) out.set(p.bias, 0);
  if (p.gamma) out.set(p.gamma, c.Cout);
  if (p.beta) out.set(p.beta, 2 * c.Cout);
  if (p.runningMean) out.set(p.runningMean, 3 * c.Cout);
  if (p.runningVar) out.set(p.runningVar, 4 * c.Cout);
  return out;
}

export class WebGPULayer implements ConvBNLayer {
  readonly backend = 'webgpu' as const;
  readonly options: Readonly<Required<LayerOptions>>;
  private readonly persistent = new Map<PersistentRole, GPUBuffer>();
  private host: ConvBNParams | undefined;
  /** True once train mode has changed the running stats on the device. */
  private hostStatsStale = false;
  private folded: FoldedParams | undefined;
  private held: Held | undefined;
  private stepLive = 0;
  private stepPeak = 0;
  private lastHeld = 0;
  private lastPeak = 0;
  private destroyed = false;
  /** Calls on one layer run one at a time: forward and backward share held state. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: WebGPUContext,
    readonly config: ConvBNConfig,
    params: ConvBNParamsInput | undefined,
    options: LayerOptions,
  ) {
    this.options = { recompute: options.recompute ?? false };
    if (params) this.setParameters(params);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('this ConvBN layer was destroyed');
    this.ctx.assertUsable();
  }

  private writePersistent(role: PersistentRole, data: Float32Array): void {
    let buffer = this.persistent.get(role);
    if (!buffer) {
      buffer = this.ctx.pool.acquire(roleElements(role, this.config) * 4, STORAGE, role);
      this.persistent.set(role, buffer);
    }
    this.ctx.device.queue.writeBuffer(buffer, 0, uploadable(data));
  }

  setParameters(params: ConvBNParamsInput): void {
    this.assertAlive();
    checkParams(this.config, params);
    this.host = {
      weight: params.weight.slice(),
      bias: params.bias?.slice(),
      gamma: params.gamma.slice(),
      beta: params.beta.slice(),
      runningMean: params.runningMean.slice(),
      runningVar: params.runningVar.slice(),
    };
    this.hostStatsStale = false;
    this.folded = undefined;
    this.writePersistent('weight', this.host.weight);
    this.writePersistent('channels', packChannels(this.config, this.host));
  }

  private requireParams(): ConvBNParams {
    if (!this.host) throw new ConvBNInputError('params', undefined, 'must be set (createLayer(config, params) or setParameters) before forward');
    return this.host;
  }

  getParameters(): Promise<ConvBNParams> {
    return this.serial(async () => {
      this.assertAlive();
      const host = await this.syncHost();
      return {
        weight: host.weight.slice(), bias: host.bias?.slice(), gamma: host.gamma.slice(), beta: host.beta.slice(),
        runningMean: host.runningMean.slice(), runningVar: host.runningVar.slice(),
      };
    });
  }

  /** Reads the running stats back after train mode changed them. */
  private async syncHost(): Promise<ConvBNParams> {
    const host = this.requireParams();
    if (this.hostStatsStale) {
      const [channels] = await this.read([{ buffer: this.persistent.get('channels')!, elements: 5 * this.config.Cout }]);
      const C = this.config.Cout;
      host.runningMean = channels.slice(3 * C, 4 * C);
      host.runningVar = channels.slice(4 * C, 5 * C);
      this.hostStatsStale = false;
    }
    return host;
  }

  getFoldedParameters(): Promise<FoldedParams> {
    return this.serial(async () => {
      this.assertAlive();
      const f = await this.ensureFolded();
      return { weight: f.weight.slice(), bias: f.bias.slice() };
    });
  }

  setFoldedParameters(params: FoldedParams): void {
    this.assertAlive();
    checkFolded(this.config, params);
    this.uploadFolded({ weight: params.weight.slice(), bias: params.bias.slice() });
  }

  private uploadFolded(f: FoldedParams): void {
    this.folded = f;
    this.writePersistent('foldedWeight', f.weight);
    this.writePersistent('foldedChannels', packChannels(this.config, { bias: f.bias }));
  }

  /** Deploy folds once, on the host in float64, from the current parameters. */
  private async ensureFolded(): Promise<FoldedParams> {
    if (!this.folded) this.uploadFolded(foldParams(this.config, await this.syncHost()));
    return this.folded!;
  }

  forward(x: Float32Array, mode: Mode, options: ForwardOptions = {}): Promise<Float32Array> {
    checkMode(mode);
    checkTensor('x', x, tensorSizes(this.config).x);
    const out = outputShape(this.config);
    if (mode === 'train' && out.N * out.H * out.W < 2) {
      throw new ConvBNInputError('N * Hout * Wout', out.N * out.H * out.W,
        'must be >= 2 in train mode (batch variance needs more than one value per channel)');
    }
    const recompute = options.recompute ?? this.options.recompute;
    const requiresGrad = options.requiresGrad ?? true;
    return this.serial(async () => {
      this.assertAlive();
      this.requireParams();
      if (mode === 'deploy') await this.ensureFolded();
      this.dropHeld();
      this.stepLive = 0;
      this.stepPeak = 0;
      const plan = planFor(mode, this.config, { recompute });
      const buffers = new Map<StepRole, GPUBuffer>();
      this.ctx.device.queue.writeBuffer(this.stepBuffer(buffers, 'x'), 0, uploadable(x));
      const [y] = await this.run(plan.forward, buffers, [plan.output]);
      if (mode === 'train') {
        this.hostStatsStale = true;
        this.folded = undefined;
      }
      for (const [role, buffer] of buffers) {
        if (!requiresGrad || !plan.held.includes(role)) this.releaseStep(buffers, role, buffer);
      }
      if (requiresGrad) {
        this.held = { mode, plan, buffers };
      } else {
        this.lastHeld = 0;
        this.lastPeak = this.stepPeak;
      }
      return y;
    });
  }

  backward(gradY: Float32Array): Promise<ConvBNGrads> {
    checkTensor('gradY', gradY, tensorSizes(this.config).y);
    return this.serial(async () => {
      this.assertAlive();
      const held = this.held;
      if (!held) throw new ConvBNInputError('backward', 'called', 'needs a forward with requiresGrad (the default) first');
      this.held = undefined;
      const buffers = held.buffers;
      const heldBytes = this.stepLive;
      this.ctx.device.queue.writeBuffer(this.stepBuffer(buffers, 'gradY'), 0, uploadable(gradY));
      const [gradX, gradWeight, channelGrads] = await this.run(held.plan.backward, buffers, ['gradX', 'gradWeight', 'channelGrads']);
      for (const [role, buffer] of buffers) this.releaseStep(buffers, role, buffer);
      this.lastHeld = heldBytes;
      this.lastPeak = this.stepPeak;
      const C = this.config.Cout;
      const gradBias = channelGrads.slice(0, C);
      if (held.mode === 'deploy') return { gradX, gradFoldedWeight: gradWeight, gradFoldedBias: gradBias };
      return {
        gradX,
        gradWeight,
        gradBias: this.config.bias ? gradBias : undefined,
        gradGamma: channelGrads.slice(C, 2 * C),
        gradBeta: channelGrads.slice(2 * C, 3 * C),
      };
    });
  }

  private stepBuffer(buffers: Map<StepRole, GPUBuffer>, role: StepRole): GPUBuffer {
    let buffer = buffers.get(role);
    if (!buffer) {
      const bytes = roleElements(role, this.config) * 4;
      buffer = this.ctx.pool.acquire(bytes, STORAGE, role);
      buffers.set(role, buffer);
      this.stepLive += bytes;
      this.stepPeak = Math.max(this.stepPeak, this.stepLive);
    }
    return buffer;
  }

  private releaseStep(buffers: Map<StepRole, GPUBuffer>, role: StepRole, buffer: GPUBuffer): void {
    buffers.delete(role);
    this.stepLive -= roleElements(role, this.config) * 4;
    this.ctx.pool.release(buffer);
  }

  private bufferFor(role: Role, buffers: Map<StepRole, GPUBuffer>): GPUBuffer {
    const persistent = this.persistent.get(role as PersistentRole);
    if (persistent) return persistent;
    return this.stepBuffer(buffers, role as StepRole);
  }

  /** Encodes the steps in one pass, then reads the named roles back. */
  private async run(steps: ModePlan['forward'], buffers: Map<StepRole, GPUBuffer>, outputs: StepRole[]): Promise<Float32Array[]> {
    const { device } = this.ctx;
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (const s of steps) {
      const compiled = this.ctx.pipelines.get(s.variant, this.config);
      const entries = compiled.kernel.bindings.map((b) => {
        const role = s.bind[b.name];
        if (!role) throw new Error(`plan step ${s.variant.kind} does not bind '${b.name}'`);
        if (roleElements(role, this.config) !== b.elements) {
          throw new Error(`plan binds role ${role} (${roleElements(role, this.config)} elements) to '${b.name}' (${b.elements})`);
        }
        return { binding: b.binding, resource: { buffer: this.bufferFor(role, buffers) } };
      });
      pass.setPipeline(compiled.pipeline);
      pass.setBindGroup(0, device.createBindGroup({ layout: compiled.layout, entries }));
      const [dx, dy, dz] = compiled.kernel.dispatch;
      pass.dispatchWorkgroups(dx, dy, dz);
    }
    pass.end();
    const results = await this.readWith(encoder, outputs.map((role) => ({
      buffer: buffers.get(role) ?? this.bufferFor(role, buffers),
      elements: roleElements(role, this.config),
    })));
    const oom = await device.popErrorScope();
    const validation = await device.popErrorScope();
    const error = validation ?? oom;
    if (error) throw new Error(`WebGPU error in a convbn kernel (a bug, please report): ${error.message}`);
    return results;
  }

  private read(sources: { buffer: GPUBuffer; elements: number }[]): Promise<Float32Array[]> {
    return this.readWith(this.ctx.device.createCommandEncoder(), sources);
  }

  /** Copies every source into one staging buffer, submits, maps once. */
  private async readWith(encoder: GPUCommandEncoder, sources: { buffer: GPUBuffer; elements: number }[]): Promise<Float32Array[]> {
    const total = sources.reduce((n, s) => n + s.elements, 0) * 4;
    const staging = this.ctx.pool.acquire(total, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'readback');
    this.stepLive += total;
    this.stepPeak = Math.max(this.stepPeak, this.stepLive);
    try {
      let offset = 0;
      for (const s of sources) {
        encoder.copyBufferToBuffer(s.buffer, 0, staging, offset, s.elements * 4);
        offset += s.elements * 4;
      }
      this.ctx.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(MapMode.READ, 0, total);
      const all = new Float32Array(staging.getMappedRange(0, total).slice(0));
      staging.unmap();
      const out: Float32Array[] = [];
      offset = 0;
      for (const s of sources) {
        out.push(all.slice(offset, offset + s.elements));
        offset += s.elements;
      }
      return out;
    } finally {
      this.stepLive -= total;
      this.ctx.pool.release(staging);
    }
  }

  private dropHeld(): void {
    if (!this.held) return;
    for (const [role, buffer] of this.held.buffers) this.releaseStep(this.held.buffers, role, buffer);
    this.held = undefined;
  }

  memory(): MemoryStats {
    let parameterBytes = 0;
    for (const role of this.persistent.keys()) parameterBytes += roleElements(role, this.config) * 4;
    let heldForBackwardBytes = 0;
    if (this.held) for (const role of this.held.buffers.keys()) heldForBackwardBytes += roleElements(role, this.config) * 4;
    return { parameterBytes, heldForBackwardBytes, lastStepHeldBytes: this.lastHeld, lastStepPeakBytes: this.lastPeak };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.dropHeld();
    for (const buffer of this.persistent.values()) this.ctx.pool.release(buffer);
    this.persistent.clear();
    this.destroyed = true;
  }
}
