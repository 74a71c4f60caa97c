/**
 * One ConvBN layer on WebGPU: parameters on the device with a host copy kept
 * current (running stats included, so a lost device can be replaced without
 * losing state), forward and backward executed from the mode plans in
 * codegen/plans.ts, chunk by chunk along the batch when the layer is over the
 * device's buffer limits (split.ts).
 */
import { tensorSizes, valuesPerChannel, type ConvBNConfig, type Mode } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import {
  planFor, roleElements, withoutInputGrad, PERSISTENT_ROLES, type ModePlan, type PersistentRole, type PlanStep, type Role, type StepRole,
} from '../../codegen/plans.js';
import type {
  BackendName, BackwardGrads, BackwardOptions, ConvBNGrads, ConvBNLayer, ConvBNParams, ConvBNParamsInput, Engine, FoldedParams, ForwardOptions,
  LayerOptions, MemoryStats,
} from '../types.js';
import { checkBackwardOptions, checkFolded, checkMode, checkParams, checkTensor, foldParams, mergeParams } from '../validate.js';
import { uploadable, type BufferPool } from './buffers.js';
import { BufferUsage, MapMode } from './flags.js';
import { checkImageFits, largestBinding, planStepRoles, type BufferLimits } from './limits.js';
import { DeviceLostError } from './lost.js';
import type { PipelineCache } from './pipelines.js';
import { batchChunks, combineBatchStats, isBatchReduction, unsplittableStep, withBatch, type Chunk } from './split.js';
import { SerialQueue } from '../serial.js';
import { fixScalarInputGrad, scalarInputValues } from '../scalar-input.js';

/** What a layer sees of its engine; device, pool and pipelines change when a lost device is replaced. */
export interface WebGPUContext {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly limits: BufferLimits;
  /** Bumped with every new device: buffers from an older generation are gone. */
  readonly generation: number;
  /** False while the device is lost (or replaced by the fallback) or the engine destroyed: no uploads then. */
  readonly usable: boolean;
  assertNotDestroyed(): void;
  /** Waits for a working device, replacing a lost one first; resolves to the fallback engine once layers must use it. */
  ready(): Promise<Engine | undefined>;
  /** The error to throw for a failure of GPU work in flight: DeviceLostError when the device went away. */
  deviceError(error: unknown, during: string): unknown;
}

const STORAGE = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;

/**
 * A chunk of the batch with its plan (kernel choices may depend on N, so each
 * chunk config gets its own) and the step buffers of its current call.
 */
interface ChunkRun extends Chunk {
  readonly plan: ModePlan;
  readonly buffers: Map<StepRole, GPUBuffer>;
}

/** Where each chunk's pass is cut for a batch reduction combined on the host (see split.ts). */
type Cut = (chunk: ChunkRun) => number;

interface Held {
  readonly mode: Mode;
  readonly chunks: readonly ChunkRun[];
  readonly generation: number;
  /** Train mode where a group reads a single input value: those values, for fixScalarInputGrad. */
  readonly liveX?: Float64Array;
}

/** A tensor to read back after a submission: a step role of one chunk, or a persistent role. */
interface Read {
  readonly chunk: ChunkRun;
  readonly role: Role;
}

const isPersistent = (role: Role): role is PersistentRole => (PERSISTENT_ROLES as readonly string[]).includes(role);

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

/**
 * With several chunks, where each chunk's pass stops for a batch reduction
 * (train's bn_stats / bn_grad_reduce), or undefined when the pass has none
 * (or there is one chunk, which reduces over the whole batch by itself).
 */
function batchCut(chunks: readonly ChunkRun[], pass: (chunk: ChunkRun) => readonly PlanStep[]): Cut | undefined {
  if (chunks.length < 2) return undefined;
  const cuts = new Map(chunks.map((ch) => [ch, pass(ch).findIndex(isBatchReduction)]));
  const found = [...cuts.values()].filter((i) => i >= 0).length;
  if (found === 0) return undefined;
  if (found !== chunks.length) throw new Error('chunk plans disagree on the batch reduction; cannot split this layer');
  return (ch) => cuts.get(ch)!;
}

function concat(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Chunks' partial sums over their images, added in float64 and rounded once. */
function sum(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const acc = new Float64Array(parts[0].length);
  for (const p of parts) for (let i = 0; i < p.length; i++) acc[i] += p[i];
  return Float32Array.from(acc);
}

/** Options objects are checked like tensors: a typo'd value must not silently pick another plan. */
function checkFlags(field: string, value: unknown, names: readonly string[]): void {
  if (value === undefined) return;
  if (value === null || typeof value !== 'object') throw new ConvBNInputError(field, value, `must be an object { ${names.join(', ')} }`);
  for (const name of names) {
    const flag = (value as Record<string, unknown>)[name];
    if (flag !== undefined && typeof flag !== 'boolean') throw new ConvBNInputError(`${field}.${name}`, flag, 'must be true or false');
  }
}

export class WebGPULayer implements ConvBNLayer {
  readonly options: Readonly<Required<LayerOptions>>;
  private readonly persistent = new Map<PersistentRole, GPUBuffer>();
  /** The device generation `persistent` lives on. */
  private persistentGeneration: number;
  private host: ConvBNParams | undefined;
  private folded: FoldedParams | undefined;
  private held: Held | undefined;
  /** Why the last forward's saved tensors are gone, when a device loss took them. */
  private heldLost: string | undefined;
  /** Where calls go once the engine has fallen back to WASM. */
  private fallbackLayer: ConvBNLayer | undefined;
  /** Chunks per mode on the current device (its limits and kernel choices decide them). */
  private chunkCache: { generation: number; chunks: Map<string, readonly Chunk[]> } | undefined;
  private stepLive = 0;
  private stepPeak = 0;
  private lastHeld = 0;
  private lastPeak = 0;
  private destroyed = false;
  /** Calls on one layer run one at a time: forward and backward share held state. */
  private readonly queue = new SerialQueue();

  constructor(
    private readonly ctx: WebGPUContext,
    readonly config: ConvBNConfig,
    params: ConvBNParamsInput | undefined,
    options: LayerOptions,
  ) {
    checkFlags('options', options, ['recompute']);
    this.options = { recompute: options?.recompute ?? false };
    this.persistentGeneration = ctx.generation;
    if (params !== undefined) this.setParameters(params);
  }

  get backend(): BackendName {
    return this.fallbackLayer?.backend ?? 'webgpu';
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('this ConvBN layer was destroyed');
    this.ctx.assertNotDestroyed();
  }

  /**
   * Start of every call: a working device with this layer's parameters on it,
   * or the fallback layer to hand the call to.
   */
  private async prepare(): Promise<ConvBNLayer | undefined> {
    this.assertAlive();
    const fallback = await this.ctx.ready();
    this.assertAlive();
    if (fallback) return this.fallbackOn(fallback);
    if (this.persistentGeneration !== this.ctx.generation) {
      // A new device: the old buffers died with the old one, so they are dropped, not released.
      this.persistent.clear();
      this.persistentGeneration = this.ctx.generation;
      this.forgetHeld('the device was lost after forward');
      this.uploadParameters();
    }
    return undefined;
  }

  private fallbackOn(engine: Engine): ConvBNLayer {
    if (!this.fallbackLayer) {
      const layer = engine.createLayer(this.config, this.host, this.options);
      if (this.folded) layer.setFoldedParameters(this.folded);
      this.fallbackLayer = layer;
      // Their device is gone for good; returning them (to the pool they came from) keeps the engine's counters true.
      if (this.persistentGeneration === this.ctx.generation) {
        for (const buffer of this.persistent.values()) this.ctx.pool.release(buffer);
      }
      this.persistent.clear();
      if (this.held) {
        this.dropHeld();
        this.heldLost = 'the device was lost after forward';
      }
    }
    return this.fallbackLayer;
  }

  /** Drops saved tensors without returning them to a pool: for buffers of a lost device. */
  private forgetHeld(reason: string): void {
    if (!this.held) return;
    this.held = undefined;
    this.heldLost = reason;
  }

  private write(buffer: GPUBuffer, data: Float32Array): void {
    this.ctx.device.queue.writeBuffer(buffer, 0, uploadable(data));
  }

  private writePersistent(role: PersistentRole, data: Float32Array): void {
    let buffer = this.persistent.get(role);
    if (!buffer) {
      buffer = this.ctx.pool.acquire(roleElements(role, this.config) * 4, STORAGE, role);
      this.persistent.set(role, buffer);
    }
    this.write(buffer, data);
  }

  /** Host copy -> device, when the device is up; otherwise prepare() does it once there is one. */
  private uploadParameters(which: { params: boolean; folded: boolean } = { params: true, folded: true }): void {
    if (!this.ctx.usable || this.persistentGeneration !== this.ctx.generation) return;
    if (which.params && this.host) {
      this.writePersistent('weight', this.host.weight);
      this.writePersistent('channels', packChannels(this.config, this.host));
    }
    if (which.folded && this.folded) {
      this.writePersistent('foldedWeight', this.folded.weight);
      this.writePersistent('foldedChannels', packChannels(this.config, { bias: this.folded.bias }));
    }
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
    this.folded = undefined;
    this.fallbackLayer?.setParameters(params);
    this.uploadParameters();
  }

  updateParameters(params: Partial<ConvBNParamsInput>): void {
    this.assertAlive();
    this.setParameters(mergeParams(this.requireParams(), params));
  }

  private requireParams(): ConvBNParams {
    if (!this.host) throw new ConvBNInputError('params', undefined, 'must be set (createLayer(config, params) or setParameters) before forward');
    return this.host;
  }

  getParameters(): Promise<ConvBNParams> {
    return this.serial(async () => {
      const fallback = await this.prepare();
      if (fallback) return fallback.getParameters();
      // The host copy is current: train forwards read the running stats back with y.
      const host = this.requireParams();
      return {
        weight: host.weight.slice(), bias: host.bias?.slice(), gamma: host.gamma.slice(), beta: host.beta.slice(),
        runningMean: host.runningMean.slice(), runningVar: host.runningVar.slice(),
      };
    });
  }

  getFoldedParameters(): Promise<FoldedParams> {
    return this.serial(async () => {
      const fallback = await this.prepare();
      if (fallback) return fallback.getFoldedParameters();
      const f = this.ensureFolded();
      return { weight: f.weight.slice(), bias: f.bias.slice() };
    });
  }

  setFoldedParameters(params: FoldedParams): void {
    this.assertAlive();
    checkFolded(this.config, params);
    this.folded = { weight: params.weight.slice(), bias: params.bias.slice() };
    this.fallbackLayer?.setFoldedParameters(params);
    this.uploadParameters({ params: false, folded: true });
  }

  /** Deploy folds once, on the host in float64, from the current parameters. */
  private ensureFolded(): FoldedParams {
    if (!this.folded) {
      this.folded = foldParams(this.config, this.requireParams());
      this.uploadParameters({ params: false, folded: true });
    }
    return this.folded;
  }

  /**
   * The batch as the device's limits allow it for this mode (one chunk unless
   * the layer is over them), each chunk with its plan. Refuses, before any GPU
   * work, an image too large for a buffer this mode's kernels need.
   */
  private chunksFor(mode: Mode, recompute: boolean): ChunkRun[] {
    const key = `${mode}:${recompute}`;
    if (this.chunkCache?.generation !== this.ctx.generation) this.chunkCache = { generation: this.ctx.generation, chunks: new Map() };
    let chunks = this.chunkCache.chunks.get(key);
    if (!chunks) {
      const { limits } = this.ctx;
      const target = this.ctx.pipelines.target;
      const roles = (c: ConvBNConfig) => planStepRoles(planFor(mode, c, { recompute, target }));
      const one = withBatch(this.config, 1);
      checkImageFits(one, limits, roles(one));
      chunks = batchChunks(this.config, limits, roles);
      this.chunkCache.chunks.set(key, chunks);
    }
    const target = this.ctx.pipelines.target;
    // Train's batch statistics are over the whole batch, whatever the chunk: its plan is told their count.
    const batchValues = valuesPerChannel(this.config);
    return chunks.map((ch) => ({ ...ch, plan: planFor(mode, ch.config, { recompute, target, batchValues }), buffers: new Map() }));
  }

  /**
   * Images per batch chunk that `mode` runs in on the current device: one
   * entry unless the layer is over the device's buffer limits. Diagnostic.
   */
  chunkSizes(mode: Mode, options: { recompute?: boolean } = {}): number[] {
    checkMode(mode);
    checkFlags('options', options, ['recompute']);
    return this.chunksFor(mode, options?.recompute ?? this.options.recompute).map((ch) => ch.config.N);
  }

  forward(x: Float32Array, mode: Mode, options: ForwardOptions = {}): Promise<Float32Array> {
    checkMode(mode);
    checkTensor('x', x, tensorSizes(this.config).x);
    checkFlags('options', options, ['requiresGrad', 'recompute']);
    if (mode === 'train' && valuesPerChannel(this.config) < 2) {
      throw new ConvBNInputError('N * Hout * Wout', valuesPerChannel(this.config),
        'must be >= 2 in train mode (batch variance needs more than one value per channel)');
    }
    const recompute = options?.recompute ?? this.options.recompute;
    const requiresGrad = options?.requiresGrad ?? true;
    // The caller may reuse x as soon as this returns a promise.
    const input = x.slice();
    return this.serial(async () => {
      const fallback = await this.prepare();
      if (fallback) return fallback.forward(input, mode, { recompute, requiresGrad });
      this.requireParams();
      return this.forwardOnDevice(input, mode, recompute, requiresGrad);
    });
  }

  private async forwardOnDevice(x: Float32Array, mode: Mode, recompute: boolean, requiresGrad: boolean): Promise<Float32Array> {
    if (mode === 'deploy') this.ensureFolded();
    this.dropHeld();
    this.heldLost = undefined;
    this.stepLive = 0;
    this.stepPeak = 0;
    const chunks = this.chunksFor(mode, recompute);
    if (chunks.length > 1) for (const ch of chunks) this.assertSplittable(ch.plan, mode, chunks[0].config.N);
    const generation = this.ctx.generation;
    let y: Float32Array;
    try {
      const xPerImage = tensorSizes(this.config).x / this.config.N;
      for (const ch of chunks) {
        this.write(this.stepBuffer(ch, 'x'), x.subarray(ch.start * xPerImage, (ch.start + ch.config.N) * xPerImage));
      }
      const cut = batchCut(chunks, (ch) => ch.plan.forward);
      if (cut) {
        y = await this.forwardAcrossChunks(chunks, cut);
      } else {
        const reads: Read[] = chunks.map((chunk) => ({ chunk, role: chunk.plan.output }));
        // Train moves the running stats on the device: read them with y so the host copy stays current.
        if (mode === 'train') reads.push({ chunk: chunks[0], role: 'channels' });
        const out = await this.gpu(chunks, (ch) => ch.plan.forward, reads, 'forward');
        if (mode === 'train') this.takeRunningStats(out.pop()!);
        y = concat(out);
      }
    } catch (error) {
      this.releaseChunks(chunks, generation);
      throw error;
    }
    if (mode === 'train') this.folded = undefined;
    for (const ch of chunks) {
      for (const [role, buffer] of ch.buffers) {
        if (!requiresGrad || !ch.plan.held.includes(role)) this.releaseStep(ch, role, buffer);
      }
    }
    // An inference forward is not a training step: the last step's figures stay.
    if (requiresGrad) {
      const liveX = mode === 'train' ? scalarInputValues(this.config, x) : undefined;
      this.held = { mode, chunks, generation, ...(liveX ? { liveX } : {}) };
    }
    return y;
  }

  /** Refuses, before any GPU work, a mode whose kernels cannot be split when the batch must be. */
  private assertSplittable(plan: ModePlan, mode: Mode, perChunk: number): void {
    const step = unsplittableStep(plan);
    if (!step) return;
    const { bytes, limit } = largestBinding(this.ctx.limits);
    throw new ConvBNInputError('N', this.config.N,
      `must be <= ${perChunk} for ${mode} mode on this device: a larger batch is over its ${limit} = ${bytes} ` +
      `and must be split, and kernel ${step.variant.kind} has no split form (it reduces over the whole batch)`);
  }

  private takeRunningStats(channels: Float32Array): void {
    const host = this.requireParams();
    const C = this.config.Cout;
    host.runningMean = channels.slice(3 * C, 4 * C);
    host.runningVar = channels.slice(4 * C, 5 * C);
  }

  /**
   * Train forward over several chunks: batch statistics are over the whole
   * batch, so each chunk's (mean, invstd) is read back, combined on the host,
   * and the combined statistics written to every chunk before the rest runs.
   */
  private async forwardAcrossChunks(chunks: readonly ChunkRun[], cut: Cut): Promise<Float32Array> {
    const before = (ch: ChunkRun) => ch.plan.forward.slice(0, cut(ch) + 1);
    const after = (ch: ChunkRun) => ch.plan.forward.slice(cut(ch) + 1);
    const parts = await this.gpu(chunks, before, chunks.map((chunk) => ({ chunk, role: 'stats' })), 'forward');
    const c = this.config;
    const C = c.Cout;
    const batch = combineBatchStats(chunks.map((ch, i) => ({ count: valuesPerChannel(ch.config), stats: parts[i] })), C, Math.fround(c.eps));
    const stats = new Float32Array(2 * C);
    const host = this.requireParams();
    const runningMean = new Float32Array(C);
    const runningVar = new Float32Array(C);
    for (let o = 0; o < C; o++) {
      stats[o] = batch.mean[o];
      stats[C + o] = 1 / Math.sqrt(batch.variance[o] + c.eps);
      runningMean[o] = (1 - c.momentum) * host.runningMean[o] + c.momentum * batch.mean[o];
      runningVar[o] = (1 - c.momentum) * host.runningVar[o] + c.momentum * batch.variance[o] * batch.count / (batch.count - 1);
    }
    // Each chunk's bn_stats moved the running stats once per chunk: replace them with one update for the whole batch.
    host.runningMean = runningMean;
    host.runningVar = runningVar;
    this.write(this.persistent.get('channels')!, packChannels(c, host));
    for (const ch of chunks) this.write(ch.buffers.get('stats')!, stats);
    return concat(await this.gpu(chunks, after, chunks.map((chunk) => ({ chunk, role: chunk.plan.output })), 'forward'));
  }

  backward(gradY: Float32Array, options?: { inputGrad?: true }): Promise<ConvBNGrads>;
  backward(gradY: Float32Array, options: BackwardOptions): Promise<BackwardGrads>;
  backward(gradY: Float32Array, options?: BackwardOptions): Promise<BackwardGrads> {
    checkTensor('gradY', gradY, tensorSizes(this.config).y);
    const inputGrad = checkBackwardOptions(options);
    const input = gradY.slice();
    return this.serial(async () => {
      const fallback = await this.prepare();
      if (this.heldLost !== undefined) {
        const reason = this.heldLost;
        this.heldLost = undefined;
        throw new DeviceLostError('backward', `${reason}: the tensors it saved are gone; run forward again`);
      }
      if (fallback) return fallback.backward(input, { inputGrad });
      const held = this.held;
      if (!held) throw new ConvBNInputError('backward', 'called', 'needs a forward with requiresGrad (the default) first');
      this.held = undefined;
      return this.backwardOnDevice(held, input, inputGrad);
    });
  }

  private async backwardOnDevice(held: Held, gradY: Float32Array, inputGrad: boolean): Promise<BackwardGrads> {
    const { chunks } = held;
    const heldBytes = this.stepLive;
    // Without inputGrad the steps that write gradX (the dgrad) are left out, and gradX is never allocated.
    const pass = (ch: ChunkRun): readonly PlanStep[] => (inputGrad ? ch.plan.backward : withoutInputGrad(ch.plan.backward));
    let gradX: Float32Array | undefined;
    let gradWeight: Float32Array;
    let channelGrads: Float32Array;
    try {
      const yPerImage = tensorSizes(this.config).y / this.config.N;
      for (const ch of chunks) {
        this.write(this.stepBuffer(ch, 'gradY'), gradY.subarray(ch.start * yPerImage, (ch.start + ch.config.N) * yPerImage));
      }
      const cut = batchCut(chunks, pass);
      if (cut) {
        ({ gradX, gradWeight, channelGrads } = await this.backwardAcrossChunks(chunks, cut, pass, inputGrad));
      } else {
        const roles = inputGrad ? ['gradWeight', 'channelGrads', 'gradX'] as const : ['gradWeight', 'channelGrads'] as const;
        const fixInput = inputGrad && held.liveX !== undefined;
        const reads: Read[] = chunks.flatMap((chunk) => roles.map((role) => ({ chunk, role })));
        // The batch statistics, for the closed-form input gradient (one image: one chunk).
        if (fixInput) reads.push({ chunk: chunks[0], role: 'stats' });
        const out = await this.gpu(chunks, pass, reads, 'backward');
        const part = (k: number) => chunks.map((_, i) => out[i * roles.length + k]);
        gradWeight = sum(part(0));
        channelGrads = sum(part(1));
        if (inputGrad) gradX = concat(part(2));
        if (fixInput) {
          const C = this.config.Cout;
          fixScalarInputGrad(this.config, gradX!, {
            x: held.liveX!, gamma: this.requireParams().gamma, gradGamma: channelGrads.subarray(C, 2 * C),
            invstd: out[out.length - 1].subarray(C, 2 * C),
          });
        }
      }
    } finally {
      this.releaseChunks(chunks, held.generation);
    }
    this.lastHeld = heldBytes;
    this.lastPeak = this.stepPeak;
    const C = this.config.Cout;
    const gradBias = channelGrads.slice(0, C);
    const input = gradX ? { gradX } : {};
    if (held.mode === 'deploy') return { ...input, gradFoldedWeight: gradWeight, gradFoldedBias: gradBias };
    return {
      ...input,
      gradWeight,
      gradBias: this.config.bias ? gradBias : undefined,
      gradGamma: channelGrads.slice(C, 2 * C),
      gradBeta: channelGrads.slice(2 * C, 3 * C),
    };
  }

  /**
   * Train backward over several chunks: dz needs the batch sums of dy and
   * dy * xhat, so bn_grad_reduce runs per chunk, the host adds the sums, and
   * every chunk gets them before bn_grad_apply. bn_grad_apply divides the sums
   * by its own chunk's value count M_k; handing it the batch sums times M_k / M
   * makes that the division by the batch's M.
   */
  private async backwardAcrossChunks(chunks: readonly ChunkRun[], cut: Cut, pass: (ch: ChunkRun) => readonly PlanStep[], inputGrad: boolean):
    Promise<{ gradX?: Float32Array; gradWeight: Float32Array; channelGrads: Float32Array }> {
    const before = (ch: ChunkRun) => pass(ch).slice(0, cut(ch) + 1);
    const after = (ch: ChunkRun) => pass(ch).slice(cut(ch) + 1);
    const parts = await this.gpu(chunks, before, chunks.map((chunk) => ({ chunk, role: 'channelGrads' })), 'backward');
    const C = this.config.Cout;
    const total = new Float64Array(3 * C);
    for (const p of parts) for (let i = C; i < 3 * C; i++) total[i] += p[i];
    const M = chunks.reduce((n, ch) => n + valuesPerChannel(ch.config), 0);
    for (const ch of chunks) {
      const scale = valuesPerChannel(ch.config) / M;
      this.write(ch.buffers.get('channelGrads')!, Float32Array.from(total, (v) => v * scale));
    }
    const roles = inputGrad ? ['gradWeight', 'gradX'] as const : ['gradWeight'] as const;
    const out = await this.gpu(chunks, after, chunks.flatMap((chunk) => roles.map((role) => ({ chunk, role }))), 'backward');
    const part = (k: number) => chunks.map((_, i) => out[i * roles.length + k]);
    // The conv bias gradient is exactly 0 with batch statistics (the batch mean absorbs the bias).
    return {
      ...(inputGrad ? { gradX: concat(part(1)) } : {}),
      gradWeight: sum(part(0)),
      channelGrads: Float32Array.from(total),
    };
  }

  private stepBuffer(chunk: ChunkRun, role: StepRole): GPUBuffer {
    let buffer = chunk.buffers.get(role);
    if (!buffer) {
      const bytes = roleElements(role, chunk.config) * 4;
      buffer = this.ctx.pool.acquire(bytes, STORAGE, role);
      chunk.buffers.set(role, buffer);
      this.stepLive += bytes;
      this.stepPeak = Math.max(this.stepPeak, this.stepLive);
    }
    return buffer;
  }

  private releaseStep(chunk: ChunkRun, role: StepRole, buffer: GPUBuffer): void {
    chunk.buffers.delete(role);
    this.stepLive -= roleElements(role, chunk.config) * 4;
    this.ctx.pool.release(buffer);
  }

  /** Returns a call's step buffers to the pool, unless their device is gone (then they are just dropped). */
  private releaseChunks(chunks: readonly ChunkRun[], generation: number): void {
    for (const ch of chunks) {
      if (generation === this.ctx.generation) {
        for (const [role, buffer] of ch.buffers) this.releaseStep(ch, role, buffer);
      }
      ch.buffers.clear();
    }
  }

  private bufferFor(role: Role, chunk: ChunkRun): GPUBuffer {
    if (isPersistent(role)) {
      const buffer = this.persistent.get(role);
      if (!buffer) throw new Error(`plan binds parameter buffer '${role}', which was never uploaded`);
      return buffer;
    }
    return this.stepBuffer(chunk, role);
  }

  private encode(pass: GPUComputePassEncoder, s: PlanStep, chunk: ChunkRun): void {
    const { device } = this.ctx;
    const compiled = this.ctx.pipelines.get(s.variant, chunk.config);
    const entries = compiled.kernel.bindings.map((b) => {
      const role = s.bind[b.name];
      if (!role) throw new Error(`plan step ${s.variant.kind} does not bind '${b.name}'`);
      if (roleElements(role, chunk.config) !== b.elements) {
        throw new Error(`plan binds role ${role} (${roleElements(role, chunk.config)} elements) to '${b.name}' (${b.elements})`);
      }
      return { binding: b.binding, resource: { buffer: this.bufferFor(role, chunk) } };
    });
    pass.setPipeline(compiled.pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: compiled.layout, entries }));
    const [dx, dy, dz] = compiled.kernel.dispatch;
    pass.dispatchWorkgroups(dx, dy, dz);
  }

  /**
   * Encodes `steps` for every chunk in one pass, copies `reads` to staging
   * buffers, submits, and maps them. Error scopes are pushed and popped with
   * no await in between: they are one stack per device, and other layers'
   * calls run at every await.
   */
  private async gpu(
    chunks: readonly ChunkRun[], steps: (chunk: ChunkRun) => readonly PlanStep[], reads: readonly Read[], during: string,
  ): Promise<Float32Array[]> {
    const { device } = this.ctx;
    const staging: Staging[] = [];
    let encodeError: unknown;
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    try {
      const encoder = device.createCommandEncoder();
      if (chunks.some((chunk) => steps(chunk).length > 0)) {
        const pass = encoder.beginComputePass();
        for (const chunk of chunks) for (const s of steps(chunk)) this.encode(pass, s, chunk);
        pass.end();
      }
      this.stage(encoder, reads, staging);
      device.queue.submit([encoder.finish()]);
    } catch (error) {
      encodeError = error;
    }
    const scopes = [device.popErrorScope(), device.popErrorScope()];
    let results: Float32Array[] = [];
    let mapError: unknown;
    try {
      if (encodeError === undefined) results = await this.unstage(staging, reads.length);
    } catch (error) {
      mapError = error;
    } finally {
      for (const s of staging) {
        this.stepLive -= s.bytes;
        this.ctx.pool.release(s.buffer);
      }
    }
    let scopeErrors: (GPUError | null)[];
    try {
      scopeErrors = await Promise.all(scopes);
    } catch (error) {
      scopeErrors = [];
      mapError ??= error;
    }
    const [oom, validation] = scopeErrors;
    if (validation) throw new Error(`WebGPU validation error in a convbn kernel during ${during} (a bug, please report): ${validation.message}`);
    if (oom) throw new Error(`the GPU ran out of memory during ${during}: ${oom.message}`);
    if (encodeError !== undefined) throw encodeError;
    if (mapError !== undefined) throw this.ctx.deviceError(mapError, during);
    return results;
  }

  /** Copies reads into staging buffers, each within maxBufferSize (so many chunks' outputs never make one too large). */
  private stage(encoder: GPUCommandEncoder, reads: readonly Read[], staging: Staging[]): void {
    const groups: { reads: { read: Read; elements: number }[]; bytes: number }[] = [];
    for (const read of reads) {
      const elements = roleElements(read.role, read.chunk.config);
      const last = groups[groups.length - 1];
      if (last && last.bytes + elements * 4 <= this.ctx.limits.maxBufferSize) {
        last.reads.push({ read, elements });
        last.bytes += elements * 4;
      } else {
        groups.push({ reads: [{ read, elements }], bytes: elements * 4 });
      }
    }
    for (const g of groups) {
      const buffer = this.ctx.pool.acquire(g.bytes, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'readback');
      this.stepLive += g.bytes;
      this.stepPeak = Math.max(this.stepPeak, this.stepLive);
      staging.push({ buffer, bytes: g.bytes, elements: g.reads.map((r) => r.elements) });
      let offset = 0;
      for (const { read, elements } of g.reads) {
        encoder.copyBufferToBuffer(this.bufferFor(read.role, read.chunk), 0, buffer, offset, elements * 4);
        offset += elements * 4;
      }
    }
  }

  private async unstage(staging: readonly Staging[], count: number): Promise<Float32Array[]> {
    await Promise.all(staging.map((s) => s.buffer.mapAsync(MapMode.READ, 0, s.bytes)));
    const out: Float32Array[] = [];
    for (const s of staging) {
      // One copy per tensor, straight from the mapped range, each into an array of its own.
      const range = s.buffer.getMappedRange(0, s.bytes);
      let offset = 0;
      for (const n of s.elements) {
        out.push(new Float32Array(range, offset * 4, n).slice());
        offset += n;
      }
      s.buffer.unmap();
    }
    if (out.length !== count) throw new Error(`read back ${out.length} tensors, expected ${count}`);
    return out;
  }

  private dropHeld(): void {
    if (!this.held) return;
    this.releaseChunks(this.held.chunks, this.held.generation);
    this.held = undefined;
  }

  memory(): MemoryStats {
    let parameterBytes = 0;
    for (const role of this.persistent.keys()) parameterBytes += roleElements(role, this.config) * 4;
    let heldForBackwardBytes = 0;
    for (const ch of this.held?.chunks ?? []) {
      for (const role of ch.buffers.keys()) heldForBackwardBytes += roleElements(role, ch.config) * 4;
    }
    return { parameterBytes, heldForBackwardBytes, lastStepHeldBytes: this.lastHeld, lastStepPeakBytes: this.lastPeak };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.dropHeld();
    if (this.persistentGeneration === this.ctx.generation) {
      for (const buffer of this.persistent.values()) this.ctx.pool.release(buffer);
    }
    this.persistent.clear();
    this.fallbackLayer?.destroy();
    this.destroyed = true;
  }
}

interface Staging {
  readonly buffer: GPUBuffer;
  readonly bytes: number;
  /** Element counts of the reads packed into this buffer, in order. */
  readonly elements: readonly number[];
}
