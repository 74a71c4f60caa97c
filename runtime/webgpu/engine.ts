/**
 * The WebGPU engine: one device, its buffer pool and pipeline cache, shared
 * by the layers it creates. When the device is lost the engine acquires a
 * new one on the next call (layers re-upload their parameters from their host
 * copies), or hands its layers to the WASM engine if no adapter comes back.
 */
import { wrapperFor } from '../layer-wrappers.js';
import { normalizeConfig, toInput, type ConvBNConfig, type ConvBNConfigInput } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import type { BackendName, ConvBNLayer, ConvBNParamsInput, Engine, EngineOptions, LayerOptions } from '../types.js';
import { BufferPool, type BufferCounters } from './buffers.js';
import { acquireDevice, type AcquiredDevice } from './device.js';
import { WebGPULayer, type WebGPUContext } from './layer.js';
import { ChannelSplitLayer, allModeRoles, channelChunks } from './channel-split.js';
import { bufferLimits, checkDeviceLimits, oversizedRole, type BufferLimitOverrides, type BufferLimits } from './limits.js';
import { DeviceLostError, isAbort } from './lost.js';
import { PipelineCache, type KernelOptions } from './pipelines.js';
import { withBatch } from './split.js';

export interface WebGPUEngineOptions extends EngineOptions {
  /** Lower the device's buffer limits (tests of batch splitting on a device with large limits). */
  limits?: BufferLimitOverrides;
  /** Kernel selection: tuning cache, forced variants (codegen/tuning/select.ts). */
  kernels?: KernelOptions;
  /** How a replacement device is acquired after a loss (default: acquireDevice). Tests inject failures here. */
  acquire?: () => Promise<AcquiredDevice>;
  /** Where layers go when no device comes back after a loss (default: the WASM engine). */
  fallback?: () => Promise<Engine>;
}

/** Everything tied to one GPUDevice; replaced as a whole after a loss. */
interface DeviceState {
  readonly device: GPUDevice;
  readonly description: string;
  readonly isCpu: boolean;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly limits: BufferLimits;
  readonly generation: number;
}

async function defaultFallback(): Promise<Engine> {
  const { createWasmEngine } = await import('../wasm/engine.js');
  return createWasmEngine();
}

/**
 * toConfig passes through any frozen object shaped like a normalised config
 * unchecked. Re-derive such objects from their fields so that only numbers
 * normalizeConfig validated ever reach the generated WGSL.
 */
function validatedConfig(config: ConvBNConfigInput | ConvBNConfig): ConvBNConfig {
  const looksNormalized = config !== null && typeof config === 'object' && Object.isFrozen(config) && 'kH' in config && 'padTop' in config;
  const c = normalizeConfig(looksNormalized ? toInput(config as ConvBNConfig) : config as ConvBNConfigInput);
  // The kernels compute in float32: an eps that rounds to infinity, zero or a subnormal
  // (flushed to zero on GPUs) would make 1/sqrt(var + eps) infinite for a constant channel.
  const eps32 = Math.fround(c.eps);
  if (!(eps32 >= 2 ** -126 && eps32 < Infinity)) {
    throw new ConvBNInputError('eps', c.eps, 'must be a normal float32 (the kernels compute in float32): in [1.1754944e-38, 3.4028235e38]');
  }
  return c;
}

export class WebGPUEngine implements Engine {
  private state: DeviceState;
  private ownsDevice: boolean;
  private readonly layers = new Set<WebGPULayer | ChannelSplitLayer>();
  /** Set while the device is lost and not yet replaced. */
  private lost: string | undefined;
  private recovering: Promise<void> | undefined;
  private fallbackEngine: Engine | undefined;
  private destroyed = false;
  /** Uncaptured WebGPU errors; any entry is a bug (tests assert it stays empty). */
  readonly uncapturedErrors: string[] = [];
  /** Devices lost and replaced (or fallen back from) so far. */
  deviceLosses = 0;
  private readonly context: WebGPUContext;

  constructor(
    acquired: Pick<AcquiredDevice, 'device' | 'description' | 'isCpu'>,
    ownsDevice: boolean,
    private readonly options: WebGPUEngineOptions = {},
  ) {
    this.ownsDevice = ownsDevice;
    this.state = this.attach(acquired, 0);
    // The layers see the current device through getters: after a loss, they find a new one there.
    const engine = this;
    this.context = {
      get device() { return engine.state.device; },
      get pool() { return engine.state.pool; },
      get pipelines() { return engine.state.pipelines; },
      get limits() { return engine.state.limits; },
      get generation() { return engine.state.generation; },
      get usable() { return !engine.destroyed && engine.lost === undefined && engine.fallbackEngine === undefined; },
      assertNotDestroyed: () => {
        if (this.destroyed) throw new Error('the WebGPU engine was destroyed');
      },
      ready: () => this.ready(),
      deviceError: (error, during) => this.deviceError(error, during),
    };
  }

  get backend(): BackendName {
    return this.fallbackEngine?.backend ?? 'webgpu';
  }

  get device(): GPUDevice {
    return this.state.device;
  }

  get description(): string {
    return this.fallbackEngine
      ? `${this.fallbackEngine.description} (fallback: the WebGPU device was lost and none came back)`
      : this.state.description;
  }

  get isCpu(): boolean {
    return this.state.isCpu;
  }

  /** The buffer limits in force: the device's, or lower ones from options.limits. */
  get limits(): BufferLimits {
    return this.state.limits;
  }

  private attach(acquired: Pick<AcquiredDevice, 'device' | 'description' | 'isCpu'>, generation: number): DeviceState {
    const { device } = acquired;
    const state: DeviceState = {
      device,
      description: acquired.description,
      isCpu: acquired.isCpu,
      pool: new BufferPool(device),
      pipelines: new PipelineCache(device, this.options.kernels),
      limits: bufferLimits(device.limits, this.options.limits),
      generation,
    };
    device.lost.then((info) => {
      if (this.state === state) this.markLost(`${info.reason}: ${info.message}`);
    });
    device.addEventListener('uncapturederror', (event) => {
      this.uncapturedErrors.push((event as GPUUncapturedErrorEvent).error.message);
    });
    return state;
  }

  private markLost(reason: string): void {
    if (this.destroyed || this.lost !== undefined) return;
    this.lost = reason || 'lost';
    this.deviceLosses++;
  }

  /** Errors from a call whose GPU work failed: a DeviceLostError when the device went away under it. */
  private deviceError(error: unknown, during: string): unknown {
    if (this.destroyed) return new Error(`the WebGPU engine was destroyed during ${during}`);
    if (this.lost === undefined && isAbort(error)) this.markLost('a pending buffer map was aborted');
    return this.lost === undefined ? error : new DeviceLostError(during, this.lost);
  }

  /** Waits for a working device (replacing a lost one first); returns the fallback engine once there is one. */
  private async ready(): Promise<Engine | undefined> {
    if (this.destroyed) throw new Error('the WebGPU engine was destroyed');
    if (this.fallbackEngine || this.lost === undefined) return this.fallbackEngine;
    this.recovering ??= this.recover().finally(() => { this.recovering = undefined; });
    await this.recovering;
    if (this.destroyed) throw new Error('the WebGPU engine was destroyed');
    return this.fallbackEngine;
  }

  private async recover(): Promise<void> {
    const reason = this.lost;
    let acquired: AcquiredDevice;
    try {
      acquired = await (this.options.acquire ?? acquireDevice)();
    } catch (noDevice) {
      try {
        this.fallbackEngine = await (this.options.fallback ?? defaultFallback)();
      } catch (noFallback) {
        throw new Error(`the WebGPU device was lost (${reason}), no new device could be acquired ` +
          `(${(noDevice as Error).message}) and the WASM fallback failed (${(noFallback as Error).message})`);
      }
      if (this.destroyed) this.fallbackEngine.destroy();
      return;
    }
    if (this.destroyed) {
      acquired.device.destroy();
      return;
    }
    // The old pool's buffers died with their device: drop them uncounted.
    this.state = this.attach(acquired, this.state.generation + 1);
    this.ownsDevice = true;
    this.lost = undefined;
  }

  createLayer(config: ConvBNConfigInput | ConvBNConfig, params?: ConvBNParamsInput, options: LayerOptions = {}): ConvBNLayer {
    this.context.assertNotDestroyed();
    const c = validatedConfig(config);
    const wrapped = wrapperFor(c, (inner) => this.createLayer(inner, params, options));
    if (wrapped) return wrapped;
    try {
      checkDeviceLimits(c, withBatch(c, 1), this.state.device.limits, this.state.limits);
    } catch (error) {
      // One image over the limit: split along output channels (or groups) when a split fits, else refuse.
      if (!(error instanceof ConvBNInputError) || !error.field.endsWith('bytes of one image')) throw error;
      const chunks = channelChunks(c, this.state.limits, this.state.pipelines.target);
      if (!chunks) throw error;
      const split = new ChannelSplitLayer(this.context, c, chunks, params, options);
      this.layers.add(split);
      return split;
    }
    // One image's scratch over the limit in some mode: a channel split that fits every mode beats refusing that mode.
    const one = withBatch(c, 1);
    const { target } = this.state.pipelines;
    if (oversizedRole(one, this.state.limits, allModeRoles(one, target))) {
      const chunks = channelChunks(c, this.state.limits, target, true);
      if (chunks) {
        const split = new ChannelSplitLayer(this.context, c, chunks, params, options);
        this.layers.add(split);
        return split;
      }
    }
    const layer = new WebGPULayer(this.context, c, params, options);
    this.layers.add(layer);
    return layer;
  }

  counters(): BufferCounters & { pipelines: number } {
    return { ...this.state.pool.counters(), pipelines: this.state.pipelines.size };
  }

  /**
   * Drops compiled pipelines and pooled buffers not in use. The pipeline cache
   * grows with every distinct config; long-running processes that visit many
   * (fuzzers, model zoos) call this between batches of work.
   */
  releaseCaches(): void {
    this.state.pipelines.clear();
    this.state.pool.trim();
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const layer of this.layers) layer.destroy();
    this.layers.clear();
    this.state.pool.close();
    this.state.pipelines.clear();
    this.destroyed = true;
    this.fallbackEngine?.destroy();
    if (this.ownsDevice) this.state.device.destroy();
  }
}

export async function createWebGPUEngine(options: WebGPUEngineOptions = {}): Promise<WebGPUEngine> {
  // Refuse bad overrides before a device exists (one would otherwise be left behind).
  bufferLimits({ maxStorageBufferBindingSize: Infinity, maxBufferSize: Infinity } as GPUSupportedLimits, options.limits);
  if (options.device) {
    return new WebGPUEngine({ device: options.device, description: 'caller-provided GPUDevice', isCpu: false }, false, options);
  }
  const acquired = await (options.acquire ?? acquireDevice)();
  return new WebGPUEngine(acquired, true, options);
}
