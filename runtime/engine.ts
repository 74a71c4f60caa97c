/**
 * createEngine: the one entry point that picks a backend. 'auto' takes WebGPU
 * when an adapter appears and the WASM CPU kernels otherwise.
 */
import { ConvBNInputError } from '../codegen/errors.js';
import type { Engine, EngineOptions } from './types.js';
import { createWebGPUEngine } from './webgpu/engine.js';
import { NoWebGPUError } from './webgpu/device.js';

async function createWasm(options: EngineOptions): Promise<Engine> {
  const { createWasmEngine } = await import('./wasm/engine.js');
  return createWasmEngine(options);
}

export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  const backend = options.backend ?? 'auto';
  switch (backend) {
    case 'webgpu': return createWebGPUEngine(options);
    case 'wasm': return createWasm(options);
    case 'auto':
      try {
        return await createWebGPUEngine(options);
      } catch (e) {
        if (!(e instanceof NoWebGPUError)) throw e;
        return createWasm(options);
      }
    default:
      throw new ConvBNInputError('backend', backend, "must be 'webgpu', 'wasm' or 'auto'");
  }
}
