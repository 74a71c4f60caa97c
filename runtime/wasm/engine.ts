/**
 * The WebAssembly CPU backend: AssemblyScript SIMD kernels on one shared
 * wasm memory, run on worker threads (Node worker_threads; Web Workers when
 * the page is crossOriginIsolated, else one thread).
 */
import { wrapperFor } from '../layer-wrappers.js';
import { outputShape, tensorSizes, toConfig, valuesPerChannel, type ConvBNConfig, type ConvBNConfigInput, type Mode } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import type {
  BackwardGrads, BackwardOptions, ConvBNGrads, ConvBNLayer, ConvBNParams, ConvBNParamsInput, Engine, EngineOptions, FoldedParams,
  ForwardOptions, LayerOptions, MemoryStats,
} from '../types.js';
import { checkBackwardOptions, checkFolded, checkMode, checkParams, checkTensor, foldParams, mergeParams } from '../validate.js';
import { WasmHeap } from './heap.js';
import { fixScalarInputGrad, scalarInputValues } from '../scalar-input.js';
import { ConvOps, Runner, type Scratch } from './ops.js';
import { MAX_PAGES, ThreadPool, canShareMemory, loadModule } from './pool.js';
import { selectKernels, type KernelChoice } from './select.js';
import { importNode } from '../nodeImport.js';

export { selectKernels, type KernelChoice, type ConvPath, type WgradPath } from './select.js';

export interface WasmEngineOptions extends EngineOptions {
  /** Force kernel paths for every layer of this engine (tests); default: selectKernels. */
  kernels?: Partial<KernelChoice>;
  /**
   * Tests only: worker threads spin for random 0..jitter-1 rounds at each step
   * of taking and finishing tasks, to shake out ordering bugs. Default 0 (none).
   */
  jitter?: number;
}

export interface WasmLayerOptions extends LayerOptions {
  /** Force kernel paths for this layer (tests); default: the engine's, then selectKernels. */
  kernels?: Partial<KernelChoice>;
}

const isNode = typeof process !== 'undefined' && typeof process.versions === 'object' && !!process.versions.node;

async function defaultThreads(): Promise<number> {
  if (isNode) {
    const os = await importNode<typeof import('node:os')>('node:os');
    return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  }
  if (!canShareMemory()) return 1;
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

export async function createWasmEngine(options: WasmEngineOptions = {}): Promise<Engine & {
  readonly threads: number;
  createLayer(config: ConvBNConfigInput | ConvBNConfig, params?: ConvBNParamsInput, options?: WasmLayerOptions): ConvBNLayer;
}> {
  if (options === null || typeof options !== 'object') throw new ConvBNInputError('options', options, 'must be an object');
  let threads = options.threads;
  if (threads !== undefined && (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1 || threads > 256)) {
    throw new ConvBNInputError('threads', threads, 'must be an integer in [1, 256]');
  }
  threads ??= await defaultThreads();
  const shared = canShareMemory();
  if (!shared) threads = 1;
  if (options.kernels !== undefined && (options.kernels === null || typeof options.kernels !== 'object')) {
    throw new ConvBNInputError('kernels', options.kernels, 'must be an object { forward?, dgrad?, wgrad?, fusePack?, dgradPhases? }');
  }
  const jitter = options.jitter ?? 0;
  if (typeof jitter !== 'number' || !Number.isInteger(jitter) || jitter < 0 || jitter > 1 << 20) {
    throw new ConvBNInputError('jitter', jitter, 'must be an integer in [0, 2^20]');
  }
  const module = await loadModule(shared);
  const memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared });
  const pool = await ThreadPool.create(module, memory, threads, jitter);
  const heap = new WasmHeap(memory, 1024, MAX_PAGES);
  return new WasmEngine(heap, pool, options.kernels ?? {});
}

class WasmEngine implements Engine {
  readonly backend = 'wasm' as const;
  readonly description: string;
  readonly threads: number;
  readonly runner: Runner;
  private readonly pool: ThreadPool;
  private readonly forced: Partial<KernelChoice>;
  private readonly layers = new Set<WasmLayer>();
  private queue: Promise<unknown> = Promise.resolve();
  private inFlight = 0;
  private destroyed = false;

  constructor(heap: WasmHeap, pool: ThreadPool, forced: Partial<KernelChoice>) {
    this.pool = pool;
    this.runner = new Runner(heap, pool);
    this.forced = forced;
    this.threads = pool.threads;
    this.description = `WebAssembly SIMD128 (AssemblyScript kernels), ${pool.threads} thread${pool.threads === 1 ? '' : 's'}`;
  }

  get heap(): WasmHeap {
    return this.runner.heap;
  }

  createLayer(config: ConvBNConfigInput | ConvBNConfig, params?: ConvBNParamsInput, options: WasmLayerOptions = {}): ConvBNLayer {
    this.assertAlive();
    const c = toConfig(config);
    const wrapped = wrapperFor(c, (inner) => this.createLayer(inner, params, options), { layouts: ['NHWC'] });
    if (wrapped) return wrapped;
    if (options === null || typeof options !== 'object') throw new ConvBNInputError('options', options, 'must be an object');
    const recompute = options.recompute ?? false;
    if (typeof recompute !== 'boolean') throw new ConvBNInputError('recompute', recompute, 'must be true or false');
    const choice = selectKernels(c, { ...this.forced, ...(options.kernels ?? {}) });
    if (params !== undefined) checkParams(c, params);
    const layer = new WasmLayer(this, c, choice, { recompute }, params);
    this.layers.add(layer);
    return layer;
  }

  /** Runs `fn` after every earlier operation of this engine finished (kernels share one parameter block). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = (): Promise<T> => {
      let result: Promise<T>;
      try {
        result = fn();
      } catch (error) {
        result = Promise.reject(error);
      }
      return result.finally(() => { this.inFlight--; });
    };
    // Idle: start now, so the operation reads its inputs before this call returns.
    const result = this.inFlight++ === 0 ? run() : this.queue.then(run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** No operation running or queued: one started now reads its inputs synchronously. */
  get idle(): boolean {
    return this.inFlight === 0;
  }

  forget(layer: WasmLayer): void {
    this.layers.delete(layer);
  }

  assertAlive(): void {
    if (this.destroyed) throw new Error('convbn wasm: the engine was destroyed');
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const layer of [...this.layers]) layer.destroy();
    this.destroyed = true;
    this.pool.destroy();
  }
}


interface Held {
  mode: Mode;
  recompute: boolean;
  x: number;
  z: number;
  mean: number;
  invstd: number;
  bytes: number;
}

/** Step buffers: counted for lastStepPeakBytes. */
class StepScratch implements Scratch {
  private readonly heap: WasmHeap;
  private readonly sizes = new Map<number, number>();
  current = 0;
  peak = 0;

  constructor(heap: WasmHeap) {
    this.heap = heap;
  }

  alloc(bytes: number): number {
    const ptr = this.heap.alloc(bytes);
    this.sizes.set(ptr, bytes);
    this.current += bytes;
    this.peak = Math.max(this.peak, this.current);
    return ptr;
  }

  free(ptr: number): void {
    const bytes = this.sizes.get(ptr);
    if (bytes === undefined) return;
    this.sizes.delete(ptr);
    this.current -= bytes;
    this.heap.freeBlock(ptr);
  }

  /** Keeps `ptrs` (held for backward), frees the rest. */
  releaseExcept(...keep: number[]): void {
    for (const ptr of [...this.sizes.keys()]) if (!keep.includes(ptr)) this.free(ptr);
  }
}

interface ParamPtrs {
  weight: number;
  bias: number;
  gamma: number;
  beta: number;
  rm: number;
  rv: number;
}

class WasmLayer implements ConvBNLayer {
  readonly config: ConvBNConfig;
  readonly backend = 'wasm' as const;
  readonly options: Readonly<Required<LayerOptions>>;
  /** The kernel path of each part (see select.ts). */
  readonly kernels: KernelChoice;
  private readonly engine: WasmEngine;
  private readonly ops: ConvOps;
  private readonly sizes: ReturnType<typeof tensorSizes>;
  /** Hout * Wout. */
  private readonly outPixels: number;
  private readonly p: ParamPtrs;
  private folded: { weight: number; bias: number } | undefined;
  private step: StepScratch | undefined;
  private held: Held | undefined;
  private destroyed = false;
  private stats: MemoryStats = { parameterBytes: 0, heldForBackwardBytes: 0, lastStepHeldBytes: 0, lastStepPeakBytes: 0 };

  /** False until parameters arrive (createLayer's or setParameters'): forward refuses to run on garbage. */
  private hasParams = false;

  constructor(engine: WasmEngine, c: ConvBNConfig, choice: KernelChoice, options: Required<LayerOptions>, params?: ConvBNParamsInput) {
    this.engine = engine;
    this.config = c;
    this.kernels = choice;
    this.options = Object.freeze({ ...options });
    this.ops = new ConvOps(c, choice, engine.runner);
    this.sizes = tensorSizes(c);
    this.outPixels = this.sizes.y / (c.N * c.Cout);
    const heap = engine.heap;
    this.p = {
      weight: heap.alloc(this.sizes.weight * 4),
      bias: c.bias ? heap.alloc(c.Cout * 4) : 0,
      gamma: heap.alloc(c.Cout * 4),
      beta: heap.alloc(c.Cout * 4),
      rm: heap.alloc(c.Cout * 4),
      rv: heap.alloc(c.Cout * 4),
    };
    if (params) this.writeParams(params);
  }

  private get heap(): WasmHeap {
    return this.engine.heap;
  }

  private assertAlive(): void {
    if (this.destroyed) throw new Error('convbn wasm: the layer was destroyed');
    this.engine.assertAlive();
  }

  private writeParams(p: ConvBNParamsInput): void {
    this.hasParams = true;
    const h = this.heap;
    const C = this.config.Cout;
    h.f32(this.p.weight, this.sizes.weight).set(p.weight);
    if (this.p.bias) h.f32(this.p.bias, C).set(p.bias!);
    h.f32(this.p.gamma, C).set(p.gamma);
    h.f32(this.p.beta, C).set(p.beta);
    h.f32(this.p.rm, C).set(p.runningMean);
    h.f32(this.p.rv, C).set(p.runningVar);
    this.dropFolded();
  }

  private dropFolded(): void {
    if (!this.folded) return;
    this.heap.freeBlock(this.folded.weight);
    this.heap.freeBlock(this.folded.bias);
    this.folded = undefined;
  }

  private readParams(): ConvBNParams {
    if (!this.hasParams) {
      throw new ConvBNInputError('params', undefined, 'must be set (createLayer(config, params) or setParameters) first');
    }
    const h = this.heap;
    const C = this.config.Cout;
    return {
      weight: h.copyOut(this.p.weight, this.sizes.weight),
      ...(this.p.bias ? { bias: h.copyOut(this.p.bias, C) } : {}),
      gamma: h.copyOut(this.p.gamma, C),
      beta: h.copyOut(this.p.beta, C),
      runningMean: h.copyOut(this.p.rm, C),
      runningVar: h.copyOut(this.p.rv, C),
    };
  }

  setParameters(params: ConvBNParamsInput): void {
    this.assertAlive();
    checkParams(this.config, params);
    this.writeParams(params);
  }

  /** Replaces the named tensors, keeps the rest (running stats included). Call it between steps. */
  updateParameters(params: Partial<ConvBNParamsInput>): void {
    this.assertAlive();
    const merged = mergeParams(this.readParams(), params);
    checkParams(this.config, merged);
    this.writeParams(merged);
  }

  async getParameters(): Promise<ConvBNParams> {
    this.assertAlive();
    return this.engine.exclusive(async () => this.readParams());
  }

  private ensureFolded(): { weight: number; bias: number } {
    if (!this.folded) {
      const f = foldParams(this.config, this.readParams());
      this.folded = { weight: this.heap.alloc(this.sizes.weight * 4), bias: this.heap.alloc(this.config.Cout * 4) };
      this.heap.f32(this.folded.weight, this.sizes.weight).set(f.weight);
      this.heap.f32(this.folded.bias, this.config.Cout).set(f.bias);
    }
    return this.folded;
  }

  async getFoldedParameters(): Promise<FoldedParams> {
    this.assertAlive();
    return this.engine.exclusive(async () => {
      const f = this.ensureFolded();
      return {
        weight: this.heap.copyOut(f.weight, this.sizes.weight),
        bias: this.heap.copyOut(f.bias, this.config.Cout),
      };
    });
  }

  setFoldedParameters(params: FoldedParams): void {
    this.assertAlive();
    checkFolded(this.config, params);
    const f = this.ensureFolded();
    this.heap.f32(f.weight, this.sizes.weight).set(params.weight);
    this.heap.f32(f.bias, this.config.Cout).set(params.bias);
  }

  /** Per-channel scale s = gamma / sqrt(var + eps) and 1 / sqrt(var + eps), in float64. */
  private bnScale(): { s: Float64Array; invstd: Float64Array } {
    const C = this.config.Cout;
    const gamma = this.heap.f32(this.p.gamma, C);
    const rv = this.heap.f32(this.p.rv, C);
    const s = new Float64Array(C);
    const invstd = new Float64Array(C);
    for (let o = 0; o < C; o++) {
      invstd[o] = 1 / Math.sqrt(rv[o] + this.config.eps);
      s[o] = gamma[o] * invstd[o];
    }
    return { s, invstd };
  }

  private upload(step: StepScratch, values: ArrayLike<number>): number {
    const ptr = step.alloc(values.length * 4);
    this.heap.f32(ptr, values.length).set(values);
    return ptr;
  }

  /**
   * x or gradY into the heap as the kernels read it, NCHW. An NHWC layer's tensor is copied in as it is
   * (before the first await: the caller's array is read before the call returns) and transposed by a kernel job.
   */
  private async uploadActivation(step: StepScratch, values: Float32Array, channels: number, pixels: number): Promise<number> {
    const raw = this.upload(step, values);
    if (this.config.layout === 'NCHW') return raw;
    const nchw = step.alloc(values.length * 4);
    await this.ops.transpose(raw, nchw, this.config.N, pixels, channels);
    step.free(raw);
    return nchw;
  }

  /** An NCHW heap tensor in the layer's layout: itself, or (NHWC) a transposed copy the caller frees. */
  private async inLayerLayout(step: StepScratch, ptr: number, length: number, channels: number, pixels: number): Promise<number> {
    if (this.config.layout === 'NCHW') return ptr;
    const out = step.alloc(length * 4);
    await this.ops.transpose(ptr, out, this.config.N, channels, pixels);
    return out;
  }

  forward(x: Float32Array, mode: Mode, options: ForwardOptions = {}): Promise<Float32Array> {
    this.assertAlive();
    if (!this.hasParams) {
      throw new ConvBNInputError('params', undefined, 'must be set (createLayer(config, params) or setParameters) before forward');
    }
    checkMode(mode);
    checkTensor('x', x, this.sizes.x);
    if (options === null || typeof options !== 'object') throw new ConvBNInputError('options', options, 'must be an object');
    const requiresGrad = options.requiresGrad ?? true;
    if (typeof requiresGrad !== 'boolean') throw new ConvBNInputError('requiresGrad', requiresGrad, 'must be true or false');
    const recompute = options.recompute ?? this.options.recompute;
    if (typeof recompute !== 'boolean') throw new ConvBNInputError('recompute', recompute, 'must be true or false');
    if (mode === 'train' && valuesPerChannel(this.config) < 2) {
      throw new ConvBNInputError('N * Hout * Wout', valuesPerChannel(this.config),
        'must be >= 2 in train mode (batch statistics need more than one value per channel)');
    }
    // Copy only when the call has to wait: an idle engine uploads x before returning.
    const input = this.engine.idle ? x : x.slice();
    return this.engine.exclusive(() => this.forwardNow(input, mode, requiresGrad, mode === 'train' && recompute));
  }

  private async forwardNow(x: Float32Array, mode: Mode, requiresGrad: boolean, recompute: boolean): Promise<Float32Array> {
    this.assertAlive();
    this.releaseHeld();
    const step = new StepScratch(this.heap);
    this.step = step;
    const c = this.config;
    const C = c.Cout;
    const ySize = this.sizes.y;
    let zb = 0, mean = 0, invstd = 0;
    try {
      const xb = await this.uploadActivation(step, x, c.Cin, c.H * c.W);
      const yb = step.alloc(ySize * 4);
      switch (mode) {
        case 'deploy': {
          const f = this.ensureFolded();
          await this.ops.forward(step, xb, f.weight, 0, { out: yb, bias: f.bias });
          break;
        }
        case 'tune': {
          const { s } = this.bnScale();
          const bias = this.p.bias ? this.heap.f32(this.p.bias, C) : undefined;
          const rm = this.heap.f32(this.p.rm, C), beta = this.heap.f32(this.p.beta, C);
          const bFolded = new Float32Array(C);
          for (let i = 0; i < C; i++) bFolded[i] = ((bias ? bias[i] : 0) - rm[i]) * s[i] + beta[i];
          const sb = this.upload(step, Float32Array.from(s));
          const bb = this.upload(step, bFolded);
          await this.ops.forward(step, xb, this.p.weight, sb, { out: yb, bias: bb });
          step.free(sb);
          step.free(bb);
          break;
        }
        case 'eval': {
          const { s } = this.bnScale();
          const sb = this.upload(step, Float32Array.from(s));
          zb = step.alloc(ySize * 4);
          await this.ops.forward(step, xb, this.p.weight, 0, {
            out: zb, bias: this.p.bias || undefined, out2: yb, m2: this.p.rm, s2: sb, b2: this.p.beta,
          });
          step.free(sb);
          break;
        }
        case 'train': {
          zb = step.alloc(ySize * 4);
          mean = step.alloc(C * 8); // float64
          invstd = step.alloc(C * 8);
          await this.ops.forward(step, xb, this.p.weight, 0, { out: zb, bias: this.p.bias || undefined });
          await this.ops.bnTrainForward({
            z: zb, y: yb, gamma: this.p.gamma, beta: this.p.beta, rm: this.p.rm, rv: this.p.rv, mean, invstd,
          });
          this.dropFolded(); // running stats changed
          if (recompute) {
            step.free(zb);
            zb = 0;
          }
          break;
        }
      }
      const yOut = await this.inLayerLayout(step, yb, ySize, C, this.outPixels);
      const y = this.heap.copyOut(yOut, ySize);
      if (yOut !== yb) step.free(yOut);
      if (requiresGrad) {
        const keep = [xb, zb, mean, invstd].filter((v) => v !== 0);
        step.releaseExcept(...keep);
        this.held = {
          mode, recompute, x: xb, z: zb, mean, invstd,
          bytes: x.length * 4 + (zb ? ySize * 4 : 0) + (mean ? 2 * C * 8 : 0),
        };
        this.stats.heldForBackwardBytes = this.held.bytes;
      } else {
        // Inference: the last training step's figures stay as they were.
        step.releaseExcept();
        this.step = undefined;
        this.stats.heldForBackwardBytes = 0;
      }
      return y;
    } catch (error) {
      step.releaseExcept();
      this.step = undefined;
      this.held = undefined;
      this.stats.heldForBackwardBytes = 0;
      throw error;
    }
  }

  backward(gradY: Float32Array, options?: { inputGrad?: true }): Promise<ConvBNGrads>;
  backward(gradY: Float32Array, options: BackwardOptions): Promise<BackwardGrads>;
  backward(gradY: Float32Array, options?: BackwardOptions): Promise<BackwardGrads> {
    this.assertAlive();
    checkTensor('gradY', gradY, this.sizes.y);
    const inputGrad = checkBackwardOptions(options);
    const dy = this.engine.idle ? gradY : gradY.slice();
    return this.engine.exclusive(() => this.backwardNow(dy, inputGrad));
  }

  private async backwardNow(gradY: Float32Array, inputGrad: boolean): Promise<BackwardGrads> {
    this.assertAlive();
    const held = this.held;
    const step = this.step;
    if (!held || !step) {
      throw new ConvBNInputError('backward', 'called',
        'needs a forward with requiresGrad (the default) first, and runs once per forward');
    }
    const c = this.config;
    const C = c.Cout;
    const h = this.heap;
    const wN = this.sizes.weight;
    try {
      const dy = await this.uploadActivation(step, gradY, C, this.outPixels);
      const gx = inputGrad ? step.alloc(this.sizes.x * 4) : 0;
      const gw = step.alloc(wN * 4);
      const small = step.alloc(4 * C * 4);
      const gbeta = small, ggamma = small + C * 4, gbias = small + 2 * C * 4;
      /**
       * gx, then gW (and the per-channel sums of dz into `channelSums` when set): gx is final before the
       * weight gradient starts, so this thread copies it out while the workers begin on gW. `fixGradX`
       * rewrites gx (NCHW, in the heap) first. Without inputGrad, gW alone.
       */
      const convGrads = async (dz: number, weight: number, scale: number, channelSums?: number,
        fixGradX?: (gx: Float32Array) => void): Promise<Float32Array | undefined> => {
        if (!inputGrad) {
          await this.ops.wgrad(step, held.x, dz, gw, { channelSums });
          return undefined;
        }
        await this.ops.dgrad(step, dz, weight, scale, gx);
        fixGradX?.(h.f32(gx, this.sizes.x));
        const gxOut = await this.inLayerLayout(step, gx, this.sizes.x, c.Cin, c.H * c.W);
        let gradX: Float32Array | undefined;
        await this.ops.wgrad(step, held.x, dz, gw, { channelSums, alongside: () => { gradX = h.copyOut(gxOut, this.sizes.x); } });
        return gradX!;
      };
      let grads: BackwardGrads;
      switch (held.mode) {
        case 'deploy': {
          const f = this.ensureFolded();
          grads = {
            gradX: await convGrads(dy, f.weight, 0, gbias),
            gradFoldedWeight: h.copyOut(gw, wN),
            gradFoldedBias: h.copyOut(gbias, C),
          };
          break;
        }
        case 'tune': {
          const { s, invstd } = this.bnScale();
          const sb = this.upload(step, Float32Array.from(s));
          const gradX = await convGrads(dy, this.p.weight, sb, gbias);
          // gW = s gW', gb = s gb', gbeta = gb', ggamma = (sum_k W gW' + (b - rm) gb') / sqrt(var + eps)
          const gwF = h.f32(gw, wN), gbF = h.f32(gbias, C);
          const W = h.f32(this.p.weight, wN), rm = h.f32(this.p.rm, C);
          const b = this.p.bias ? h.f32(this.p.bias, C) : undefined;
          const per = wN / C;
          const gradWeight = new Float32Array(wN);
          const gradGamma = new Float32Array(C);
          for (let o = 0; o < C; o++) {
            let acc = 0;
            for (let k = o * per; k < (o + 1) * per; k++) {
              acc += W[k] * gwF[k];
              gradWeight[k] = s[o] * gwF[k];
            }
            acc += ((b ? b[o] : 0) - rm[o]) * gbF[o];
            gradGamma[o] = acc * invstd[o];
          }
          grads = {
            gradX,
            gradWeight,
            ...(b ? { gradBias: Float32Array.from(gbF, (v, o) => v * s[o]) } : {}),
            gradGamma,
            gradBeta: h.copyOut(gbias, C),
          };
          break;
        }
        case 'eval': {
          const dz = step.alloc(this.sizes.y * 4);
          await this.ops.bnEvalBackward({
            z: held.z, dy, dz, rm: this.p.rm, rv: this.p.rv, gamma: this.p.gamma, gbeta, ggamma,
            gbias: this.p.bias ? gbias : 0,
          });
          grads = {
            gradX: await convGrads(dz, this.p.weight, 0),
            gradWeight: h.copyOut(gw, wN),
            ...(this.p.bias ? { gradBias: h.copyOut(gbias, C) } : {}),
            gradGamma: h.copyOut(ggamma, C),
            gradBeta: h.copyOut(gbeta, C),
          };
          break;
        }
        case 'train': {
          let z = held.z;
          if (held.recompute) {
            z = step.alloc(this.sizes.y * 4);
            await this.ops.forward(step, held.x, this.p.weight, 0, { out: z, bias: this.p.bias || undefined });
          }
          const dz = step.alloc(this.sizes.y * 4);
          await this.ops.bnTrainBackward({
            z, dy, dz, mean: held.mean, invstd: held.invstd, gamma: this.p.gamma, gbeta, ggamma,
          });
          if (held.recompute) step.free(z);
          // The held x and gx are NCHW in the heap, whatever the layer's layout.
          const liveX = inputGrad ? scalarInputValues(c, h.f32(held.x, this.sizes.x)) : undefined;
          const gradX = await convGrads(dz, this.p.weight, 0, undefined, liveX && ((gx) => fixScalarInputGrad(c, gx, {
            x: liveX, gamma: h.f32(this.p.gamma, C), gradGamma: h.f32(ggamma, C),
            invstd: new Float64Array(h.memory.buffer, held.invstd, C),
          })));
          const gradWeight = h.copyOut(gw, wN);
          this.fixTrainGradWeight(held, ggamma, gradWeight);
          grads = {
            gradX,
            gradWeight,
            // BN subtracts the batch mean: the conv bias has no effect, its gradient is exactly 0.
            ...(this.p.bias ? { gradBias: new Float32Array(C) } : {}),
            gradGamma: h.copyOut(ggamma, C),
            gradBeta: h.copyOut(gbeta, C),
          };
          break;
        }
      }
      this.stats.lastStepPeakBytes = step.peak;
      this.stats.lastStepHeldBytes = held.bytes;
      if (grads.gradX === undefined) delete grads.gradX;
      return grads;
    } finally {
      step.releaseExcept();
      this.step = undefined;
      this.held = undefined;
      this.stats.heldForBackwardBytes = 0;
    }
  }

  /**
   * Train mode: BN makes y invariant to scaling W[o] (and b[o]), so the
   * component of dL/dW[o] along W[o] is only an eps-sized rest:
   *   sum_k W[o,k] gW[o,k] = sum_p dz_p (z_p - mean) = gamma * ggamma * eps * invstd^2.
   * A float32 sum of dz * x carries rounding noise in that direction, which
   * swamps the whole gradient when W[o] spans the only direction x feeds
   * (one tap per output channel, or the other taps reading only padding).
   * Replace the computed component along W[o] by the exact one.
   */
  private fixTrainGradWeight(held: Held, ggammaPtr: number, gw: Float32Array): void {
    const c = this.config;
    const C = c.Cout;
    const h = this.heap;
    const per = this.sizes.weight / C;
    const W = h.f32(this.p.weight, this.sizes.weight);
    const gamma = h.f32(this.p.gamma, C);
    const ggamma = h.f32(ggammaPtr, C);
    const invstd = new Float64Array(h.memory.buffer, held.invstd, C);
    // Taps that only ever read padding have gradient exactly 0: leave them out of W[o]'s direction.
    const { H: Ho, W: Wo } = outputShape(c);
    const liveRow = (kh: number): boolean => {
      for (let oh = 0; oh < Ho; oh++) { const ih = oh * c.strideH - c.padTop + kh * c.dilationH; if (ih >= 0 && ih < c.H) return true; }
      return false;
    };
    const liveCol = (kw: number): boolean => {
      for (let ow = 0; ow < Wo; ow++) { const iw = ow * c.strideW - c.padLeft + kw * c.dilationW; if (iw >= 0 && iw < c.W) return true; }
      return false;
    };
    const live = new Uint8Array(per);
    for (let i = 0; i < per; i++) {
      const r = i % (c.kH * c.kW);
      live[i] = liveRow(Math.floor(r / c.kW)) && liveCol(r % c.kW) ? 1 : 0;
    }
    for (let o = 0; o < C; o++) {
      let ww = 0, wg = 0;
      for (let i = 0; i < per; i++) {
        if (!live[i]) continue;
        const w = W[o * per + i];
        ww += w * w;
        wg += w * gw[o * per + i];
      }
      if (!(ww > 0)) continue;
      const exact = gamma[o] * ggamma[o] * c.eps * invstd[o] * invstd[o];
      const f = (exact - wg) / ww;
      if (!Number.isFinite(f)) continue;
      for (let i = 0; i < per; i++) if (live[i]) gw[o * per + i] += f * W[o * per + i];
    }
  }

  private releaseHeld(): void {
    if (this.step) this.step.releaseExcept();
    this.step = undefined;
    this.held = undefined;
    this.stats.heldForBackwardBytes = 0;
  }

  memory(): MemoryStats {
    const c = this.config;
    const paramBytes = (this.sizes.weight + (c.bias ? c.Cout : 0) + 4 * c.Cout) * 4 +
      (this.folded ? (this.sizes.weight + c.Cout) * 4 : 0);
    return { ...this.stats, parameterBytes: paramBytes };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.releaseHeld();
    this.dropFolded();
    for (const ptr of Object.values(this.p)) if (ptr) this.heap.freeBlock(ptr);
    this.destroyed = true;
    this.engine.forget(this);
  }
}
