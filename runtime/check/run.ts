/**
 * Runs reference cases on an engine: every mode in the case, forward and
 * backward, each produced tensor compared with the reference.
 */
import type { Mode } from '../../codegen/config.js';
import type { ConvBNLayer, Engine } from '../types.js';
import type { ConvBNCase } from './cases.js';
import { relativeError, TOLERANCE } from './compare.js';

export interface ModeResult {
  readonly caseId: string;
  readonly mode: Mode;
  /** Relative error per tensor, keyed as in the case file. */
  readonly errors: Readonly<Record<string, number>>;
  readonly worstTensor: string;
  readonly worstError: number;
  readonly pass: boolean;
  /** Set when the run threw instead of producing tensors. */
  readonly failure?: string;
}

/** Everything one forward + backward of `mode` produces on `layer`, keyed as the case files name it. */
export async function produceOn(layer: ConvBNLayer, x: Float32Array, gradY: Float32Array, mode: Mode):
  Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  out.y = await layer.forward(x, mode);
  const grads = await layer.backward(gradY);
  out.grad_x = grads.gradX;
  if (mode === 'deploy') {
    const folded = await layer.getFoldedParameters();
    out.folded_weight = folded.weight;
    out.folded_bias = folded.bias;
    out.grad_folded_weight = grads.gradFoldedWeight!;
    out.grad_folded_bias = grads.gradFoldedBias!;
    return out;
  }
  out.grad_weight = grads.gradWeight!;
  if (grads.gradBias) out.grad_bias = grads.gradBias;
  out.grad_gamma = grads.gradGamma!;
  out.grad_beta = grads.gradBeta!;
  if (mode === 'train') {
    const after = await layer.getParameters();
    out.running_mean = after.runningMean;
    out.running_var = after.runningVar;
  }
  return out;
}

/** A fresh layer for the case's parameters, one mode run on it, the layer destroyed. */
export async function runMode(engine: Engine, c: ConvBNCase, mode: Mode): Promise<Record<string, Float32Array>> {
  const { x, gradY, ...params } = c.inputs;
  const layer = engine.createLayer(c.config, params);
  try {
    return await produceOn(layer, x, gradY, mode);
  } finally {
    layer.destroy();
  }
}

export async function checkMode(engine: Engine, c: ConvBNCase, mode: Mode, tolerance = TOLERANCE): Promise<ModeResult> {
  const expected = c.modes[mode];
  if (!expected) throw new Error(`case ${c.id} has no mode ${mode}`);
  let produced: Record<string, Float32Array>;
  try {
    produced = await runMode(engine, c, mode);
  } catch (e) {
    return { caseId: c.id, mode, errors: {}, worstTensor: '-', worstError: Infinity, pass: false, failure: (e as Error).message };
  }
  const errors: Record<string, number> = {};
  let worstTensor = '-';
  let worstError = 0;
  for (const [name, ref] of Object.entries(expected)) {
    const out = produced[name];
    const err = out ? relativeError(out, ref) : Infinity;
    errors[name] = err;
    // NaN counts as the worst possible error.
    if (!(err <= worstError)) {
      worstError = Number.isNaN(err) ? Infinity : err;
      worstTensor = name;
    }
  }
  return { caseId: c.id, mode, errors, worstTensor, worstError, pass: worstError <= tolerance };
}

export async function checkCase(engine: Engine, c: ConvBNCase, tolerance = TOLERANCE): Promise<ModeResult[]> {
  const results: ModeResult[] = [];
  for (const mode of Object.keys(c.modes) as Mode[]) results.push(await checkMode(engine, c, mode, tolerance));
  return results;
}
