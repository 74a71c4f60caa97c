/**
 * Any batch size: a layer whose tensors exceed the device's buffer limits is
 * split along the batch and gives the same numbers (the oracle's, and the
 * unsplit layer's); what cannot be split is refused with an error naming the
 * limit. Small artificial limits (engine option `limits`) stand in for a
 * large batch on a real device.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MODES, normalizeConfig, tensorSizes, toInput, type ConvBNConfigInput, type Mode } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import { TOLERANCE } from '../../runtime/check/compare.js';
import { createWebGPUEngine, type WebGPUEngine } from '../../runtime/webgpu/engine.js';
import type { BufferLimits } from '../../runtime/webgpu/limits.js';
import type { WebGPULayer } from '../../runtime/webgpu/layer.js';
import { ChannelSplitLayer } from '../../runtime/webgpu/channel-split.js';
import { caseInputs, channelLimitFor, configArb, judge, limitFor, produce, reference } from './harness.js';
import { hasScalarWeights, planFor } from '../../codegen/plans.js';
import { unsplittableStep } from '../../runtime/webgpu/split.js';

const tally = { layers: 0, cases: 0, chunks: 0 };

describe('webgpu: layers over the buffer limits are split along the batch', () => {
  let whole: WebGPUEngine;
  const engines: WebGPUEngine[] = [];
  beforeAll(async () => {
    whole = await createWebGPUEngine();
  });
  afterAll(() => {
    for (const e of [whole, ...engines]) {
      expect(e.uncapturedErrors).toEqual([]);
      e.destroy();
      expect(e.counters()).toMatchObject({ liveBuffers: 0, allocatedBuffers: 0 });
    }
    console.log(`[reliability] batch split: ${tally.layers} split layers, ${tally.cases} cases, ${tally.chunks} chunks in all`);
  });

  async function splitEngine(limits: BufferLimits): Promise<WebGPUEngine> {
    const e = await createWebGPUEngine({ limits });
    engines.push(e);
    return e;
  }

  async function checkSplit(input: ConvBNConfigInput, images: number, seed: number, modes: readonly Mode[] = MODES): Promise<void> {
    const config = normalizeConfig(input);
    const engine = await splitEngine(limitFor(config, images));
    const probe = engine.createLayer(config) as WebGPULayer;
    tally.layers++;
    const inputs = caseInputs(config, seed);
    for (const mode of modes) {
      for (const recompute of mode === 'train' ? [false, true] : [false]) {
        const chunks = probe.chunkSizes(mode, { recompute });
        expect(chunks.length, `${mode}: the limit must force a split`).toBeGreaterThan(1);
        tally.chunks += chunks.length;
        const label = `${JSON.stringify(toInput(config))} ${mode}${recompute ? ' recompute' : ''}, chunks of ${chunks.join('+')} images`;
        const split = await produce(engine, config, inputs, mode, recompute);
        const unsplit = await produce(whole, config, inputs, mode, recompute);
        const expected = reference(config, inputs, mode);
        tally.cases++;
        const j = judge(split, expected);
        expect(j.pass, `${label}: ${JSON.stringify(j.errors)}`).toBe(true);
        // Same numbers as the unsplit layer: per-image outputs bit for bit outside train
        // (the same kernels see the same images); sums over the batch (added in another
        // order) and train's statistics within the float32 tolerance.
        for (const [name, a] of Object.entries(unsplit)) {
          const b = split[name];
          expect(b, `${label}: ${name}`).toBeDefined();
          if (mode !== 'train' && (name === 'y' || name === 'grad_x')) expect(b, `${label}: ${name}`).toEqual(a);
          else expect(judge({ t: b }, { t: Float64Array.from(a) }).worstError, `${label}: ${name} vs unsplit`).toBeLessThanOrEqual(TOLERANCE);
        }
      }
    }
  }

  test.each([
    ['3x3 pad 1, 7 images in chunks of 2', { N: 7, Cin: 3, Cout: 4, H: 6, W: 5, kernel: 3, padding: 1 }, 2],
    ['stride 2, groups 2, 5 images one per chunk', { N: 5, Cin: 4, Cout: 2, H: 7, W: 6, kernel: [3, 2], stride: 2, groups: 2, padding: [1, 0, 0, 1] }, 1],
    ['depthwise multiplier 2, dilation 2, 6 images in chunks of 4 and 2... evened to 3 + 3', { N: 6, Cin: 2, Cout: 4, H: 6, W: 7, kernel: 3, dilation: 2, groups: 2, padding: 2, bias: false }, 4],
    // One weight per output channel: train's weight gradient is train_wgrad_scalar's closed form, whose chunks
    // centre dy by the batch's mean (see the template) and add up.
    ['1x1 conv with Cin 1', { N: 5, Cin: 1, Cout: 3, H: 4, W: 4, kernel: 1 }, 2],
    ['1x1 conv, groups 2, one input channel each', { N: 6, Cin: 2, Cout: 4, H: 4, W: 4, kernel: 1, groups: 2 }, 2],
    ['1x3 kernel whose one live tap is the centre, 9 images', { N: 9, Cin: 1, Cout: 2, H: 1, W: 1, kernel: [1, 3], padding: [0, 1] }, 2],
    // Chunks of one or two values per channel: bn_stats over one value, and bn_grad_apply's exact form for a
    // batch of two values (PAIR) set from the whole batch, not from the chunk.
    ['1x1 output, 5 images in chunks of 2 and 1 (two values per channel per chunk)', { N: 5, Cin: 2, Cout: 3, H: 3, W: 3, kernel: 3 }, 2],
    ['1x2 output, 3 images one per chunk', { N: 3, Cin: 2, Cout: 3, H: 3, W: 4, kernel: 3 }, 1],
    ['1x1 output, 2 images one per chunk (the batch has two values per channel)', { N: 2, Cin: 3, Cout: 2, H: 2, W: 2, kernel: 2 }, 1],
  ] as const)('%s', async (_name, config, images) => {
    await checkSplit(config, images, 9);
  }, 120_000);

  test('random configs with 4 to 6 images, split in chunks of 1 to 3 images', async () => {
    const arb = fc.tuple(
      configArb({ maxElements: 500, maxSpatial: 7, maxBatch: 1 }),
      fc.integer({ min: 4, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.nat(),
    ).filter(([, N, images]) => N > images);
    await fc.assert(fc.asyncProperty(arb, async ([c, N, images, seed]) => {
      await checkSplit({ ...c, N }, images, seed);
    }), { seed: 4242, numRuns: 5 });
  }, 180_000);

  test('train across chunks keeps the running stats of the whole batch, step after step', async () => {
    const config = normalizeConfig({ N: 6, Cin: 2, Cout: 3, H: 5, W: 5, kernel: 3, padding: 1, momentum: 0.3 });
    const engine = await splitEngine(limitFor(config, 2));
    const inputs = caseInputs(config, 3);
    const split = engine.createLayer(config, inputs.params);
    const unsplit = whole.createLayer(config, inputs.params);
    for (let step = 0; step < 3; step++) {
      await split.forward(inputs.x, 'train');
      await unsplit.forward(inputs.x, 'train');
    }
    const a = await split.getParameters();
    const b = await unsplit.getParameters();
    expect(judge({ m: a.runningMean, v: a.runningVar }, { m: Float64Array.from(b.runningMean), v: Float64Array.from(b.runningVar) }).worstError)
      .toBeLessThan(1e-6);
    // Eval after split training uses those stats on the device too.
    expect(judge({ y: await split.forward(inputs.x, 'eval') }, { y: Float64Array.from(await unsplit.forward(inputs.x, 'eval')) }).worstError)
      .toBeLessThan(1e-6);
    split.destroy();
    unsplit.destroy();
  }, 60_000);

  test('train with one weight per output channel splits: its weight gradient across chunks far apart in x', async () => {
    // Chunks whose inputs have different means: each chunk centres P on its own mean, and only the term
    // mean(P) * sum(dy - mean(dy)) carries the difference to the batch's centring.
    const config = normalizeConfig({ N: 6, Cin: 2, Cout: 4, H: 4, W: 4, kernel: 1, groups: 2 });
    const engine = await splitEngine(limitFor(config, 2));
    const inputs = caseInputs(config, 1);
    const perImage = tensorSizes(config).x / config.N;
    const x = Float32Array.from(inputs.x, (v, i) => v + 3 * Math.floor(i / perImage));
    const shifted = { ...inputs, x };
    const layer = engine.createLayer(config, inputs.params) as WebGPULayer;
    expect(hasScalarWeights(config)).toBe(true);
    expect(layer.chunkSizes('train')).toEqual([2, 2, 2]);
    const split = await produce(engine, config, shifted, 'train', false);
    const j = judge(split, reference(config, shifted, 'train'));
    expect(j.pass, JSON.stringify(j.errors)).toBe(true);
    // Without the cross-chunk term the chunks' sums miss sum_k m_k sum_chunk(dy - mean dy): far over the tolerance.
    const unsplit = await produce(whole, config, shifted, 'train', false);
    expect(judge({ w: split.grad_weight }, { w: Float64Array.from(unsplit.grad_weight) }).worstError).toBeLessThanOrEqual(TOLERANCE);
    layer.destroy();
  });

  test('a plan step with no chunked form is found (the guard that refuses such a split)', () => {
    const config = normalizeConfig({ N: 6, Cin: 2, Cout: 4, H: 4, W: 4, kernel: 1, groups: 2 });
    const plan = planFor('train', config, { recompute: false });
    expect(unsplittableStep(plan)).toBeUndefined();
    expect(plan.backward.some((s) => s.variant.kind === 'train_wgrad_scalar')).toBe(true);
    // A second batch reduction in a pass, or one the host does not combine in that pass, cannot run chunk by chunk.
    const reduce = plan.backward.find((s) => s.variant.kind === 'bn_grad_reduce')!;
    const again = { ...reduce };
    expect(unsplittableStep({ ...plan, backward: [...plan.backward, again] })).toBe(again);
    const stats = plan.forward.find((s) => s.variant.kind === 'bn_stats' || s.variant.kind === 'bn_stats_tiles')!;
    expect(unsplittableStep({ ...plan, backward: [stats, ...plan.backward] })).toBe(stats);
  });

  test('x of one image over the limit (groups 1: no channel split helps), or parameters over it: refused at createLayer, naming the limit', async () => {
    const config = normalizeConfig({ N: 4, Cin: 5, Cout: 2, H: 8, W: 8, kernel: 3, padding: 1 });
    const engine = await splitEngine({ maxStorageBufferBindingSize: 1024, maxBufferSize: 4096 });
    const before = engine.counters();
    const e1 = (() => { try { engine.createLayer(config); } catch (e) { return e; } })() as ConvBNInputError;
    expect(e1).toBeInstanceOf(ConvBNInputError);
    expect(e1.field).toBe('x bytes of one image');
    expect(e1.message).toContain('maxStorageBufferBindingSize = 1024');
    const tiny = await splitEngine({ maxStorageBufferBindingSize: 4096, maxBufferSize: 256 });
    const big = normalizeConfig({ N: 1, Cin: 4, Cout: 4, H: 2, W: 2, kernel: 3, padding: 1 });
    const e2 = (() => { try { tiny.createLayer(big); } catch (e) { return e; } })() as ConvBNInputError;
    expect(e2.field).toBe('weight bytes');
    expect(e2.message).toContain('maxBufferSize = 256');
    expect(engine.counters()).toEqual(before);
    await expect(createWebGPUEngine({ limits: { maxBufferSize: 10 } })).rejects.toMatchObject({ field: 'limits.maxBufferSize' });
  });

  // One image over the limit: split along output channels (groups 1) or whole groups (channelLimitFor).

  async function checkChannelSplit(input: ConvBNConfigInput, parts: number, seed: number, modes: readonly Mode[]): Promise<void> {
    const config = normalizeConfig(input);
    const engine = await splitEngine(channelLimitFor(config, parts));
    const probe = engine.createLayer(config);
    expect(probe, 'one image must be over the limit').toBeInstanceOf(ChannelSplitLayer);
    const sizes = (probe as ChannelSplitLayer).channelChunkSizes();
    expect(sizes.length).toBeGreaterThanOrEqual(2);
    expect(sizes.length).toBeLessThanOrEqual(4);
    // Each channel chunk is split along the batch too (the limit fits one image of a chunk).
    expect((probe as ChannelSplitLayer).chunkSizes('eval').every((images) => images.length === config.N)).toBe(true);
    probe.destroy();
    tally.layers++;
    const inputs = caseInputs(config, seed);
    for (const mode of modes) {
      for (const recompute of mode === 'train' ? [false, true] : [false]) {
        tally.cases++;
        tally.chunks += sizes.length;
        const label = `${JSON.stringify(toInput(config))} ${mode}${recompute ? ' recompute' : ''}, channel chunks of ${sizes.join('+')}`;
        const split = await produce(engine, config, inputs, mode, recompute);
        const unsplit = await produce(whole, config, inputs, mode, recompute);
        const j = judge(split, reference(config, inputs, mode));
        expect(j.pass, `${label}: ${JSON.stringify(j.errors)}`).toBe(true);
        for (const [name, a] of Object.entries(unsplit)) {
          const b = split[name];
          expect(b, `${label}: ${name}`).toBeDefined();
          // y is per channel: the same kernels on the same image give the same numbers.
          if (mode !== 'train' && name === 'y') expect(b, `${label}: ${name}`).toEqual(a);
          else expect(judge({ t: b }, { t: Float64Array.from(a) }).worstError, `${label}: ${name} vs unsplit`).toBeLessThanOrEqual(TOLERANCE);
        }
      }
    }
  }

  test('split layers without gradX: the same parameter gradients as with it (batch and channel chunks)', async () => {
    const byBatch = normalizeConfig({ N: 5, Cin: 3, Cout: 4, H: 6, W: 5, kernel: 3, stride: 2, padding: 1 });
    const byChannel = normalizeConfig({ N: 2, Cin: 2, Cout: 6, H: 6, W: 5, kernel: 3, padding: 1 });
    const layers = [
      (await splitEngine(limitFor(byBatch, 2))).createLayer(byBatch, caseInputs(byBatch, 5).params),
      (await splitEngine(channelLimitFor(byChannel, 3))).createLayer(byChannel, caseInputs(byChannel, 6).params),
    ];
    expect(layers[1]).toBeInstanceOf(ChannelSplitLayer);
    for (const [k, layer] of layers.entries()) {
      const inputs = caseInputs(layer.config, 5 + k);
      for (const mode of MODES) {
        await layer.forward(inputs.x, mode);
        const full = await layer.backward(inputs.gradY);
        await layer.forward(inputs.x, mode);
        const weightsOnly = await layer.backward(inputs.gradY, { inputGrad: false });
        const { gradX, ...rest } = full;
        expect(gradX).toBeInstanceOf(Float32Array);
        expect('gradX' in weightsOnly, `${k} ${mode}`).toBe(false);
        expect(weightsOnly, `${k} ${mode}`).toEqual(rest);
      }
      layer.destroy();
    }
  }, 60_000);

  test.each([
    ['groups 1, 3x3 pad 1, Cout 6 in channel chunks', { N: 3, Cin: 2, Cout: 6, H: 6, W: 5, kernel: 3, padding: 1 }, 3],
    ['groups 2, stride 2, asymmetric padding', { N: 2, Cin: 4, Cout: 4, H: 7, W: 6, kernel: [3, 2], stride: 2, groups: 2, padding: [1, 0, 0, 1] }, 2],
    ['depthwise multiplier 2 over 4 groups, no bias', { N: 2, Cin: 4, Cout: 8, H: 6, W: 6, kernel: 3, padding: 1, groups: 4, bias: false }, 4],
  ] as const)('one image over the limit: %s', async (_name, config, parts) => {
    await checkChannelSplit(config, parts, 11, MODES);
  }, 120_000);
});
