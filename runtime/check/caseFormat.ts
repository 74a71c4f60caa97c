/**
 * Reference case files (the format of shared/vectors, see its README):
 * validate parsed JSON against its own config and hand back typed arrays.
 * Pure (no file system), so browser pages can use it; cases.ts loads files.
 */
import {
  MODES, normalizeConfig, outputShape, tensorSizes,
  type ConvBNConfig, type ConvBNConfigInput, type Mode, type OutputShape,
} from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import type { ConvBNParamsInput } from '../types.js';

/** A case file as JSON (what the files hold and what test/oracle/makeCase writes). */
export interface ConvBNCaseFile {
  id: string;
  config: ConvBNConfigInput;
  output_shape: [number, number, number, number];
  inputs: Record<string, number[]>;
  modes: Partial<Record<Mode, Record<string, number[]>>>;
  /** Free text: what computed the outputs. */
  reference?: string;
}

/** A case's parameters (the runtime's own parameter type) with its x and gradY. */
export interface ConvBNCaseInputs extends ConvBNParamsInput {
  x: Float32Array;
  gradY: Float32Array;
}

export interface ConvBNCase {
  id: string;
  /** File path (or whatever name the caller gave parseCase). */
  source: string;
  config: ConvBNConfig;
  /** The config as written in the file. */
  configInput: ConvBNConfigInput;
  outputShape: OutputShape;
  inputs: ConvBNCaseInputs;
  /** Expected outputs per mode, keyed as in the file (y, grad_x, ..., running_mean). */
  modes: Partial<Record<Mode, Record<string, Float64Array>>>;
  reference?: string;
}

/** Keys each mode must hold; grad_bias only when the conv has a bias. */
export function expectedModeKeys(mode: Mode, bias: boolean): string[] {
  if (mode === 'deploy') {
    return ['folded_weight', 'folded_bias', 'y', 'grad_x', 'grad_folded_weight', 'grad_folded_bias'];
  }
  const keys = ['y', 'grad_x', 'grad_weight', ...(bias ? ['grad_bias'] : []), 'grad_gamma', 'grad_beta'];
  return mode === 'train' ? [...keys, 'running_mean', 'running_var'] : keys;
}

/** Element count of every tensor name a case can hold. */
function tensorLengths(c: ConvBNConfig): Record<string, number> {
  const s = tensorSizes(c);
  return {
    x: s.x, grad_x: s.x,
    y: s.y, grad_y: s.y,
    weight: s.weight, grad_weight: s.weight, folded_weight: s.weight, grad_folded_weight: s.weight,
    bias: c.Cout, grad_bias: c.Cout, folded_bias: c.Cout, grad_folded_bias: c.Cout,
    gamma: c.Cout, grad_gamma: c.Cout, beta: c.Cout, grad_beta: c.Cout,
    running_mean: c.Cout, running_var: c.Cout,
  };
}

/** A ConvBNInputError whose message starts with the file it came from. */
export function caseError(source: string, field: string, value: unknown, allowed: string): ConvBNInputError {
  const error = new ConvBNInputError(field, value, allowed);
  error.message = `${source}: ${error.message}`;
  return error;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** A JSON array of `length` finite numbers, converted to `Out`. */
function numberArray<Out extends Float32Array | Float64Array>(
  source: string, field: string, value: unknown, length: number, make: (n: number) => Out,
): Out {
  if (!Array.isArray(value)) {
    throw caseError(source, field, typeof value, `must be an array of ${length} numbers`);
  }
  if (value.length !== length) {
    throw caseError(source, `${field}.length`, value.length, `must be ${length} (from the config)`);
  }
  const out = make(length);
  for (let i = 0; i < length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw caseError(source, `${field}[${i}]`, v, 'must be a finite number');
    }
    out[i] = v;
    // Float32 inputs: a value beyond float32 range would silently become infinity.
    if (!Number.isFinite(out[i])) throw caseError(source, `${field}[${i}]`, v, 'must be representable in float32');
  }
  return out;
}

function parseConfig(source: string, value: unknown): ConvBNConfig {
  if (!isObject(value)) throw caseError(source, 'config', value, 'must be an object');
  try {
    return normalizeConfig(value as unknown as ConvBNConfigInput);
  } catch (error) {
    if (error instanceof ConvBNInputError) {
      throw caseError(source, `config.${error.field}`, error.value, error.allowed);
    }
    throw error;
  }
}

function parseOutputShape(source: string, value: unknown, c: ConvBNConfig): OutputShape {
  const shape = outputShape(c);
  const expected = [shape.N, shape.C, shape.H, shape.W];
  if (!Array.isArray(value) || value.length !== 4 || value.some((v, i) => v !== expected[i])) {
    throw caseError(source, 'output_shape', value, `must be [${expected.join(', ')}] (from the config)`);
  }
  return shape;
}

const INPUT_NAMES = ['x', 'weight', 'bias', 'gamma', 'beta', 'running_mean', 'running_var', 'grad_y'] as const;

function parseInputs(source: string, value: unknown, c: ConvBNConfig): ConvBNCaseInputs {
  if (!isObject(value)) throw caseError(source, 'inputs', value, 'must be an object');
  const lengths = tensorLengths(c);
  for (const key of Object.keys(value)) {
    if (!(INPUT_NAMES as readonly string[]).includes(key)) {
      throw caseError(source, `inputs.${key}`, 'present', `is not an input; allowed: ${INPUT_NAMES.join(', ')}`);
    }
  }
  const read = (name: string): Float32Array => {
    if (!(name in value)) throw caseError(source, `inputs.${name}`, undefined, 'is missing');
    return numberArray(source, `inputs.${name}`, value[name], lengths[name], (n) => new Float32Array(n));
  };
  if (!c.bias && 'bias' in value) {
    throw caseError(source, 'inputs.bias', 'present', 'must be omitted: config.bias is false');
  }
  const [x, weight, gamma, beta, runningMean, runningVar, gradY] =
    ['x', 'weight', 'gamma', 'beta', 'running_mean', 'running_var', 'grad_y'].map(read);
  return {
    x, weight, gamma, beta, runningMean, runningVar, gradY,
    ...(c.bias ? { bias: read('bias') } : {}),
  };
}

function parseModes(source: string, value: unknown, c: ConvBNConfig): ConvBNCase['modes'] {
  if (!isObject(value)) throw caseError(source, 'modes', value, `must be an object keyed by mode (${MODES.join(', ')})`);
  const modeNames = Object.keys(value);
  if (modeNames.length === 0) throw caseError(source, 'modes', value, 'must hold at least one mode');
  const lengths = tensorLengths(c);
  const modes: ConvBNCase['modes'] = {};
  for (const name of modeNames) {
    if (!(MODES as readonly string[]).includes(name)) {
      throw caseError(source, `modes.${name}`, 'present', `is not a mode; allowed: ${MODES.join(', ')}`);
    }
    const mode = name as Mode;
    const tensors = value[name];
    if (!isObject(tensors)) throw caseError(source, `modes.${mode}`, tensors, 'must be an object of tensors');
    const keys = expectedModeKeys(mode, c.bias);
    for (const key of Object.keys(tensors)) {
      if (!keys.includes(key)) {
        throw caseError(source, `modes.${mode}.${key}`, 'present', `is not an output of ${mode} mode; expected: ${keys.join(', ')}`);
      }
    }
    const parsed: Record<string, Float64Array> = {};
    for (const key of keys) {
      if (!(key in tensors)) throw caseError(source, `modes.${mode}.${key}`, undefined, 'is missing');
      parsed[key] = numberArray(source, `modes.${mode}.${key}`, tensors[key], lengths[key], (n) => new Float64Array(n));
    }
    modes[mode] = parsed;
  }
  return modes;
}

/** Validates one parsed JSON case; `source` names it in errors (usually its path). */
export function parseCase(json: unknown, source: string): ConvBNCase {
  if (!isObject(json)) throw caseError(source, 'case', json, 'must be a JSON object');
  if (typeof json.id !== 'string' || json.id === '') throw caseError(source, 'id', json.id, 'must be a non-empty string');
  if (json.reference !== undefined && typeof json.reference !== 'string') {
    throw caseError(source, 'reference', json.reference, 'must be a string when present');
  }
  const config = parseConfig(source, json.config);
  return {
    id: json.id,
    source,
    config,
    configInput: json.config as unknown as ConvBNConfigInput,
    outputShape: parseOutputShape(source, json.output_shape, config),
    inputs: parseInputs(source, json.inputs, config),
    modes: parseModes(source, json.modes, config),
    ...(json.reference !== undefined ? { reference: json.reference } : {}),
  };
}

