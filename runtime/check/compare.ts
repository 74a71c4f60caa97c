/**
 * How a kernel's output is judged against a float64 reference.
 *
 * relativeError = ||out - ref||_2 / max(||ref||_2, RMS_FLOOR * sqrt(n))
 *
 * The denominator is the reference's norm, except when the reference is
 * (nearly) zero everywhere: then it is RMS_FLOOR per element, so a tensor that
 * is analytically zero (train-mode grad_bias: BN subtracts the batch mean, so
 * the conv bias has no effect) is judged on its absolute RMS instead of
 * dividing rounding noise by rounding noise.
 *
 * That bar is RMS_FLOOR * TOLERANCE = 1e-10 absolute RMS. A float32 sum of
 * the per-element grad_z lands around 1e-7..1e-5 instead, so a kernel should
 * write train grad_bias as the analytic 0, not as that sum.
 */

/** RMS magnitude below which a reference counts as zero (per element). */
export const RMS_FLOOR = 1e-6;

/** Largest relativeError a float32 kernel may show against the float64 reference. */
export const TOLERANCE = 1e-4;

/** See the module comment. NaN or infinity anywhere gives Infinity (never passes). */
export function relativeError(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) {
    throw new RangeError(`relativeError: length ${out.length} differs from reference length ${ref.length}`);
  }
  const n = ref.length;
  if (n === 0) return 0;
  let diff2 = 0;
  let ref2 = 0;
  for (let i = 0; i < n; i++) {
    const d = out[i] - ref[i];
    diff2 += d * d;
    ref2 += ref[i] * ref[i];
  }
  const error = Math.sqrt(diff2) / Math.max(Math.sqrt(ref2), RMS_FLOOR * Math.sqrt(n));
  return Number.isFinite(error) ? error : Infinity;
}
