/**
 * Engines for tests. Under CI=true a backend that cannot start fails the run;
 * elsewhere its tests skip with a message saying what to install.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { createEngine } from '../../runtime/engine.js';
import type { BackendName, Engine } from '../../runtime/types.js';
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

/**
 * The engine of `backend` for the enclosing describe block: opened before its tests, destroyed after them,
 * having recorded no uncaptured GPU error. Call the returned function inside tests.
 */
export function engineFor(backend: BackendName): () => Engine {
  let engine: Engine | undefined;
  beforeAll(async () => {
    engine = await createEngine({ backend });
  });
  afterAll(() => {
    const errors = engine ? uncapturedErrors(engine) : [];
    engine?.destroy();
    expect(errors).toEqual([]);
  });
  return () => {
    if (!engine) throw new Error(`engineFor(${backend}): the engine is not open (call it inside a test)`);
    return engine;
  };
}
