/**
 * Train mode's input gradient where a group's batch reads a single input
 * value x (codegen/plans.ts scalarInputPosition). Every z of the group's
 * channels is then a_p * x + b, and BN normalises z over the batch, so y
 * does not change when x is scaled: x * dL/dx = sum over the group's
 * channels o of sum_p dz_p (z_p - mean_o), which is
 * gamma_o * ggamma_o * eps * invstd_o^2 (the BN backward's identity). A
 * float32 sum of dz * a carries rounding noise of the size of dz instead of
 * that eps-sized rest, so the gradient is replaced by its closed form. At
 * x = 0 the channel is constant, the gradient is no rest, and the computed
 * one stays.
 */
import type { ConvBNConfig } from '../codegen/config.js';
import { scalarInputPosition } from '../codegen/plans.js';

export interface ScalarInputTerms {
  /** The batch's single live x value of each group (one input channel per group), by group. */
  readonly x: ArrayLike<number>;
  readonly gamma: ArrayLike<number>;
  readonly gradGamma: ArrayLike<number>;
  /** 1 / sqrt(batch variance + eps), per output channel. */
  readonly invstd: ArrayLike<number>;
}

/** Rewrites gradX (NCHW, one image, whatever the layer's layout) in place at the live position of every group (when the config has one). */
export function fixScalarInputGrad(c: ConvBNConfig, gradX: Float32Array, t: ScalarInputTerms): void {
  const pos = scalarInputPosition(c);
  if (!pos) return;
  const perGroup = c.Cout / c.groups;
  for (let g = 0; g < c.groups; g++) {
    const x = t.x[g];
    if (x === 0) continue;
    let rest = 0;
    for (let o = g * perGroup; o < (g + 1) * perGroup; o++) rest += t.gamma[o] * t.gradGamma[o] * c.eps * t.invstd[o] * t.invstd[o];
    gradX[(g * c.H + pos.ih) * c.W + pos.iw] = rest / x;
  }
}

/** The live x values fixScalarInputGrad needs, read from x (NCHW, one image), or undefined when the config has none. */
export function scalarInputValues(c: ConvBNConfig, x: ArrayLike<number>): Float64Array | undefined {
  const pos = scalarInputPosition(c);
  if (!pos) return undefined;
  return Float64Array.from({ length: c.groups }, (_, g) => x[(g * c.H + pos.ih) * c.W + pos.iw]);
}
