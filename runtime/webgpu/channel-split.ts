/**
 * Splitting a layer along output channels (groups == 1) or whole groups
 * (groups > 1) when even one image is over the device's buffer limits. Each
 * channel chunk is an ordinary layer (a WebGPULayer with a smaller Cout, or
 * fewer groups) holding its slice of the parameters; it splits itself along
 * the batch when it must (split.ts). Batch statistics are per channel, so
 * train needs no combination across channel chunks.
 */
import { MODES, normalizeConfig, outputShape, tensorSizes, toInput, type ConvBNConfig, type Mode } from '../../codegen/config.js';
import { planFor, type StepRole } from '../../codegen/plans.js';
import type { KernelTarget } from '../../codegen/tuning/select.js';
import type {
  BackendName, BackwardGrads, BackwardOptions, ConvBNGrads, ConvBNLayer, ParamGrads, ConvBNParams, ConvBNParamsInput, FoldedParams, ForwardOptions, LayerOptions, MemoryStats,
} from '../types.js';
import { checkBackwardOptions, checkFolded, checkMode, checkParams, checkTensor, mergeParams } from '../validate.js';
import { CALLER_ROLES, oversizedRole, planStepRoles, type BufferLimits } from './limits.js';
import { WebGPULayer, type WebGPUContext } from './layer.js';
import { withBatch } from './split.js';
import { SerialQueue } from '../serial.js';

export interface ChannelChunk {
  /** First output channel of the chunk in the layer. */
  readonly cout0: number;
  /** First input channel of the chunk's x (0 for groups == 1: every chunk sees all of x). */
  readonly cin0: number;
  /** The layer's config restricted to this chunk's channels (same N). */
  readonly config: ConvBNConfig;
}

function chunkConfig(c: ConvBNConfig, units: number): ConvBNConfig {
  if (c.groups === 1) return normalizeConfig({ ...toInput(c), Cout: units });
  return normalizeConfig({ ...toInput(c), Cin: units * (c.Cin / c.groups), Cout: units * (c.Cout / c.groups), groups: units });
}

/** Step buffers every mode's plan binds for `c` (N = 1 is what matters for a channel split). */
export function allModeRoles(c: ConvBNConfig, target: KernelTarget): StepRole[] {
  const roles = new Set<StepRole>(CALLER_ROLES);
  for (const mode of MODES) {
    for (const recompute of mode === 'train' ? [false, true] : [false]) {
      for (const r of planStepRoles(planFor(mode, c, { recompute, target }))) roles.add(r);
    }
  }
  return [...roles];
}

/**
 * The fewest channel chunks (even sizes) whose one-image tensors fit, every
 * mode's scratch included if possible, else the caller's tensors only; or
 * undefined when no split fits (e.g. x of one image over the limit with
 * groups == 1: every output-channel chunk needs all of x).
 */
export function channelChunks(c: ConvBNConfig, limits: BufferLimits, target: KernelTarget, strictOnly = false): ChannelChunk[] | undefined {
  const units = c.groups === 1 ? c.Cout : c.groups;
  const split = (count: number): { start: number; size: number }[] => {
    const base = Math.floor(units / count);
    const larger = units % count;
    const out: { start: number; size: number }[] = [];
    for (let i = 0, start = 0; i < count; i++) {
      const size = base + (i < larger ? 1 : 0);
      out.push({ start, size });
      start += size;
    }
    return out;
  };
  for (const strict of strictOnly ? [true] : [true, false]) {
    for (let count = 2; count <= units; count++) {
      const parts = split(count);
      const configs = new Map<number, ConvBNConfig>();
      for (const p of parts) if (!configs.has(p.size)) configs.set(p.size, chunkConfig(c, p.size));
      const fits = [...configs.values()].every((cc) => {
        const one = withBatch(cc, 1);
        return oversizedRole(one, limits, strict ? allModeRoles(one, target) : CALLER_ROLES) === undefined;
      });
      if (!fits) continue;
      const perGroupIn = c.Cin / c.groups;
      const perGroupOut = c.Cout / c.groups;
      return parts.map((p) => ({
        cout0: c.groups === 1 ? p.start : p.start * perGroupOut,
        cin0: c.groups === 1 ? 0 : p.start * perGroupIn,
        config: configs.get(p.size)!,
      }));
    }
  }
  return undefined;
}

interface Sub {
  readonly chunk: ChannelChunk;
  readonly layer: WebGPULayer;
}

/** A layer run as channel chunks, each an ordinary WebGPULayer; see the file comment. */
export class ChannelSplitLayer implements ConvBNLayer {
  readonly options: Readonly<Required<LayerOptions>>;
  private readonly subs: Sub[];
  private host: ConvBNParams | undefined;
  private readonly queue = new SerialQueue();
  private destroyed = false;

  constructor(ctx: WebGPUContext, readonly config: ConvBNConfig, chunks: readonly ChannelChunk[],
    params: ConvBNParamsInput | undefined, options: LayerOptions) {
    this.subs = chunks.map((chunk) => ({ chunk, layer: new WebGPULayer(ctx, chunk.config, undefined, options) }));
    this.options = this.subs[0].layer.options;
    if (params !== undefined) this.setParameters(params);
  }

  get backend(): BackendName {
    return this.subs[0].layer.backend;
  }

  /** Output channels per chunk: diagnostic (tests check the limit forces a split). */
  channelChunkSizes(): number[] {
    return this.subs.map((s) => s.chunk.config.Cout);
  }

  /** Images per batch chunk of each channel chunk for `mode`. Diagnostic. */
  chunkSizes(mode: Mode, options: { recompute?: boolean } = {}): number[][] {
    return this.subs.map((s) => s.layer.chunkSizes(mode, options));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('this ConvBN layer was destroyed');
  }

  private perOutWeights(): number {
    return tensorSizes(this.config).weight / this.config.Cout;
  }

  private slice(ch: ChannelChunk, t: Float32Array, per = 1): Float32Array {
    return t.slice(ch.cout0 * per, (ch.cout0 + ch.config.Cout) * per);
  }

  setParameters(params: ConvBNParamsInput): void {
    this.assertAlive();
    checkParams(this.config, params);
    this.host = {
      weight: params.weight.slice(), bias: params.bias?.slice(), gamma: params.gamma.slice(), beta: params.beta.slice(),
      runningMean: params.runningMean.slice(), runningVar: params.runningVar.slice(),
    };
    const per = this.perOutWeights();
    for (const { chunk, layer } of this.subs) {
      layer.setParameters({
        weight: this.slice(chunk, params.weight, per),
        bias: params.bias ? this.slice(chunk, params.bias) : undefined,
        gamma: this.slice(chunk, params.gamma),
        beta: this.slice(chunk, params.beta),
        runningMean: this.slice(chunk, params.runningMean),
        runningVar: this.slice(chunk, params.runningVar),
      });
    }
  }

  updateParameters(params: Partial<ConvBNParamsInput>): void {
    this.assertAlive();
    if (!this.host) return this.setParameters(params as ConvBNParamsInput);
    this.setParameters(mergeParams(this.host, params));
  }

  /** Each chunk's running stats back to the host copy's (the values before a failed train call). */
  private restoreRunningStats(): void {
    const host = this.host;
    if (!host) return;
    for (const { chunk, layer } of this.subs) {
      layer.updateParameters({ runningMean: this.slice(chunk, host.runningMean), runningVar: this.slice(chunk, host.runningVar) });
    }
  }

  /** Train moves each chunk's running stats: copies them into the host copy. */
  private async pullRunningStats(): Promise<void> {
    const host = this.host;
    if (!host) return;
    for (const { chunk, layer } of this.subs) {
      const p = await layer.getParameters();
      host.runningMean.set(p.runningMean, chunk.cout0);
      host.runningVar.set(p.runningVar, chunk.cout0);
    }
  }

  getParameters(): Promise<ConvBNParams> {
    this.assertAlive();
    return this.serial(async () => {
      const weight = new Float32Array(tensorSizes(this.config).weight);
      const C = this.config.Cout;
      const out: ConvBNParams = {
        weight, bias: this.config.bias ? new Float32Array(C) : undefined, gamma: new Float32Array(C), beta: new Float32Array(C),
        runningMean: new Float32Array(C), runningVar: new Float32Array(C),
      };
      const per = this.perOutWeights();
      for (const { chunk, layer } of this.subs) {
        const p = await layer.getParameters();
        weight.set(p.weight, chunk.cout0 * per);
        if (out.bias && p.bias) out.bias.set(p.bias, chunk.cout0);
        out.gamma.set(p.gamma, chunk.cout0);
        out.beta.set(p.beta, chunk.cout0);
        out.runningMean.set(p.runningMean, chunk.cout0);
        out.runningVar.set(p.runningVar, chunk.cout0);
      }
      return out;
    });
  }

  getFoldedParameters(): Promise<FoldedParams> {
    this.assertAlive();
    return this.serial(async () => {
      const weight = new Float32Array(tensorSizes(this.config).weight);
      const bias = new Float32Array(this.config.Cout);
      const per = this.perOutWeights();
      for (const { chunk, layer } of this.subs) {
        const f = await layer.getFoldedParameters();
        weight.set(f.weight, chunk.cout0 * per);
        bias.set(f.bias, chunk.cout0);
      }
      return { weight, bias };
    });
  }

  setFoldedParameters(params: FoldedParams): void {
    this.assertAlive();
    checkFolded(this.config, params);
    const per = this.perOutWeights();
    for (const { chunk, layer } of this.subs) {
      layer.setFoldedParameters({ weight: this.slice(chunk, params.weight, per), bias: this.slice(chunk, params.bias) });
    }
  }

  /** One chunk's x: all of x for groups == 1, else its groups' input channels of every image. */
  private chunkX(ch: ChannelChunk, x: Float32Array): Float32Array {
    if (this.config.groups === 1) return x;
    const hw = this.config.H * this.config.W;
    const per = this.config.Cin * hw;
    const take = ch.config.Cin * hw;
    const out = new Float32Array(this.config.N * take);
    for (let n = 0; n < this.config.N; n++) out.set(x.subarray(n * per + ch.cin0 * hw, n * per + ch.cin0 * hw + take), n * take);
    return out;
  }

  /** Output-shaped tensors (y, gradY): [N, Cout, Ho, Wo] <-> each chunk's [N, Cout', Ho, Wo]. */
  private gatherY(ch: ChannelChunk, t: Float32Array): Float32Array {
    const out = outputShape(this.config);
    const hw = out.H * out.W;
    const take = ch.config.Cout * hw;
    const r = new Float32Array(out.N * take);
    for (let n = 0; n < out.N; n++) r.set(t.subarray((n * out.C + ch.cout0) * hw, (n * out.C + ch.cout0) * hw + take), n * take);
    return r;
  }

  private scatterY(ch: ChannelChunk, part: Float32Array, into: Float32Array): void {
    const out = outputShape(this.config);
    const hw = out.H * out.W;
    const take = ch.config.Cout * hw;
    for (let n = 0; n < out.N; n++) into.set(part.subarray(n * take, (n + 1) * take), (n * out.C + ch.cout0) * hw);
  }

  forward(x: Float32Array, mode: Mode, options: ForwardOptions = {}): Promise<Float32Array> {
    this.assertAlive();
    checkMode(mode);
    checkTensor('x', x, tensorSizes(this.config).x);
    const input = x.slice();
    return this.serial(async () => {
      const y = new Float32Array(tensorSizes(this.config).y);
      try {
        for (const { chunk, layer } of this.subs) this.scatterY(chunk, await layer.forward(this.chunkX(chunk, input), mode, options), y);
      } catch (error) {
        // A failed call leaves the parameters as they were: the chunks that ran before the failure (a lost
        // device) have moved their running stats, so every chunk gets the host copy's from before the call.
        if (mode === 'train') this.restoreRunningStats();
        throw error;
      }
      if (mode === 'train') await this.pullRunningStats();
      return y;
    });
  }

  backward(gradY: Float32Array, options?: { inputGrad?: true }): Promise<ConvBNGrads>;
  backward(gradY: Float32Array, options: BackwardOptions): Promise<BackwardGrads>;
  backward(gradY: Float32Array, options?: BackwardOptions): Promise<BackwardGrads> {
    this.assertAlive();
    checkTensor('gradY', gradY, tensorSizes(this.config).y);
    const inputGrad = checkBackwardOptions(options);
    const input = gradY.slice();
    return this.serial(async () => {
      const parts: BackwardGrads[] = [];
      for (const { chunk, layer } of this.subs) parts.push(await layer.backward(this.gatherY(chunk, input), { inputGrad }));
      const c = this.config;
      const grads: BackwardGrads = inputGrad ? { gradX: this.joinGradX(parts.map((p) => p.gradX!)) } : {};
      const per = this.perOutWeights();
      const join = (name: keyof ParamGrads, perChannel: number): Float32Array | undefined => {
        if (parts[0][name] === undefined) return undefined;
        const out = new Float32Array(c.Cout * perChannel);
        this.subs.forEach(({ chunk }, k) => out.set(parts[k][name]!, chunk.cout0 * perChannel));
        return out;
      };
      for (const name of ['gradWeight', 'gradFoldedWeight'] as const) {
        const t = join(name, per);
        if (t) grads[name] = t;
      }
      for (const name of ['gradBias', 'gradGamma', 'gradBeta', 'gradFoldedBias'] as const) {
        const t = join(name, 1);
        if (t) grads[name] = t;
      }
      return grads;
    });
  }

  /** The chunks' gradX as the whole layer's. */
  private joinGradX(parts: readonly Float32Array[]): Float32Array {
    const c = this.config;
    const sizes = tensorSizes(c);
    if (c.groups === 1) {
      // Every output-channel chunk reads all of x: their gradX add up (float64, rounded once).
      const acc = new Float64Array(sizes.x);
      for (const p of parts) for (let i = 0; i < acc.length; i++) acc[i] += p[i];
      return Float32Array.from(acc);
    }
    const gradX = new Float32Array(sizes.x);
    const hw = c.H * c.W;
    this.subs.forEach(({ chunk }, k) => {
      const take = chunk.config.Cin * hw;
      for (let n = 0; n < c.N; n++) gradX.set(parts[k].subarray(n * take, (n + 1) * take), (n * c.Cin + chunk.cin0) * hw);
    });
    return gradX;
  }

  memory(): MemoryStats {
    const total: MemoryStats = { parameterBytes: 0, heldForBackwardBytes: 0, lastStepHeldBytes: 0, lastStepPeakBytes: 0 };
    for (const { layer } of this.subs) {
      const m = layer.memory();
      total.parameterBytes += m.parameterBytes;
      total.heldForBackwardBytes += m.heldForBackwardBytes;
      total.lastStepHeldBytes += m.lastStepHeldBytes;
      // Chunks run one after another: the peak is the largest chunk's.
      total.lastStepPeakBytes = Math.max(total.lastStepPeakBytes, m.lastStepPeakBytes);
    }
    return total;
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const { layer } of this.subs) layer.destroy();
    this.destroyed = true;
  }
}
