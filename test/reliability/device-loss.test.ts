/**
 * Device loss: when the GPU device goes away in the middle of a call
 * (device.destroy() right after a submit), that call rejects with a
 * DeviceLostError; the engine then acquires a new device, the layers
 * re-upload their parameters from their host copies (running stats
 * included), and the next step matches the oracle. When no adapter comes
 * back, the layers continue on WASM.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { normalizeConfig, toInput, type ConvBNConfig, type Mode } from '../../codegen/config.js';
import type { ConvBNLayer, ConvBNParams } from '../../runtime/types.js';
import { acquireDevice, NoWebGPUError } from '../../runtime/webgpu/device.js';
import { createWebGPUEngine, type WebGPUEngine } from '../../runtime/webgpu/engine.js';
import { DeviceLostError } from '../../runtime/webgpu/lost.js';
import type { WebGPULayer } from '../../runtime/webgpu/layer.js';
import { ChannelSplitLayer } from '../../runtime/webgpu/channel-split.js';
import { backendsUnderTest, caseInputs, channelLimitFor, judge, limitFor, produceOn, reference, type CaseInputs } from './harness.js';

const tally = { faults: 0, recovered: 0, fellBack: 0 };

/** Destroys the engine's current device right after its `nth` queue submission from now (1 = the next). */
function loseDeviceAfterSubmit(engine: WebGPUEngine, nth = 1): void {
  const device = engine.device;
  const queue = device.queue;
  const submit = queue.submit.bind(queue);
  let count = 0;
  queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
    submit(buffers);
    if (++count === nth) {
      tally.faults++;
      device.destroy();
    }
  };
}

/** Rejects within 20 s or fails the test: a lost device must never leave a call hanging. */
async function settles<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('hung for 20 s')), 20_000); });
  try {
    return { value: await Promise.race([p, timeout]) };
  } catch (error) {
    if (error instanceof Error && error.message === 'hung for 20 s') throw error;
    return { error };
  } finally {
    clearTimeout(timer);
  }
}

function expectLost(error: unknown, during: string): void {
  expect(error).toBeInstanceOf(DeviceLostError);
  expect((error as DeviceLostError).during).toBe(during);
  expect((error as Error).message).toMatch(/device was lost/);
}

/** The step a layer must now compute: the oracle from the layer's current (host) parameters. */
async function expectCorrectStep(layer: ConvBNLayer, config: ConvBNConfig, data: CaseInputs, mode: Mode, params: ConvBNParams): Promise<void> {
  const inputs = { ...data, params };
  const j = judge(await produceOn(layer, inputs, mode), reference(config, inputs, mode));
  expect(j.pass, `${mode} after recovery: ${JSON.stringify(j.errors)}`).toBe(true);
}

const config = normalizeConfig({ N: 2, Cin: 3, Cout: 4, H: 6, W: 5, kernel: 3, stride: [1, 2], padding: [1, 0, 1, 1], momentum: 0.2 });
const data = caseInputs(config, 77);

describe('webgpu: the device is lost mid-call', () => {
  const engines: WebGPUEngine[] = [];
  afterAll(() => {
    for (const e of engines) {
      expect(e.uncapturedErrors).toEqual([]);
      e.destroy();
      expect(e.counters()).toMatchObject({ liveBuffers: 0, allocatedBuffers: 0 });
    }
    console.log(`[reliability] device loss: ${tally.faults} faults injected, ${tally.recovered} recoveries checked, ${tally.fellBack} WASM fallbacks`);
  });
  async function engine(options = {}): Promise<WebGPUEngine> {
    const e = await createWebGPUEngine(options);
    engines.push(e);
    return e;
  }

  test.each(['train', 'eval', 'tune', 'deploy'] as const)('during %s forward, then during backward: each call rejects, the next step is right', async (mode) => {
    const e = await engine();
    const layer = e.createLayer(config, data.params);
    // Two good train steps first, so the running stats the host keeps have moved.
    for (let i = 0; i < 2; i++) {
      await layer.forward(data.x, 'train');
      await layer.backward(data.gradY);
    }
    const before = await layer.getParameters();
    const first = e.device;

    loseDeviceAfterSubmit(e);
    expectLost((await settles(layer.forward(data.x, mode))).error, 'forward');
    // The failed call changed nothing: the parameters are those from before it.
    expect(await layer.getParameters()).toEqual(before);
    expect(e.device).not.toBe(first);
    await expectCorrectStep(layer, config, data, mode, before);
    tally.recovered++;

    const now = await layer.getParameters();
    await layer.forward(data.x, mode);
    loseDeviceAfterSubmit(e);
    expectLost((await settles(layer.backward(data.gradY))).error, 'backward');
    await expectCorrectStep(layer, config, data, mode, mode === 'train' ? await layer.getParameters() : now);
    tally.recovered++;
    expect(e.deviceLosses).toBe(2);
    layer.destroy();
  }, 60_000);

  test('between forward and backward: backward says the saved tensors are gone; forward again works', async () => {
    const e = await engine();
    const layer = e.createLayer(config, data.params);
    await layer.forward(data.x, 'eval');
    tally.faults++;
    e.device.destroy();
    const { error } = await settles(layer.backward(data.gradY));
    expectLost(error, 'backward');
    expect((error as Error).message).toMatch(/run forward again/);
    await expectCorrectStep(layer, config, data, 'eval', data.params);
    tally.recovered++;
  });

  test('parameters set while the device is lost reach the new device; so do folded ones', async () => {
    const e = await engine();
    const layer = e.createLayer(config, data.params);
    await layer.forward(data.x, 'eval');
    tally.faults++;
    e.device.destroy();
    await new Promise((r) => setTimeout(r, 10));
    const other = caseInputs(config, 78).params;
    layer.setParameters(other);
    await expectCorrectStep(layer, config, data, 'eval', other);
    const folded = await layer.getFoldedParameters();
    const scaled = { weight: folded.weight.map((v) => v * 0.5), bias: folded.bias.map((v) => v + 1) };
    layer.setFoldedParameters(scaled);
    tally.faults++;
    e.device.destroy();
    const y = await layer.forward(data.x, 'deploy');
    layer.setFoldedParameters(scaled);
    expect(y).toEqual(await layer.forward(data.x, 'deploy'));
    tally.recovered += 2;
  });

  test('split train forward: the device goes between its two submissions', async () => {
    const big = normalizeConfig({ ...toInput(config), N: 4 });
    const inputs = caseInputs(big, 5);
    const e = await engine({ limits: limitFor(big, 1) });
    const layer = e.createLayer(big, inputs.params) as WebGPULayer;
    expect(layer.chunkSizes('train').length).toBeGreaterThan(1);
    loseDeviceAfterSubmit(e, 1);
    expectLost((await settles(layer.forward(inputs.x, 'train'))).error, 'forward');
    expect(await layer.getParameters()).toEqual({ ...inputs.params, bias: inputs.params.bias });
    await expectCorrectStep(layer, big, inputs, 'train', inputs.params);
    tally.recovered++;
  });

  // One image over the limit: the layer is split along output channels, each chunk along the batch.
  const wide = normalizeConfig({ N: 2, Cin: 2, Cout: 6, H: 6, W: 5, kernel: 3, padding: 1, momentum: 0.3 });
  const wideData = caseInputs(wide, 79);

  test('a channel-split layer: the device goes during its train forward, then its backward; each rejects, the next step is right', async () => {
    const e = await engine({ limits: channelLimitFor(wide, 3) });
    const layer = e.createLayer(wide, wideData.params);
    expect(layer).toBeInstanceOf(ChannelSplitLayer);
    await layer.forward(wideData.x, 'train');
    await layer.backward(wideData.gradY);
    const before = await layer.getParameters();
    // The second submission: some chunks have run, others not, when the device goes.
    loseDeviceAfterSubmit(e, 2);
    expectLost((await settles(layer.forward(wideData.x, 'train'))).error, 'forward');
    expect(await layer.getParameters()).toEqual(before);
    await expectCorrectStep(layer, wide, wideData, 'train', before);
    tally.recovered++;
    const now = await layer.getParameters();
    await layer.forward(wideData.x, 'tune');
    loseDeviceAfterSubmit(e, 2);
    expectLost((await settles(layer.backward(wideData.gradY))).error, 'backward');
    await expectCorrectStep(layer, wide, wideData, 'tune', now);
    tally.recovered++;
  }, 60_000);

  test('several layers in flight when the device goes: all reject, all recover', async () => {
    const e = await engine();
    const layers = [0, 1, 2].map(() => e.createLayer(config, data.params));
    const calls = layers.map((l) => settles(l.forward(data.x, 'train')));
    loseDeviceAfterSubmit(e);
    const outcomes = await Promise.all(calls);
    // Calls submitted before the loss may finish; none may hang or fail any other way.
    for (const o of outcomes) if (o.error !== undefined) expectLost(o.error, 'forward');
    expect(outcomes.some((o) => o.error !== undefined)).toBe(true);
    for (const l of layers) await expectCorrectStep(l, config, data, 'eval', await l.getParameters());
    tally.recovered += layers.length;
    expect(e.deviceLosses).toBe(1);
  });

  const wasmAvailable = backendsUnderTest().includes('wasm');

  /**
   * An engine whose adapter does not come back after a loss, a layer of `c` on it trained one step, then the
   * device lost during the next train forward: that call rejects, and the step after it is right (on WASM).
   */
  async function fallBackAfterTrainStep(options: object, c: ConvBNConfig, inputs: CaseInputs): Promise<{ e: WebGPUEngine; layer: ConvBNLayer }> {
    let acquisitions = 0;
    const e = await engine({
      ...options,
      acquire: async () => {
        if (acquisitions++ === 0) return acquireDevice();
        throw new NoWebGPUError('injected: the adapter did not come back');
      },
    });
    const layer = e.createLayer(c, inputs.params);
    await layer.forward(inputs.x, 'train');
    await layer.backward(inputs.gradY);
    const trained = await layer.getParameters();
    loseDeviceAfterSubmit(e);
    expectLost((await settles(layer.forward(inputs.x, 'train'))).error, 'forward');
    await expectCorrectStep(layer, c, inputs, 'train', trained);
    return { e, layer };
  }
  test.runIf(wasmAvailable)('no adapter comes back: the layers fall back to WASM with their parameters, results still right', async () => {
    const { e, layer } = await fallBackAfterTrainStep({}, config, data);
    expect(layer.backend).toBe('wasm');
    expect(e.backend).toBe('wasm');
    expect(e.description).toMatch(/fallback/);
    // New layers on the engine run on WASM too.
    const fresh = e.createLayer(config, data.params);
    await expectCorrectStep(fresh, config, data, 'deploy', data.params);
    tally.fellBack++;
  });

  test.runIf(wasmAvailable)('no adapter comes back: a channel-split layer falls back to WASM with its trained parameters', async () => {
    const { layer } = await fallBackAfterTrainStep({ limits: channelLimitFor(wide, 3) }, wide, wideData);
    expect(layer).toBeInstanceOf(ChannelSplitLayer);
    expect(layer.backend).toBe('wasm');
    await expectCorrectStep(layer, wide, wideData, 'eval', await layer.getParameters());
    tally.fellBack++;
  });
});
