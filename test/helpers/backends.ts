/**
 * Engines for tests. Under CI=true a backend that cannot start fails the run;
 * elsewhere its tests skip with a message saying what to install.
 */
import type { Engine } from '../../runtime/types.js';
import { createWebGPUEngine, type WebGPUEngine } from '../../runtime/webgpu/engine.js';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

export async function webgpuEngineOrSkip(): Promise<WebGPUEngine | undefined> {
  try {
    return await createWebGPUEngine();
  } catch (e) {
    const message = `no WebGPU adapter (${(e as Error).message}). Install Mesa: ` +
      'apt-get install mesa-vulkan-drivers libvulkan1 libegl1 libgles2';
    if (IN_CI) throw new Error(`CI=true: ${message}`);
    console.warn(`WebGPU tests skipped: ${message}`);
    return undefined;
  }
}

/** Any engine exposing recorded uncaptured GPU errors (WebGPU) must have none. */
export function uncapturedErrors(engine: Engine): readonly string[] {
  return (engine as Partial<WebGPUEngine>).uncapturedErrors ?? [];
}
