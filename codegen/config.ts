/**
 * The ConvBN config model: what a caller writes (ConvBNConfigInput), the
 * validated normal form every backend and generator reads (ConvBNConfig),
 * the derived output shape, and the cache key.
 */
import { ConvBNInputError } from './errors.js';

export type Mode = 'train' | 'eval' | 'tune' | 'deploy';
export const MODES: readonly Mode[] = ['train', 'eval', 'tune', 'deploy'];

export type Pair = number | readonly [number, number];
/** Symmetric [pH, pW], explicit [top, bottom, left, right], one number for all sides, or a rule. */
export type PaddingInput = number | readonly [number, number] | readonly [number, number, number, number] | 'same' | 'valid';

/**
 * How the conv reads outside the image, as PyTorch's Conv2d `padding_mode`: zeros, or a pad of x
 * (reflect: mirrored without repeating the edge; replicate: the edge repeated; circular: wrapped)
 * followed by a conv without padding.
 */
export const PADDING_MODES = ['zeros', 'reflect', 'replicate', 'circular'] as const;
export type PaddingMode = (typeof PADDING_MODES)[number];

/**
 * Memory order of x, y and their gradients: NCHW, or NHWC (channels last: PyTorch's channels_last memory
 * format, TensorFlow's default). Weights are OIHW in both, as in PyTorch. The kernels run NCHW; an NHWC
 * layer transposes at its boundary (runtime/channels-last.ts).
 */
export const LAYOUTS = ['NCHW', 'NHWC'] as const;
export type Layout = (typeof LAYOUTS)[number];

export interface ConvBNConfigInput {
  N: number;
  Cin: number;
  Cout: number;
  H: number;
  W: number;
  kernel: Pair;
  stride?: Pair;
  padding?: PaddingInput;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  eps?: number;
  momentum?: number;
  /** Default 'NCHW'. */
  layout?: Layout;
  /** Default 'zeros'. */
  paddingMode?: PaddingMode;
}

/** Validated and normalised: every field explicit, padding resolved to four sides. */
export interface ConvBNConfig {
  readonly N: number;
  readonly Cin: number;
  readonly Cout: number;
  readonly H: number;
  readonly W: number;
  readonly kH: number;
  readonly kW: number;
  readonly strideH: number;
  readonly strideW: number;
  readonly padTop: number;
  readonly padBottom: number;
  readonly padLeft: number;
  readonly padRight: number;
  readonly dilationH: number;
  readonly dilationW: number;
  readonly groups: number;
  readonly bias: boolean;
  readonly eps: number;
  readonly momentum: number;
  readonly layout: Layout;
  /** 'zeros' when there is no padding (every mode reads the same then). */
  readonly paddingMode: PaddingMode;
}

export interface OutputShape {
  readonly N: number;
  readonly C: number;
  readonly H: number;
  readonly W: number;
}

/** Element counts of every tensor a layer holds or exchanges. */
export interface TensorSizes {
  readonly x: number;
  readonly weight: number;
  readonly y: number;
  readonly channels: number;
}

export const DEFAULT_EPS = 1e-5;
export const DEFAULT_MOMENTUM = 0.1;
/** Index math is u32/i32 in WGSL and i32 in AssemblyScript: every tensor must stay below 2^31 elements. */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
const MIN_NORMAL_F32 = 2 ** -126;
const MAX_F32 = 3.4028234663852886e38;

/** Configs made by normalizeConfig; only these pass toConfig unchecked (a frozen look-alike is re-validated). */
const normalized = new WeakSet<ConvBNConfig>();

const INPUT_FIELDS = [
  'N', 'Cin', 'Cout', 'H', 'W', 'kernel', 'stride', 'padding', 'dilation', 'groups', 'bias', 'eps', 'momentum', 'layout',
  'paddingMode',
] as const;

function positiveInt(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TENSOR_ELEMENTS) {
    throw new ConvBNInputError(field, value, `must be an integer in [1, ${MAX_TENSOR_ELEMENTS}]`);
  }
  return value;
}

function nonNegativeInt(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TENSOR_ELEMENTS) {
    throw new ConvBNInputError(field, value, `must be an integer in [0, ${MAX_TENSOR_ELEMENTS}]`);
  }
  return value;
}

/** A number, or [h, w]: both integers >= 1. */
function positivePair(field: string, value: unknown): [number, number] {
  if (typeof value === 'number') {
    const v = positiveInt(field, value);
    return [v, v];
  }
  if (Array.isArray(value) && value.length === 2) {
    return [positiveInt(`${field}[0]`, value[0]), positiveInt(`${field}[1]`, value[1])];
  }
  throw new ConvBNInputError(field, value, 'must be an integer >= 1 or a pair [h, w] of integers >= 1');
}

interface ResolvedPadding {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/** The usual 'same' split (TensorFlow/ONNX SAME_UPPER): output = ceil(in / stride), extra padding at the end. */
function samePadding(size: number, k: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

function resolvePadding(
  value: unknown, H: number, W: number, k: [number, number], s: [number, number], d: [number, number],
): ResolvedPadding {
  if (value === undefined || value === 'valid') return { top: 0, bottom: 0, left: 0, right: 0 };
  if (value === 'same') {
    const [top, bottom] = samePadding(H, k[0], s[0], d[0]);
    const [left, right] = samePadding(W, k[1], s[1], d[1]);
    return { top, bottom, left, right };
  }
  if (typeof value === 'number') {
    const p = nonNegativeInt('padding', value);
    return { top: p, bottom: p, left: p, right: p };
  }
  if (Array.isArray(value) && value.length === 2) {
    const pH = nonNegativeInt('padding[0]', value[0]);
    const pW = nonNegativeInt('padding[1]', value[1]);
    return { top: pH, bottom: pH, left: pW, right: pW };
  }
  if (Array.isArray(value) && value.length === 4) {
    return {
      top: nonNegativeInt('padding[0] (top)', value[0]),
      bottom: nonNegativeInt('padding[1] (bottom)', value[1]),
      left: nonNegativeInt('padding[2] (left)', value[2]),
      right: nonNegativeInt('padding[3] (right)', value[3]),
    };
  }
  throw new ConvBNInputError(
    'padding', value,
    "must be an integer >= 0, [pH, pW], [top, bottom, left, right] (integers >= 0), 'same' or 'valid'",
  );
}

function outputExtent(size: number, before: number, after: number, k: number, stride: number, dilation: number): number {
  return Math.floor((size + before + after - dilation * (k - 1) - 1) / stride) + 1;
}

/**
 * The padding mode, checked against the padding as PyTorch's pad checks it: a reflection reads inside
 * the image (each side < the extent), a wrap goes around at most once (each side <= the extent).
 * Without padding every mode is 'zeros'.
 */
function checkPaddingMode(mode: unknown, pad: ResolvedPadding, H: number, W: number): PaddingMode {
  if (!(PADDING_MODES as readonly unknown[]).includes(mode)) {
    throw new ConvBNInputError('paddingMode', mode, `must be one of ${PADDING_MODES.map((m) => `'${m}'`).join(', ')}`);
  }
  const m = mode as PaddingMode;
  if (pad.top + pad.bottom + pad.left + pad.right === 0) return 'zeros';
  if (m === 'reflect' || m === 'circular') {
    const limit = m === 'reflect' ? 'H - 1 and W - 1 (a reflection reads inside the image)' : 'H and W (a wrap goes around once)';
    const over = (side: number, extent: number): boolean => (m === 'reflect' ? side >= extent : side > extent);
    const sides: [string, number, number][] = [['top', pad.top, H], ['bottom', pad.bottom, H], ['left', pad.left, W], ['right', pad.right, W]];
    for (const [name, side, extent] of sides) {
      if (over(side, extent)) {
        throw new ConvBNInputError(`padding (${name})`, side,
          `must be at most ${limit} with paddingMode '${m}': here H = ${H}, W = ${W}`);
      }
    }
  }
  return m;
}

/**
 * Validates a caller's config and returns its normal form. Throws
 * ConvBNInputError naming the field, its value and what is allowed.
 */
export function normalizeConfig(input: ConvBNConfigInput): ConvBNConfig {
  if (input === null || typeof input !== 'object') {
    throw new ConvBNInputError('config', input, 'must be an object with N, Cin, Cout, H, W and kernel');
  }
  for (const key of Object.keys(input)) {
    if (!(INPUT_FIELDS as readonly string[]).includes(key)) {
      throw new ConvBNInputError(key, (input as unknown as Record<string, unknown>)[key],
        `is not a config field; allowed fields: ${INPUT_FIELDS.join(', ')}`);
    }
  }
  const N = positiveInt('N', input.N);
  const Cin = positiveInt('Cin', input.Cin);
  const Cout = positiveInt('Cout', input.Cout);
  const H = positiveInt('H', input.H);
  const W = positiveInt('W', input.W);
  const kernel = positivePair('kernel', input.kernel);
  const stride = positivePair('stride', input.stride ?? 1);
  const dilation = positivePair('dilation', input.dilation ?? 1);
  const groups = positiveInt('groups', input.groups ?? 1);
  if (Cin % groups !== 0) {
    throw new ConvBNInputError('groups', groups, `must divide Cin = ${Cin}`);
  }
  if (Cout % groups !== 0) {
    throw new ConvBNInputError('groups', groups, `must divide Cout = ${Cout}`);
  }
  const bias = input.bias ?? true;
  if (typeof bias !== 'boolean') throw new ConvBNInputError('bias', bias, 'must be true or false');
  const eps = input.eps ?? DEFAULT_EPS;
  // Kernels add eps in float32: below the smallest normal float32 it would vanish or lose its digits.
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < MIN_NORMAL_F32 || eps > MAX_F32) {
    throw new ConvBNInputError('eps', eps, `must be a number in [${MIN_NORMAL_F32}, ${MAX_F32}] (a normal float32 > 0)`);
  }
  const momentum = input.momentum ?? DEFAULT_MOMENTUM;
  if (typeof momentum !== 'number' || !Number.isFinite(momentum) || momentum < 0 || momentum > 1) {
    throw new ConvBNInputError('momentum', momentum, 'must be a number in [0, 1]');
  }
  const layout = input.layout ?? 'NCHW';
  if (!(LAYOUTS as readonly unknown[]).includes(layout)) {
    throw new ConvBNInputError('layout', layout, `must be one of ${LAYOUTS.map((l) => `'${l}'`).join(', ')}`);
  }

  const pad = resolvePadding(input.padding, H, W, kernel, stride, dilation);
  const paddingMode = checkPaddingMode(input.paddingMode ?? 'zeros', pad, H, W);
  const Hout = outputExtent(H, pad.top, pad.bottom, kernel[0], stride[0], dilation[0]);
  const Wout = outputExtent(W, pad.left, pad.right, kernel[1], stride[1], dilation[1]);
  if (Hout < 1) {
    throw new ConvBNInputError('output height', Hout,
      `must be >= 1: (H + padTop + padBottom - dilationH*(kH-1) - 1) / strideH + 1 with H = ${H}, ` +
      `padding ${pad.top}+${pad.bottom}, kernel ${kernel[0]}, dilation ${dilation[0]}; ` +
      'grow H or padding, or shrink kernel or dilation');
  }
  if (Wout < 1) {
    throw new ConvBNInputError('output width', Wout,
      `must be >= 1: (W + padLeft + padRight - dilationW*(kW-1) - 1) / strideW + 1 with W = ${W}, ` +
      `padding ${pad.left}+${pad.right}, kernel ${kernel[1]}, dilation ${dilation[1]}; ` +
      'grow W or padding, or shrink kernel or dilation');
  }
  const config: ConvBNConfig = Object.freeze({
    N, Cin, Cout, H, W,
    kH: kernel[0], kW: kernel[1],
    strideH: stride[0], strideW: stride[1],
    padTop: pad.top, padBottom: pad.bottom, padLeft: pad.left, padRight: pad.right,
    dilationH: dilation[0], dilationW: dilation[1],
    groups, bias, eps, momentum, layout, paddingMode,
  });
  const sizes = tensorSizes(config);
  for (const [name, count] of Object.entries(sizes)) {
    if (count > MAX_TENSOR_ELEMENTS) {
      throw new ConvBNInputError(`${name} elements`, count, `must be <= ${MAX_TENSOR_ELEMENTS} (32-bit index math)`);
    }
  }
  normalized.add(config);
  return config;
}

/**
 * Accepts either form. A config from normalizeConfig passes through unchanged;
 * anything else in the normalised shape is validated again via its input form.
 */
export function toConfig(input: ConvBNConfigInput | ConvBNConfig): ConvBNConfig {
  if (input !== null && typeof input === 'object') {
    if (normalized.has(input as ConvBNConfig)) return input as ConvBNConfig;
    if ('kH' in input) return normalizeConfig(toInput(input as ConvBNConfig) as ConvBNConfigInput);
  }
  return normalizeConfig(input as ConvBNConfigInput);
}

export function outputShape(c: ConvBNConfig): OutputShape {
  return {
    N: c.N,
    C: c.Cout,
    H: outputExtent(c.H, c.padTop, c.padBottom, c.kH, c.strideH, c.dilationH),
    W: outputExtent(c.W, c.padLeft, c.padRight, c.kW, c.strideW, c.dilationW),
  };
}

export function tensorSizes(c: ConvBNConfig): TensorSizes {
  const out = outputShape(c);
  return {
    x: c.N * c.Cin * c.H * c.W,
    weight: c.Cout * (c.Cin / c.groups) * c.kH * c.kW,
    y: out.N * out.C * out.H * out.W,
    channels: c.Cout,
  };
}

/** Values per output channel in a batch (N * Hout * Wout): the count train's batch statistics are over. */
export function valuesPerChannel(c: ConvBNConfig): number {
  const out = outputShape(c);
  return out.N * out.H * out.W;
}

/** Multiply-adds of one forward conv, for GFLOP/s figures (2 flops each). */
export function forwardFlops(c: ConvBNConfig): number {
  return 2 * tensorSizes(c).y * (c.Cin / c.groups) * c.kH * c.kW;
}

/** Fields in key order; the key is built from these, never typed by hand. */
const KEY_FIELDS: readonly (keyof ConvBNConfig)[] = [
  'N', 'Cin', 'Cout', 'H', 'W', 'kH', 'kW', 'strideH', 'strideW', 'padTop', 'padBottom', 'padLeft', 'padRight',
  'dilationH', 'dilationW', 'groups', 'bias', 'eps', 'momentum', 'layout',
];

/** A stable string naming one config: equal configs give equal keys. The padding mode is named unless 'zeros'. */
export function configKey(c: ConvBNConfig): string {
  const fields = c.paddingMode === 'zeros' ? KEY_FIELDS : [...KEY_FIELDS, 'paddingMode' as const];
  return fields.map((f) => `${f}=${String(c[f])}`).join(',');
}

/** Short, file-name-safe id for a key (FNV-1a 32-bit, hex). */
export function shortId(key: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Back to the input form (e.g. for manifests and case files): explicit padding, pairs as arrays. */
export function toInput(c: ConvBNConfig): Required<ConvBNConfigInput> {
  return {
    N: c.N, Cin: c.Cin, Cout: c.Cout, H: c.H, W: c.W,
    kernel: [c.kH, c.kW],
    stride: [c.strideH, c.strideW],
    padding: [c.padTop, c.padBottom, c.padLeft, c.padRight],
    dilation: [c.dilationH, c.dilationW],
    groups: c.groups, bias: c.bias, eps: c.eps, momentum: c.momentum, layout: c.layout, paddingMode: c.paddingMode,
  };
}

/**
 * The conv a padding mode other than zeros runs (as PyTorch does): the same layer on x padded
 * beforehand (H + padTop + padBottom, W + padLeft + padRight), without padding of its own.
 * A 'zeros' config is its own.
 */
export function prePaddedConfig(c: ConvBNConfig): ConvBNConfig {
  if (c.paddingMode === 'zeros') return c;
  return normalizeConfig({
    ...toInput(c),
    H: c.H + c.padTop + c.padBottom, W: c.W + c.padLeft + c.padRight, padding: 0, paddingMode: 'zeros',
  });
}

/** The same layer with NCHW tensors: what an NHWC layer runs between its transposes. An NCHW config is its own. */
export function nchwConfig(c: ConvBNConfig): ConvBNConfig {
  if (c.layout === 'NCHW') return c;
  return normalizeConfig({ ...toInput(c), layout: 'NCHW' });
}

/** The config the kernels are generated for: NCHW, padded with zeros (other modes pad x beforehand). */
export function kernelConfig(c: ConvBNConfig): ConvBNConfig {
  return prePaddedConfig(nchwConfig(c));
}
