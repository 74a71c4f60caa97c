/**
 * Concurrency: several layers (plain and batch-split) and several steps
 * issued at once from async code (Promise.all, calls queued without awaiting,
 * inputs reused by the caller right after the call) give bit-for-bit the
 * results of running the same work serially.
 */
import { describe, expect, test } from 'vitest';
import { normalizeConfig, type ConvBNConfigInput, type Mode } from '../../codegen/config.js';
import type { BackendName, ConvBNGrads, Engine } from '../../runtime/types.js';
import { createWebGPUEngine } from '../../runtime/webgpu/engine.js';
import type { WebGPULayer } from '../../runtime/webgpu/layer.js';
import { ChannelSplitLayer } from '../../runtime/webgpu/channel-split.js';
import { backendsUnderTest, caseInputs, channelLimitFor, judge, limitFor, openEngine, reference } from './harness.js';

const WORK: { config: ConvBNConfigInput; mode: Mode; recompute?: boolean }[] = [
  { config: { N: 2, Cin: 3, Cout: 4, H: 6, W: 5, kernel: 3, padding: 1 }, mode: 'train' },
  { config: { N: 3, Cin: 4, Cout: 4, H: 5, W: 5, kernel: 3, groups: 4, stride: 2, padding: [1, 0, 0, 1] }, mode: 'eval' },
  { config: { N: 2, Cin: 2, Cout: 6, H: 7, W: 4, kernel: [2, 3], dilation: [2, 1], groups: 2 }, mode: 'tune' },
  { config: { N: 1, Cin: 3, Cout: 2, H: 5, W: 6, kernel: 1, bias: false }, mode: 'deploy' },
  { config: { N: 4, Cin: 2, Cout: 3, H: 5, W: 5, kernel: 3, padding: 1 }, mode: 'train', recompute: true },
];
const STEPS = 3;

type Trace = (Float32Array | ConvBNGrads | Record<string, unknown>)[];

/** Each layer's steps, awaited one by one (the serial baseline). */
async function serial(engine: Engine, work = WORK): Promise<Trace[]> {
  const traces: Trace[] = [];
  for (const [i, w] of work.entries()) {
    const config = normalizeConfig(w.config);
    const data = caseInputs(config, 100 + i);
    const layer = engine.createLayer(config, data.params, { recompute: w.recompute ?? false });
    const trace: Trace = [];
    for (let s = 0; s < STEPS; s++) {
      trace.push(await layer.forward(data.x, w.mode));
      trace.push(await layer.backward(data.gradY));
    }
    trace.push({ ...(await layer.getParameters()) });
    traces.push(trace);
    layer.destroy();
  }
  return traces;
}

/** The same work with every call of every layer issued before any is awaited, inputs clobbered after each call. */
async function concurrent(engine: Engine, work = WORK): Promise<Trace[]> {
  return Promise.all(work.map(async (w, i) => {
    const config = normalizeConfig(w.config);
    const data = caseInputs(config, 100 + i);
    const layer = engine.createLayer(config, data.params, { recompute: w.recompute ?? false });
    const calls: Promise<Trace[number]>[] = [];
    for (let s = 0; s < STEPS; s++) {
      const x = data.x.slice();
      const gradY = data.gradY.slice();
      calls.push(layer.forward(x, w.mode));
      calls.push(layer.backward(gradY));
      // The caller may reuse its arrays as soon as the calls return.
      x.fill(Number.NaN);
      gradY.fill(Number.NaN);
    }
    calls.push(layer.getParameters().then((p) => ({ ...p })));
    const trace = await Promise.all(calls);
    layer.destroy();
    return trace;
  }));
}

for (const backend of backendsUnderTest()) {
  describe(`${backend}: concurrent calls equal serial ones`, () => {
    test(`${WORK.length} layers x ${STEPS} steps, all in flight at once`, async () => {
      const engine = await openEngine(backend as BackendName);
      const a = await serial(engine);
      const b = await concurrent(engine);
      const c = await concurrent(engine);
      expect(b).toEqual(a);
      expect(c).toEqual(a);
      // And the first step of each is right.
      for (const [i, w] of WORK.entries()) {
        const config = normalizeConfig(w.config);
        const expected = reference(config, caseInputs(config, 100 + i), w.mode);
        expect(judge({ y: a[i][0] as Float32Array }, { y: expected.y }).pass).toBe(true);
      }
      expect((engine as { uncapturedErrors?: string[] }).uncapturedErrors ?? []).toEqual([]);
      engine.destroy();
    }, 60_000);
  });
}

describe('webgpu: concurrent calls on batch-split layers equal serial ones', () => {
  test('split layers interleave their submissions with other layers', async () => {
    // Fits one image of every layer: the layers with N > 1 are split.
    const bytes = Math.max(...WORK.map((w) => limitFor(normalizeConfig(w.config), 1).maxBufferSize));
    const engine = await createWebGPUEngine({ limits: { maxStorageBufferBindingSize: bytes, maxBufferSize: bytes } });
    const split = WORK.filter((w) => (engine.createLayer(w.config) as WebGPULayer).chunkSizes(w.mode, { recompute: w.recompute }).length > 1);
    expect(split.length).toBeGreaterThanOrEqual(2);
    const a = await serial(engine);
    const b = await concurrent(engine);
    expect(b).toEqual(a);
    expect(engine.uncapturedErrors).toEqual([]);
    engine.destroy();
  }, 60_000);
});

describe('webgpu: concurrent calls on channel-split layers equal serial ones', () => {
  test('layers split along output channels and along groups, in flight with a plain one', async () => {
    // One image of the first two layers is over the limit: they split into channel (groups) chunks, each
    // split along the batch too; the third fits.
    const work: typeof WORK = [
      { config: { N: 2, Cin: 2, Cout: 6, H: 6, W: 5, kernel: 3, padding: 1 }, mode: 'train' },
      { config: { N: 2, Cin: 4, Cout: 4, H: 6, W: 5, kernel: 3, padding: 1, groups: 2 }, mode: 'tune' },
      { config: { N: 1, Cin: 2, Cout: 2, H: 3, W: 3, kernel: 1 }, mode: 'eval' },
    ];
    const limits = channelLimitFor(normalizeConfig(work[0].config), 3);
    const engine = await createWebGPUEngine({ limits });
    const kinds = work.map((w) => {
      const probe = engine.createLayer(w.config);
      const split = probe instanceof ChannelSplitLayer;
      probe.destroy();
      return split;
    });
    expect(kinds).toEqual([true, true, false]);
    const a = await serial(engine, work);
    const b = await concurrent(engine, work);
    expect(b).toEqual(a);
    for (const [i, w] of work.entries()) {
      const config = normalizeConfig(w.config);
      const expected = reference(config, caseInputs(config, 100 + i), w.mode);
      expect(judge({ y: a[i][0] as Float32Array }, { y: expected.y }).pass).toBe(true);
    }
    expect(engine.uncapturedErrors).toEqual([]);
    engine.destroy();
  }, 60_000);
});
