/**
 * The WebGPU backend (Dawn in Node; on a machine with no GPU, OpenGL ES on
 * Mesa llvmpipe) against the shared conformance suite, plus what only a GPU
 * backend has: device limits and uncaptured validation errors.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { ConvBNInputError } from '../codegen/errors.js';
import { webgpuEngineOrSkip } from './helpers/backends.js';
import { backendConformance } from './conformance/suite.js';

const engine = await webgpuEngineOrSkip();

describe.skipIf(!engine)('webgpu', () => {
  afterAll(() => engine?.destroy());

  backendConformance('webgpu', () => engine);

  test('a layer over the device buffer limits is refused naming the limit, before any GPU work', () => {
    const limit = engine!.device.limits.maxStorageBufferBindingSize;
    const side = Math.ceil(Math.sqrt(limit / 4 / 64)) + 1; // x = 1*64*side^2 floats > limit bytes
    let thrown: unknown;
    try {
      engine!.createLayer({ N: 1, Cin: 64, Cout: 1, H: side, W: side, kernel: 1 });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ConvBNInputError);
    expect((thrown as Error).message).toMatch(/maxStorageBufferBindingSize|maxBufferSize/);
    expect(engine!.uncapturedErrors).toEqual([]);
  });

  test('buffers are returned to the pool after each step', async () => {
    const layer = engine!.createLayer({ N: 2, Cin: 3, Cout: 4, H: 6, W: 6, kernel: 3, padding: 1 }, {
      weight: new Float32Array(4 * 3 * 9).fill(0.1), bias: new Float32Array(4), gamma: new Float32Array(4).fill(1),
      beta: new Float32Array(4), runningMean: new Float32Array(4), runningVar: new Float32Array(4).fill(1),
    });
    const x = new Float32Array(2 * 3 * 36).fill(1);
    const gy = new Float32Array(2 * 4 * 36).fill(1);
    await layer.forward(x, 'eval');
    await layer.backward(gy);
    const before = engine!.counters();
    for (let i = 0; i < 5; i++) {
      await layer.forward(x, 'eval');
      await layer.backward(gy);
    }
    const after = engine!.counters();
    expect(after.allocatedBuffers).toBe(before.allocatedBuffers);
    expect(after.liveBuffers).toBe(before.liveBuffers);
    layer.destroy();
    expect(engine!.counters().liveBuffers).toBe(before.liveBuffers - 2);
  });
});
