/**
 * Runs one mode on an engine from oracle-style (snake_case) inputs and returns
 * what it produced under the case files' names, next to the oracle's answer.
 */
import type { ConvBNConfig, Mode } from '../../codegen/config.js';
import { runMode } from '../../runtime/check/run.js';
import type { Engine } from '../../runtime/types.js';
import type { CaseInputs, Tensors } from '../oracle/reference.js';
import { referenceCase } from '../oracle/reference.js';
import type { ConvBNCase } from '../../runtime/check/cases.js';

const f32 = (a: ArrayLike<number> | undefined) => (a ? Float32Array.from(a) : undefined);

export function asCase(config: ConvBNConfig, inputs: CaseInputs, modes: readonly Mode[]): ConvBNCase {
  const expected: ConvBNCase['modes'] = {};
  for (const mode of modes) expected[mode] = referenceCase(config, inputs, mode);
  return {
    id: 'generated', source: 'test', config, configInput: config as never,
    outputShape: undefined as never,
    inputs: {
      x: f32(inputs.x)!, weight: f32(inputs.weight)!, bias: f32(inputs.bias), gamma: f32(inputs.gamma)!,
      beta: f32(inputs.beta)!, runningMean: f32(inputs.running_mean)!, runningVar: f32(inputs.running_var)!,
      gradY: f32(inputs.grad_y)!,
    },
    modes: expected,
  };
}

export async function runOnEngine(engine: Engine, config: ConvBNConfig, inputs: CaseInputs, mode: Mode):
  Promise<{ produced: Record<string, Float32Array>; expected: Tensors }> {
  const c = asCase(config, inputs, [mode]);
  return { produced: await runMode(engine, c, mode), expected: c.modes[mode]! };
}
