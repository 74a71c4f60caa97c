// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Per-channel BatchNorm kernels and channel sums. */
import { at, pf, pi, pu } from './common';
import { BN } from './slots';

// ---------------------------------------------------------------------------
// Per-channel BatchNorm kernels: one task per channel, every sum in f64 (a
// per-channel sum can cancel to a small rest that float32 blocks would lose).
// ---------------------------------------------------------------------------

/** dst = (src - m) * s + b */
export function affine(src: usize, dst: usize, n: i32, m: f32, s: f32, b: f32): void {
  const vm = f32x4.splat(m), vs = f32x4.splat(s), vb = f32x4.splat(b);
  let i = 0;
  const n4 = n & ~3;
  for (; i < n4; i += 4) {
    v128.store(at(dst, i), f32x4.add(f32x4.mul(f32x4.sub(v128.load(at(src, i)), vm), vs), vb));
  }
  for (; i < n; i++) store<f32>(at(dst, i), (load<f32>(at(src, i)) - m) * s + b);
}


/** sum a, in f64 (train mode: the batch statistics and their gradients must not cancel to float32 noise). */
export function sum64(a: usize, n: i32): f64 {
  let s0: f64 = 0, s1: f64 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    s0 += <f64>load<f32>(at(a, i));
    s1 += <f64>load<f32>(at(a, i), 4);
  }
  if (i < n) s0 += <f64>load<f32>(at(a, i));
  return s0 + s1;
}

/** sum (a - ma) (b - mb), in f64. */
export function dev64(a: usize, ma: f64, b: usize, mb: f64, n: i32): f64 {
  let s0: f64 = 0, s1: f64 = 0;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    s0 += (<f64>load<f32>(at(a, i)) - ma) * (<f64>load<f32>(at(b, i)) - mb);
    s1 += (<f64>load<f32>(at(a, i), 4) - ma) * (<f64>load<f32>(at(b, i), 4) - mb);
  }
  if (i < n) s0 += (<f64>load<f32>(at(a, i)) - ma) * (<f64>load<f32>(at(b, i)) - mb);
  return s0 + s1;
}

/**
 * train forward, task = channel: batch mean and biased variance (two passes,
 * f64), running-stat update, y = (z - mean) * invstd * gamma + beta.
 * MEAN and INVSTD are f64 arrays.
 */
export function bn_train_fwd(p: usize, c: i32, tid: i32): void {
  const N = pi(p, BN.N), C = pi(p, BN.C), HW = pi(p, BN.HW);
  const z = pu(p, BN.Z), y = pu(p, BN.Y);
  const M = N * HW;
  let s: f64 = 0;
  for (let n = 0; n < N; n++) s += sum64(at(z, (n * C + c) * HW), HW);
  const mean = s / <f64>M;
  let q: f64 = 0;
  for (let n = 0; n < N; n++) {
    const zp = at(z, (n * C + c) * HW);
    q += dev64(zp, mean, zp, mean, HW);
  }
  const variance = q / <f64>M;
  const eps = <f64>pf(p, BN.EPS);
  const invstd = 1.0 / Math.sqrt(variance + eps);
  store<f64>(pu(p, BN.MEAN) + (<usize>c << 3), mean);
  store<f64>(pu(p, BN.INVSTD) + (<usize>c << 3), invstd);
  if (pi(p, BN.UPDATE) != 0) {
    const m = <f64>pf(p, BN.MOM);
    const rm = at(pu(p, BN.RM), c), rv = at(pu(p, BN.RV), c);
    const unbiased = M > 1 ? variance * <f64>M / <f64>(M - 1) : NaN;
    store<f32>(rm, <f32>((1 - m) * <f64>load<f32>(rm) + m * mean));
    store<f32>(rv, <f32>((1 - m) * <f64>load<f32>(rv) + m * unbiased));
  }
  if (y != 0) {
    const scale = <f32>(<f64>load<f32>(at(pu(p, BN.GAMMA), c)) * invstd);
    const beta = load<f32>(at(pu(p, BN.BETA), c));
    const meanF = <f32>mean;
    for (let n = 0; n < N; n++) {
      const off = (n * C + c) * HW;
      affine(at(z, off), at(y, off), HW, meanF, scale, beta);
    }
  }
}

/**
 * train backward, task = channel, all in f64: dz = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)).
 * When dy lies (almost) in span{1, xhat} (e.g. two values per channel) the
 * terms cancel down to an eps-sized rest that float32 arithmetic would drown.
 */
export function bn_train_bwd(p: usize, c: i32, tid: i32): void {
  const N = pi(p, BN.N), C = pi(p, BN.C), HW = pi(p, BN.HW);
  const z = pu(p, BN.Z), dy = pu(p, BN.DY), dz = pu(p, BN.DZ);
  const M = N * HW;
  const mean = load<f64>(pu(p, BN.MEAN) + (<usize>c << 3));
  const invstd = load<f64>(pu(p, BN.INVSTD) + (<usize>c << 3));
  const gamma = <f64>load<f32>(at(pu(p, BN.GAMMA), c));
  let sdy: f64 = 0, sdyz: f64 = 0;
  for (let n = 0; n < N; n++) {
    const off = (n * C + c) * HW;
    sdy += sum64(at(dy, off), HW);
    sdyz += dev64(at(dy, off), 0, at(z, off), mean, HW);
  }
  const ggamma = sdyz * invstd;
  store<f32>(at(pu(p, BN.GBETA), c), <f32>sdy);
  store<f32>(at(pu(p, BN.GGAMMA), c), <f32>ggamma);
  const k = gamma * invstd;
  const a = sdy / <f64>M;
  const b = invstd * ggamma / <f64>M;
  for (let n = 0; n < N; n++) {
    const off = (n * C + c) * HW;
    const dyp = at(dy, off), zp = at(z, off), dzp = at(dz, off);
    for (let i = 0; i < HW; i++) {
      const v = k * ((<f64>load<f32>(at(dyp, i)) - a) - (<f64>load<f32>(at(zp, i)) - mean) * b);
      store<f32>(at(dzp, i), <f32>v);
    }
  }
}

/** eval backward, task = channel: gbeta = sum dy, ggamma = sum dy (z - rm) invstd, dz = dy gamma invstd, gbias = sum dz. */
export function bn_eval_bwd(p: usize, c: i32, tid: i32): void {
  const N = pi(p, BN.N), C = pi(p, BN.C), HW = pi(p, BN.HW);
  const z = pu(p, BN.Z), dy = pu(p, BN.DY), dz = pu(p, BN.DZ);
  const rm = load<f32>(at(pu(p, BN.RM), c));
  const invstd = 1.0 / Math.sqrt(<f64>load<f32>(at(pu(p, BN.RV), c)) + <f64>pf(p, BN.EPS));
  const gamma = <f64>load<f32>(at(pu(p, BN.GAMMA), c));
  const s = <f32>(gamma * invstd);
  let sdy: f64 = 0, sdyz: f64 = 0;
  for (let n = 0; n < N; n++) {
    const off = (n * C + c) * HW;
    sdy += sum64(at(dy, off), HW);
    sdyz += dev64(at(dy, off), 0, at(z, off), <f64>rm, HW);
    affine(at(dy, off), at(dz, off), HW, 0, s, 0);
  }
  store<f32>(at(pu(p, BN.GBETA), c), <f32>sdy);
  store<f32>(at(pu(p, BN.GGAMMA), c), <f32>(sdyz * invstd));
  // gbias = sum dz = gamma invstd sum dy, from the f64 sum (summing the rounded dz would lose a small sum).
  const gb = pu(p, BN.GBIAS);
  if (gb != 0) store<f32>(at(gb, c), <f32>(gamma * invstd * sdy));
}

/** task = channel: out[c] = sum over n, pixels of src. Uses BN.N, BN.C, BN.HW, BN.DY (src), BN.GBETA (out). */
export function chan_sum(p: usize, c: i32, tid: i32): void {
  const N = pi(p, BN.N), C = pi(p, BN.C), HW = pi(p, BN.HW);
  const src = pu(p, BN.DY);
  let s: f64 = 0;
  for (let n = 0; n < N; n++) s += sum64(at(src, (n * C + c) * HW), HW);
  store<f32>(at(pu(p, BN.GBETA), c), <f32>s);
}
