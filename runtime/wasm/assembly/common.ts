// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Helpers every kernel uses: parameter-block reads, float addresses, small SIMD stores. */

@inline export function pi(p: usize, i: i32): i32 { return load<i32>(p + (<usize>i << 2)); }
@inline export function pu(p: usize, i: i32): usize { return <usize>load<u32>(p + (<usize>i << 2)); }
@inline export function pf(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
/** Address of float element i. */
@inline export function at(base: usize, i: i32): usize { return base + (<usize>i << 2); }
@inline export function imin(a: i32, b: i32): i32 { return a < b ? a : b; }
@inline export function imax(a: i32, b: i32): i32 { return a > b ? a : b; }

@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline export function storeN(p: usize, v: v128, n: i32): void {
  if (n >= 4) { v128.store(p, v); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** storeN with `step` bytes between the lanes' floats (4: contiguous). */
@inline export function storeStep(p: usize, v: v128, n: i32, step: usize): void {
  if (step == 4) { storeN(p, v, n); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p + step, f32x4.extract_lane(v, 1));
  if (n > 2) store<f32>(p + 2 * step, f32x4.extract_lane(v, 2));
  if (n > 3) store<f32>(p + 3 * step, f32x4.extract_lane(v, 3));
}
