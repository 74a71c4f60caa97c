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
  type ConvBNConfig, type ConvBNConfigInput, type Mode, type PaddingInput, type PaddingMode,
} from '../../codegen/config.js';
import { PERSISTENT_ROLES, roleElements, STEP_ROLES } from '../../codegen/plans.js';
import type { BufferLimits } from '../../runtime/webgpu/limits.js';
import { withBatch } from '../../runtime/webgpu/split.js';
import { paddedSources } from '../../runtime/padding-mode.js';
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
  /** Draw PyTorch's padding modes too (reflect, replicate, circular; zeros half the time). */
  paddingModes?: boolean;
  /** Draw NHWC tensors too (NCHW two times in three). */
  layouts?: boolean;
}

const paddingModeArb = fc.oneof(
  { arbitrary: fc.constant('zeros' as const), weight: 3 },
  { arbitrary: fc.constantFrom('reflect' as const, 'replicate' as const, 'circular' as const), weight: 3 },
);

const layoutArb = fc.oneof(
  { arbitrary: fc.constant('NCHW' as const), weight: 2 },
  { arbitrary: fc.constant('NHWC' as const), weight: 1 },
);

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
    paddingMode: space.paddingModes ? paddingModeArb : fc.constant('zeros' as const),
    layout: space.layouts ? layoutArb : fc.constant('NCHW' as const),
  }).chain((r) => paddingArb(r.kernel[0], r.kernel[1], r.dilation[0], r.dilation[1]).map((padding): ConvBNConfigInput => ({
    N: r.N, ...r.channels, H: r.H, W: r.W, kernel: r.kernel, stride: r.stride, dilation: r.dilation, padding,
    bias: r.bias, eps: r.eps, momentum: r.momentum, ...(r.paddingMode === 'zeros' ? {} : { paddingMode: r.paddingMode }),
    ...(r.layout === 'NCHW' ? {} : { layout: r.layout }),
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

/** Limits that fit one image of a chunk of 1/parts of the output channels (groups 1) or groups: one image is over them. */
export function channelLimitFor(config: ConvBNConfig, parts: number): BufferLimits {
  const one = normalizeConfig({ ...toInput(config), N: 1 });
  const fixed = Math.max(...PERSISTENT_ROLES.map((r) => roleElements(r, config) * 4));
  const units = config.groups === 1 ? config.Cout / parts : config.groups / parts;
  const chunkOne = normalizeConfig(config.groups === 1 ? { ...toInput(one), Cout: units }
    : { ...toInput(one), Cin: units * (config.Cin / config.groups), Cout: units * (config.Cout / config.groups), groups: units });
  const perChunk = Math.max(...STEP_ROLES.map((r) => roleElements(r, chunkOne) * 4));
  const bytes = Math.max(16, fixed, perChunk);
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



/**
 * Cases excused from the 1e-4 metric (counted and printed apart by the property tests, not failed).
 * The zero-padding train-mode shapes whose gradients are small residues of cancelling terms (one live
 * weight per output channel, one live input value per group, a constant channel, two values per
 * channel) have exact forms in both backends (templates/train_wgrad_scalar.wgsl, bn_grad_apply.wgsl,
 * shifted bn_stats; float64 statistics in WASM; runtime/scalar-input.ts) and are held to it.
 * One limit remains, from PyTorch's padding modes (runtime/padding-mode.ts pads x and runs the zero-padding
 * layer, which cannot tell a copy from its original): where the padding makes output positions or taps read
 * copies of the same values, train's gradients can be exactly zero or eps-sized rests of cancelling terms,
 * which float32 leaves as rounding (PyTorch in float32 sums the same terms). Three shapes of it:
 * the batch reads at most two distinct input patterns, so a channel takes one or two values (a constant
 * channel: gradients of x and W exactly zero; two values: eps-sized, as bn_grad_apply's PAIR form knows
 * for a batch of two); or, with one input channel per group, every output position reads one input value
 * through all its taps, so the weights act as one (eps-sized, as for one live weight); or a group's whole
 * batch reads at most three input values (copies of them everywhere else), so that BN's invariance to
 * their shift and scale leaves the gradient of those values a rest of cancelling terms (found by fuzzing:
 * errors of 1e-4 to 2e-3 in grad_x).
 */
export function knownLimit(c: ConvBNConfig, mode: Mode, _backend: BackendName): string | undefined {
  if (mode !== 'train' || c.paddingMode === 'zeros') return undefined;
  const out = outputShape(c);
  const patterns = (size: number, before: number, after: number, n: number, k: number, stride: number, dilation: number): number[][] => {
    const sources = paddedSources(size, before, after, c.paddingMode as Exclude<PaddingMode, 'zeros'>);
    return Array.from({ length: n }, (_, o) => Array.from({ length: k }, (_, t) => sources[o * stride + t * dilation]));
  };
  const rows = patterns(c.H, c.padTop, c.padBottom, out.H, c.kH, c.strideH, c.dilationH);
  const cols = patterns(c.W, c.padLeft, c.padRight, out.W, c.kW, c.strideW, c.dilationW);
  const distinct = (ps: number[][]): number => new Set(ps.map((p) => p.join(','))).size;
  if (c.N * distinct(rows) * distinct(cols) <= 2) return `${c.paddingMode} padding: the batch reads at most two distinct input patterns`;
  const single = (ps: number[][]): boolean => ps.every((p) => new Set(p).size === 1);
  if (c.Cin === c.groups && single(rows) && single(cols)) return `${c.paddingMode} padding: every output position reads one input value`;
  const values = (ps: number[][]): number => new Set(ps.flat()).size;
  if (c.N * (c.Cin / c.groups) * values(rows) * values(cols) <= 3) return `${c.paddingMode} padding: a group's batch reads at most three input values`;
  return undefined;
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
  const config = toInput(normalizeConfig(spec.config));
  const replay = JSON.stringify({ config, seed: spec.seed, mode: spec.mode, recompute: spec.recompute ?? false });
  return `npm run fuzz -- --backend ${backend} --replay '${replay}'`;
}

export function describeResult(r: CaseResult): string {
  const what = r.failure !== undefined
    ? `threw: ${r.failure.split('\n')[0]}`
    : `${r.worstTensor} relative error ${r.worstError.toExponential(3)} > ${TOLERANCE}`;
  return `FAIL${r.knownLimit ? ` (known limit: ${r.knownLimit})` : ''} ${r.backend} ${r.spec.mode}${r.spec.recompute ? ' (recompute)' : ''}: ${what}\n  rerun: ${replayCommand(r.spec, r.backend)}`;
}
