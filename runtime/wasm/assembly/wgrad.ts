// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** SIMD weight gradients on packed x and unpacked dz: wgrad4 (4 out-channels x 2 taps) and wgrad1 (1 x 4). */
import { at, hsum, imin, pi, pu } from './common';
import { WG, WG_ACC_BYTES } from './slots';

// ---------------------------------------------------------------------------
// SIMD weight gradient on packed x (forward packing) and unpacked dz.
// gw[g*CO+co][k], k = (ci, kh, kw), reduced over n, oh, ow in a fixed order.
// ---------------------------------------------------------------------------

@inline export function xoff(k: i32, kHW: i32, kW: i32, plane: i32, dH: i32, dW: i32, S: i32, PW: i32): i32 {
  const ci = k / kHW, r = k % kHW;
  const kh = r / kW, kw = r % kW;
  const q = kw * dW;
  return ci * plane + kh * dH * S * PW + (q % S) * PW + q / S;
}

/**
 * 4 output channels x 2 k per micro-kernel. Task (g, channel block, chunk of k pairs).
 * Cache blocking: for each image and band of BAND output rows, every pair of
 * the chunk runs over the band, so the band's dz rows and x rows stay in L1;
 * the pairs' accumulators live in per-task scratch (ACC) between bands.
 * The sum order (n, oh, ow) is the same for every pair and thread count.
 */

export function wgrad4(p: usize, task: i32, tid: i32): void {
  const N = pi(p, WG.N), G = pi(p, WG.G), C = pi(p, WG.C), CO = pi(p, WG.CO);
  const S = pi(p, WG.S), PW = pi(p, WG.PW), kH = pi(p, WG.KH), kW = pi(p, WG.KW);
  const sH = pi(p, WG.SH), dH = pi(p, WG.DH), dW = pi(p, WG.DW), Ho = pi(p, WG.HO), Wo = pi(p, WG.WO);
  const x = pu(p, WG.X), dz = pu(p, WG.DZ), gw = pu(p, WG.GW), kpt = pi(p, WG.KPT), plane = pi(p, WG.PLANE);
  const kHW = kH * kW, K = C * kHW;
  const pairs = (K + 1) >> 1;
  const chunks = (pairs + kpt - 1) / kpt;
  const nb = (CO + 3) >> 2;
  let t = task;
  const kc = t % chunks; t /= chunks;
  const b = t % nb;
  const g = t / nb;
  const acc = pu(p, WG.ACC) + <usize>task * <usize>kpt * WG_ACC_BYTES;
  const BAND = pi(p, WG.BAND);
  const rowBytes = <usize>(sH * S * PW) << 2;
  const HoWo = Ho * Wo;
  const Wo4 = Wo & ~3;
  const co0 = b * 4;
  const c0 = g * CO + co0;
  const c1 = g * CO + imin(co0 + 1, CO - 1);
  const c2 = g * CO + imin(co0 + 2, CO - 1);
  const c3 = g * CO + imin(co0 + 3, CO - 1);
  const kp0 = kc * kpt;
  const kp1 = imin(pairs, kp0 + kpt);
  for (let kp = kp0; kp < kp1; kp++) {
    const a = acc + <usize>(kp - kp0) * WG_ACC_BYTES;
    memory.fill(a, 0, 160);
    const k0 = kp * 2;
    const k1 = imin(k0 + 1, K - 1);
    store<i32>(a, xoff(k0, kHW, kW, plane, dH, dW, S, PW), 160);
    store<i32>(a, xoff(k1, kHW, kW, plane, dH, dW, S, PW), 164);
  }
  const wb = <usize>Wo << 2;
  for (let n = 0; n < N; n++) {
    const xn = at(x, (n * G + g) * C * plane);
    const dzn = n * G * CO;
    for (let oh0 = 0; oh0 < Ho; oh0 += BAND) {
      const oh1 = imin(Ho, oh0 + BAND);
      const xb = xn + <usize>oh0 * rowBytes;
      const db = <usize>(oh0 * Wo) << 2;
      for (let kp = kp0; kp < kp1; kp++) {
        const a = acc + <usize>(kp - kp0) * WG_ACC_BYTES;
        let a00 = v128.load(a), a01 = v128.load(a, 16), a10 = v128.load(a, 32), a11 = v128.load(a, 48);
        let a20 = v128.load(a, 64), a21 = v128.load(a, 80), a30 = v128.load(a, 96), a31 = v128.load(a, 112);
        let x0p = xb + (<usize>load<i32>(a, 160) << 2), x1p = xb + (<usize>load<i32>(a, 164) << 2);
        let d0p = at(dz, (dzn + c0) * HoWo) + db, d1p = at(dz, (dzn + c1) * HoWo) + db;
        let d2p = at(dz, (dzn + c2) * HoWo) + db, d3p = at(dz, (dzn + c3) * HoWo) + db;
        for (let oh = oh0; oh < oh1; oh++) {
          let ow = 0;
          for (; ow < Wo4; ow += 4) {
            const bo = <usize>ow << 2;
            const x0 = v128.load(x0p + bo), x1 = v128.load(x1p + bo);
            let d = v128.load(d0p + bo);
            a00 = f32x4.add(a00, f32x4.mul(d, x0));
            a01 = f32x4.add(a01, f32x4.mul(d, x1));
            d = v128.load(d1p + bo);
            a10 = f32x4.add(a10, f32x4.mul(d, x0));
            a11 = f32x4.add(a11, f32x4.mul(d, x1));
            d = v128.load(d2p + bo);
            a20 = f32x4.add(a20, f32x4.mul(d, x0));
            a21 = f32x4.add(a21, f32x4.mul(d, x1));
            d = v128.load(d3p + bo);
            a30 = f32x4.add(a30, f32x4.mul(d, x0));
            a31 = f32x4.add(a31, f32x4.mul(d, x1));
          }
          if (ow < Wo) {
            // Row tail: scalar sums kept in the pair's scratch.
            let t00 = load<f32>(a, 128), t01 = load<f32>(a, 132), t10 = load<f32>(a, 136), t11 = load<f32>(a, 140);
            let t20 = load<f32>(a, 144), t21 = load<f32>(a, 148), t30 = load<f32>(a, 152), t31 = load<f32>(a, 156);
            for (; ow < Wo; ow++) {
              const x0 = load<f32>(at(x0p, ow)), x1 = load<f32>(at(x1p, ow));
              let d = load<f32>(at(d0p, ow)); t00 += d * x0; t01 += d * x1;
              d = load<f32>(at(d1p, ow)); t10 += d * x0; t11 += d * x1;
              d = load<f32>(at(d2p, ow)); t20 += d * x0; t21 += d * x1;
              d = load<f32>(at(d3p, ow)); t30 += d * x0; t31 += d * x1;
            }
            store<f32>(a, t00, 128); store<f32>(a, t01, 132); store<f32>(a, t10, 136); store<f32>(a, t11, 140);
            store<f32>(a, t20, 144); store<f32>(a, t21, 148); store<f32>(a, t30, 152); store<f32>(a, t31, 156);
          }
          x0p += rowBytes; x1p += rowBytes;
          d0p += wb; d1p += wb; d2p += wb; d3p += wb;
        }
        v128.store(a, a00); v128.store(a, a01, 16); v128.store(a, a10, 32); v128.store(a, a11, 48);
        v128.store(a, a20, 64); v128.store(a, a21, 80); v128.store(a, a30, 96); v128.store(a, a31, 112);
      }
    }
  }
  const nv = imin(4, CO - co0);
  for (let kp = kp0; kp < kp1; kp++) {
    const a = acc + <usize>(kp - kp0) * WG_ACC_BYTES;
    const k0 = kp * 2;
    const k1 = k0 + 1;
    const k1ok = k1 < K;
    for (let i = 0; i < nv; i++) {
      const oc = g * CO + co0 + i;
      store<f32>(at(gw, oc * K + k0), hsum(v128.load(a + <usize>(i * 32))) + load<f32>(a + <usize>(128 + i * 8)));
      if (k1ok) store<f32>(at(gw, oc * K + k1), hsum(v128.load(a + <usize>(i * 32 + 16))) + load<f32>(a + <usize>(132 + i * 8)));
    }
  }
}


/** 1 output channel x 4 k per micro-kernel (depthwise-like groups). Task (g, co, chunk of k quads). */
export function wgrad1(p: usize, task: i32, tid: i32): void {
  const N = pi(p, WG.N), G = pi(p, WG.G), C = pi(p, WG.C), CO = pi(p, WG.CO);
  const S = pi(p, WG.S), PW = pi(p, WG.PW), kH = pi(p, WG.KH), kW = pi(p, WG.KW);
  const sH = pi(p, WG.SH), dH = pi(p, WG.DH), dW = pi(p, WG.DW), Ho = pi(p, WG.HO), Wo = pi(p, WG.WO);
  const x = pu(p, WG.X), dz = pu(p, WG.DZ), gw = pu(p, WG.GW), kpt = pi(p, WG.KPT), plane = pi(p, WG.PLANE);
  const kHW = kH * kW, K = C * kHW;
  const quads = (K + 3) >> 2;
  const chunks = (quads + kpt - 1) / kpt;
  let t = task;
  const kc = t % chunks; t /= chunks;
  const co = t % CO;
  const g = t / CO;
  const oc = g * CO + co;
  const rowBytes = <usize>(sH * S * PW) << 2;
  const HoWo = Ho * Wo;
  const Wo4 = Wo & ~3;
  const qEnd = imin(quads, (kc + 1) * kpt);
  for (let kq = kc * kpt; kq < qEnd; kq++) {
    const k0 = kq * 4;
    const k1 = imin(k0 + 1, K - 1), k2 = imin(k0 + 2, K - 1), k3 = imin(k0 + 3, K - 1);
    const o0 = xoff(k0, kHW, kW, plane, dH, dW, S, PW);
    const o1 = xoff(k1, kHW, kW, plane, dH, dW, S, PW);
    const o2 = xoff(k2, kHW, kW, plane, dH, dW, S, PW);
    const o3 = xoff(k3, kHW, kW, plane, dH, dW, S, PW);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
    for (let n = 0; n < N; n++) {
      const xn = at(x, (n * G + g) * C * plane);
      let x0p = at(xn, o0), x1p = at(xn, o1), x2p = at(xn, o2), x3p = at(xn, o3);
      let dp = at(dz, (n * G * CO + oc) * HoWo);
      for (let oh = 0; oh < Ho; oh++) {
        let ow = 0;
        for (; ow < Wo4; ow += 4) {
          const bo = <usize>ow << 2;
          const d = v128.load(dp + bo);
          a0 = f32x4.add(a0, f32x4.mul(d, v128.load(x0p + bo)));
          a1 = f32x4.add(a1, f32x4.mul(d, v128.load(x1p + bo)));
          a2 = f32x4.add(a2, f32x4.mul(d, v128.load(x2p + bo)));
          a3 = f32x4.add(a3, f32x4.mul(d, v128.load(x3p + bo)));
        }
        for (; ow < Wo; ow++) {
          const d = load<f32>(at(dp, ow));
          t0 += d * load<f32>(at(x0p, ow));
          t1 += d * load<f32>(at(x1p, ow));
          t2 += d * load<f32>(at(x2p, ow));
          t3 += d * load<f32>(at(x3p, ow));
        }
        x0p += rowBytes; x1p += rowBytes; x2p += rowBytes; x3p += rowBytes;
        dp += <usize>Wo << 2;
      }
    }
    store<f32>(at(gw, oc * K + k0), hsum(a0) + t0);
    if (k0 + 1 < K) store<f32>(at(gw, oc * K + k1), hsum(a1) + t1);
    if (k0 + 2 < K) store<f32>(at(gw, oc * K + k2), hsum(a2) + t2);
    if (k0 + 3 < K) store<f32>(at(gw, oc * K + k3), hsum(a3) + t3);
  }
}
