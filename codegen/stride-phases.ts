/**
 * A strided conv's input gradient, split by stride phase: along one axis,
 * input position i = phase + stride * q receives tap k only when
 * (phase + pad - k * dilation) is a multiple of stride, and then from output
 * position q + (phase + pad - k * dilation) / stride. Each phase is thus a
 * stride-1 correlation over q with its own taps; zero insertion would spend
 * (stride - 1) of every stride multiply-adds on skipped positions. One
 * description for every backend: the reg and wg WGSL dgrads and the WASM one.
 */

export interface Tap {
  readonly k: number;
  /** Output offset: the tap reads output position q + d. */
  readonly d: number;
}

/** The taps of one phase along one axis, in kernel order (k ascending, so d descending by a fixed step). */
export function phaseTaps(phase: number, pad: number, k: number, dilation: number, stride: number): Tap[] {
  const taps: Tap[] = [];
  for (let i = 0; i < k; i++) {
    const t = phase + pad - i * dilation;
    if (((t % stride) + stride) % stride === 0) taps.push({ k: i, d: t / stride });
  }
  return taps;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** One phase along one axis as an arithmetic progression of taps. */
export interface AxisPhase {
  /** Input positions of this phase: phase, phase + stride, ... below the extent. */
  readonly positions: number;
  /** Taps that reach it (0: its gradient is 0). */
  readonly count: number;
  /** The first (smallest) tap and the step to the next. */
  readonly first: number;
  readonly step: number;
  /** Output offset of the first tap (the largest), and how much smaller each next tap's is. */
  readonly offset: number;
  readonly offsetStep: number;
}

/** Every phase of one axis (extent `size`, kernel k, stride, dilation, leading pad), phase 0 first. */
export function axisPhases(size: number, k: number, stride: number, dilation: number, pad: number): AxisPhase[] {
  // Taps reaching a phase are every (stride / gcd)-th kernel index; their offsets fall by dilation / gcd.
  const g = gcd(stride, dilation);
  const step = stride / g;
  const offsetStep = dilation / g;
  return Array.from({ length: stride }, (_, phase) => {
    const taps = phaseTaps(phase, pad, k, dilation, stride);
    const positions = phase < size ? Math.ceil((size - phase) / stride) : 0;
    return taps.length === 0
      ? { positions, count: 0, first: 0, step, offset: 0, offsetStep }
      : { positions, count: taps.length, first: taps[0].k, step, offset: taps[0].d, offsetStep };
  });
}
