/**
 * The WebGPU engine: one device, its buffer pool and pipeline cache, shared
 * by the layers it creates.
 */
import { toConfig, type ConvBNConfig, type ConvBNConfigInput } from '../../codegen/config.js';
import type { ConvBNLayer, ConvBNParamsInput, Engine, EngineOptions, LayerOptions } from '../types.js';
import { BufferPool, type BufferCounters } from './buffers.js';
import { acquireDevice } from './device.js';
import { WebGPULayer, type WebGPUContext } from './layer.js';
import { checkDeviceLimits } from './limits.js';
import { PipelineCache } from './pipelines.js';

export class WebGPUEngine implements Engine {
  readonly backend = 'webgpu' as const;
  private readonly pool: BufferPool;
  private readonly pipelines: PipelineCache;
  private readonly layers = new Set<WebGPULayer>();
  private lost: string | undefined;
  private destroyed = false;
  /** Uncaptured WebGPU errors; any entry is a bug (tests assert it stays empty). */
  readonly uncapturedErrors: string[] = [];
  private readonly context: WebGPUContext;

  constructor(readonly device: GPUDevice, readonly description: string, readonly isCpu: boolean, private readonly ownsDevice: boolean) {
    this.pool = new BufferPool(device);
    this.pipelines = new PipelineCache(device);
    this.context = {
      device,
      pool: this.pool,
      pipelines: this.pipelines,
      assertUsable: () => {
        if (this.destroyed) throw new Error('the WebGPU engine was destroyed');
        if (this.lost !== undefined) throw new Error(`the WebGPU device was lost (${this.lost})`);
      },
    };
    device.lost.then((info) => {
      this.lost = `${info.reason}: ${info.message}`;
    });
    device.addEventListener('uncapturederror', (event) => {
      this.uncapturedErrors.push((event as GPUUncapturedErrorEvent).error.message);
    });
  }

  createLayer(config: ConvBNConfigInput | ConvBNConfig, params?: ConvBNParamsInput, options: LayerOptions = {}): ConvBNLayer {
    this.context.assertUsable();
    const c = toConfig(config);
    checkDeviceLimits(c, this.device.limits);
    const layer = new WebGPULayer(this.context, c, params, options);
    this.layers.add(layer);
    return layer;
  }

  counters(): BufferCounters & { pipelines: number } {
    return { ...this.pool.counters(), pipelines: this.pipelines.size };
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const layer of this.layers) layer.destroy();
    this.layers.clear();
    this.pool.trim();
    this.pipelines.clear();
    this.destroyed = true;
    if (this.ownsDevice) this.device.destroy();
  }
}

export async function createWebGPUEngine(options: EngineOptions = {}): Promise<WebGPUEngine> {
  if (options.device) return new WebGPUEngine(options.device, 'caller-provided GPUDevice', false, false);
  const acquired = await acquireDevice();
  return new WebGPUEngine(acquired.device, acquired.description, acquired.isCpu, true);
}
