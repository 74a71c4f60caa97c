/**
 * Builds a case file (the shared/vectors format) for any config: seeded
 * float32 inputs, outputs from the float64 oracle. Tests write these to a
 * temp dir to run `convbn check` on configs the PyTorch vectors do not cover.
 */
import { configKey, MODES, normalizeConfig, outputShape, shortId, toInput, type ConvBNConfigInput, type Mode } from '../../codegen/config.js';
import type { ConvBNCaseFile } from '../../runtime/check/cases.js';
import { mulberry32, randomParams, randomTensor } from '../helpers/random.js';
import { referenceCase, type CaseInputs } from './reference.js';

export function makeCase(configInput: ConvBNConfigInput, seed: number, modes: readonly Mode[] = MODES): ConvBNCaseFile {
  const config = normalizeConfig(configInput);
  const rng = mulberry32(seed);
  const params = randomParams(rng, config);
  const shape = outputShape(config);
  const inputs: CaseInputs = {
    x: randomTensor(rng, config.N * config.Cin * config.H * config.W),
    weight: params.weight,
    ...(params.bias ? { bias: params.bias } : {}),
    gamma: params.gamma,
    beta: params.beta,
    running_mean: params.runningMean,
    running_var: params.runningVar,
    grad_y: randomTensor(rng, shape.N * shape.C * shape.H * shape.W),
  };
  const outputs: ConvBNCaseFile['modes'] = {};
  for (const mode of modes) {
    const tensors = referenceCase(config, inputs, mode);
    outputs[mode] = Object.fromEntries(Object.entries(tensors).map(([key, value]) => [key, Array.from(value)]));
  }
  // Explicit four-sided padding: the file format then holds any config exactly (its layout too).
  const fileConfig = toInput(config);
  return {
    id: `random-${seed}-${shortId(configKey(config))}`,
    config: fileConfig,
    output_shape: [shape.N, shape.C, shape.H, shape.W],
    inputs: Object.fromEntries(Object.entries(inputs).map(([key, value]) => [key, Array.from(value as ArrayLike<number>)])),
    modes: outputs,
    reference: 'convbn test/oracle/reference.ts, float64',
  };
}
