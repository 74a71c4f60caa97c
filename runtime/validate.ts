/**
 * Checks on what callers hand a layer, shared by every backend so that bad
 * input is refused the same way before any GPU or WASM work.
 */
import { tensorSizes, type ConvBNConfig, type Mode, MODES } from '../codegen/config.js';
import { ConvBNInputError } from '../codegen/errors.js';
import type { BackwardOptions, ConvBNParamsInput, FoldedParams } from './types.js';

export function checkTensor(field: string, value: unknown, expectedLength: number): Float32Array {
  if (!(value instanceof Float32Array)) {
    const got = value === null ? 'null' : typeof value === 'object' ? (value as object).constructor?.name : typeof value;
    throw new ConvBNInputError(field, got, `must be a Float32Array of ${expectedLength} elements`);
  }
  if (value.length !== expectedLength) {
    throw new ConvBNInputError(`${field}.length`, value.length, `must be ${expectedLength}`);
  }
  return value;
}

function checkFinite(field: string, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new ConvBNInputError(`${field}[${i}]`, values[i], 'must be finite (no NaN or infinity)');
    }
  }
}

/** backward's options: an object whose inputGrad, when given, is a boolean. Returns inputGrad (default true). */
export function checkBackwardOptions(options: unknown): boolean {
  if (options === undefined) return true;
  if (options === null || typeof options !== 'object') throw new ConvBNInputError('options', options, 'must be an object { inputGrad? }');
  const inputGrad = (options as BackwardOptions).inputGrad;
  if (inputGrad !== undefined && typeof inputGrad !== 'boolean') {
    throw new ConvBNInputError('options.inputGrad', inputGrad, 'must be true or false');
  }
  return inputGrad ?? true;
}

export function checkMode(mode: unknown): Mode {
  if (!(MODES as readonly unknown[]).includes(mode)) {
    throw new ConvBNInputError('mode', mode, `must be one of ${MODES.join(', ')}`);
  }
  return mode as Mode;
}

/**
 * Parameters: right type and length, finite, and var + eps > 0 in float32
 * (a non-positive value would make 1/sqrt(var + eps) NaN or infinite).
 */
export function checkParams(c: ConvBNConfig, p: ConvBNParamsInput): void {
  if (p === null || typeof p !== 'object') {
    throw new ConvBNInputError('params', p, 'must be an object with weight, gamma, beta, runningMean, runningVar');
  }
  const sizes = tensorSizes(c);
  checkTensor('weight', p.weight, sizes.weight);
  if (c.bias) checkTensor('bias', p.bias, c.Cout);
  else if (p.bias !== undefined) {
    throw new ConvBNInputError('bias', 'Float32Array', 'must be omitted: the config says bias = false');
  }
  for (const name of ['gamma', 'beta', 'runningMean', 'runningVar'] as const) {
    checkTensor(name, p[name], c.Cout);
  }
  for (const name of ['weight', 'bias', 'gamma', 'beta', 'runningMean', 'runningVar'] as const) {
    const v = p[name];
    if (v) checkFinite(name, v);
  }
  checkVariance('runningVar', p.runningVar, c.eps);
}

export function checkVariance(field: string, variance: Float32Array, eps: number): void {
  const epsF = Math.fround(eps);
  for (let i = 0; i < variance.length; i++) {
    if (!(Math.fround(variance[i] + epsF) > 0)) {
      throw new ConvBNInputError(`${field}[${i}] + eps`, variance[i] + epsF, 'must be > 0');
    }
  }
}

export function checkFolded(c: ConvBNConfig, p: FoldedParams): void {
  if (p === null || typeof p !== 'object') throw new ConvBNInputError('folded', p, 'must be { weight, bias }');
  checkTensor('folded weight', p.weight, tensorSizes(c).weight);
  checkTensor('folded bias', p.bias, c.Cout);
  checkFinite('folded weight', p.weight);
  checkFinite('folded bias', p.bias);
}

/** Host-side fold, in float64 then rounded once: W' = W s, b' = (b - mean) s + beta. */
export function foldParams(c: ConvBNConfig, p: ConvBNParamsInput): FoldedParams {
  const perOut = tensorSizes(c).weight / c.Cout;
  const weight = new Float32Array(p.weight.length);
  const bias = new Float32Array(c.Cout);
  for (let o = 0; o < c.Cout; o++) {
    const s = p.gamma[o] / Math.sqrt(p.runningVar[o] + c.eps);
    for (let i = 0; i < perOut; i++) weight[o * perOut + i] = p.weight[o * perOut + i] * s;
    bias[o] = ((p.bias ? p.bias[o] : 0) - p.runningMean[o]) * s + p.beta[o];
  }
  return { weight, bias };
}

const PARAM_NAMES = ['weight', 'bias', 'gamma', 'beta', 'runningMean', 'runningVar'] as const;

/**
 * `current` with the tensors `update` names replaced (e.g. an optimizer step
 * changes weights but not the running stats train mode keeps updating).
 * Unknown names are refused so a typo does not pass silently; the result is
 * checked as a whole by the caller's setParameters.
 */
export function mergeParams(current: ConvBNParamsInput, update: Partial<ConvBNParamsInput>): ConvBNParamsInput {
  if (update === null || typeof update !== 'object') {
    throw new ConvBNInputError('params', update, `must be an object with some of ${PARAM_NAMES.join(', ')}`);
  }
  const merged: ConvBNParamsInput = { ...current };
  for (const [name, value] of Object.entries(update)) {
    if (!(PARAM_NAMES as readonly string[]).includes(name)) {
      throw new ConvBNInputError(name, typeof value, `is not a parameter; allowed: ${PARAM_NAMES.join(', ')}`);
    }
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[name] = value;
  }
  return merged;
}
