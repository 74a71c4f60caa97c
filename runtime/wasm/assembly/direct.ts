// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Direct convolution on packed input (forward and dgrad): direct4 and direct1. */
import { at, imin, pi, pu, storeN, storeStep } from './common';
import { fusedInput } from './pack';
import { CV } from './slots';

// ---------------------------------------------------------------------------
// Direct convolution on packed input ("valid" correlation, stride sH on rows,
// stride folded into phases on columns). Output [N][G*CO][Ho][Wo].
// The taps (kh, kw, c), in packed-weight order, are one flat loop over a
// table of byte offsets from the output row's input base (built by the host).
// Epilogue: out = acc + bias[oc]; if out2: out2 = (out - m2[oc]) * s2[oc] + b2[oc].
// Output pixel (image n, channel oc, oh, ow) sits at (n*G*CO + oc)*OPLANE + oh*OROW + ow*OSTEP
// floats from out (OSTEP 1, OROW Wo, OPLANE Ho*Wo: a dense tensor; a strided dgrad writes one
// stride phase of gx with OSTEP sW, OROW sH*W, OPLANE H*W).
// Tasks: n, g, row chunk, column chunk.
// ---------------------------------------------------------------------------

/** `step`: bytes between output pixels (4 unless a strided dgrad phase, which has no out2). */
@inline export function epilogue(p: usize, oc: i32, v: v128, op: usize, op2: usize, n: i32, step: usize): void {
  const bias = pu(p, CV.BIAS);
  if (bias != 0) v = f32x4.add(v, v128.load32_splat(at(bias, oc)));
  storeStep(op, v, n, step);
  if (op2 != 0) {
    const y = f32x4.add(
      f32x4.mul(f32x4.sub(v, v128.load32_splat(at(pu(p, CV.M2), oc))), v128.load32_splat(at(pu(p, CV.S2), oc))),
      v128.load32_splat(at(pu(p, CV.B2), oc)));
    storeN(op2, y, n);
  }
}

/** direct4 for a block of at most 4 pixels (row tails such as Wo = 28): 4 accumulators, no wasted half. */
export function direct4Narrow(
  p: usize, wp: usize, rowBase: usize, tab: usize, tabEnd: usize, inner: i32, chanBytes: usize,
  g: i32, CO: i32, b: i32, n: i32, G: i32, oPlane: i32, oh: i32, oRow: i32, ow0: i32, oStep: i32, cnt: i32,
  out: usize, out2: usize,
): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const step = <usize>inner * chanBytes;
  for (let tp = tab; tp < tabEnd; tp += 4) {
    let xp = rowBase + <usize>load<i32>(tp);
    const xe = xp + step;
    for (; xp < xe; xp += chanBytes) {
      const x0 = v128.load(xp);
      a0 = f32x4.add(a0, f32x4.mul(x0, v128.load32_splat(wp)));
      a1 = f32x4.add(a1, f32x4.mul(x0, v128.load32_splat(wp, 4)));
      a2 = f32x4.add(a2, f32x4.mul(x0, v128.load32_splat(wp, 8)));
      a3 = f32x4.add(a3, f32x4.mul(x0, v128.load32_splat(wp, 12)));
      wp += 16;
    }
  }
  const co0 = b * 4;
  const nv = imin(4, CO - co0);
  for (let i = 0; i < nv; i++) {
    const oc = g * CO + co0 + i;
    const off = (n * G * CO + oc) * oPlane + oh * oRow + ow0 * oStep;
    const v = i == 0 ? a0 : i == 1 ? a1 : i == 2 ? a2 : a3;
    epilogue(p, oc, v, at(out, off), out2 != 0 ? at(out2, off) : 0, cnt, <usize>oStep << 2);
  }
}

export function direct4Unit(p: usize, task: i32, tid: i32): void {
  const G = pi(p, CV.G), C = pi(p, CV.C), CO = pi(p, CV.CO);
  const S = pi(p, CV.S), PW = pi(p, CV.PW), kH = pi(p, CV.KH), kW = pi(p, CV.KW);
  const sH = pi(p, CV.SH), Ho = pi(p, CV.HO), Wo = pi(p, CV.WO);
  const x = pu(p, CV.X), w = pu(p, CV.W), out = pu(p, CV.OUT), out2 = pu(p, CV.OUT2);
  const rpt = pi(p, CV.RPT), cpt = pi(p, CV.CPT), plane = pi(p, CV.PLANE);
  const rowChunks = (Ho + rpt - 1) / rpt, colChunks = (Wo + cpt - 1) / cpt;
  let t = task;
  const cc = t % colChunks; t /= colChunks;
  const rc = t % rowChunks; t /= rowChunks;
  const g = t % G;
  const n = t / G;
  const r0 = rc * rpt, r1 = imin(Ho, r0 + rpt);
  const c0 = cc * cpt, c1 = imin(Wo, c0 + cpt);
  const nb = (CO + 3) >> 2;
  const rowPitch = S * PW;
  const xImg = pi(p, CV.FUSE) != 0
    ? fusedInput(p, tid, n, g, G, C, r0, r1, kH, sH, pi(p, CV.DH), S, PW)
    : at(x, (n * G + g) * C * plane);
  const K = kH * kW * C;
  const wG = at(w, g * nb * K * 4);
  // The tap table lists (kh, kw, c) offsets, or with INNER = C only (kh, kw): then c runs inside.
  const inner = pi(p, CV.INNER);
  const tab = pu(p, CV.TAB), tabEnd = tab + (<usize>(K / inner) << 2);
  const chanBytes = <usize>plane << 2;
  const oStep = pi(p, CV.OSTEP), oRow = pi(p, CV.OROW), oPlane = pi(p, CV.OPLANE);
  const stepBytes = <usize>oStep << 2;
  for (let oh = r0; oh < r1; oh++) {
    for (let ow0 = c0; ow0 < c1; ow0 += 8) {
      const cnt = imin(8, c1 - ow0);
      const rowBase = at(xImg, oh * sH * rowPitch + ow0);
      if (cnt <= 4) {
        for (let b = 0; b < nb; b++) {
          direct4Narrow(p, at(wG, b * K * 4), rowBase, tab, tabEnd, inner, chanBytes,
            g, CO, b, n, G, oPlane, oh, oRow, ow0, oStep, cnt, out, out2);
        }
        continue;
      }
      for (let b = 0; b < nb; b++) {
        let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
        let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
        let wp = at(wG, b * K * 4);
        if (inner == 1) {
          for (let tp = tab; tp < tabEnd; tp += 4) {
            const xp = rowBase + <usize>load<i32>(tp);
            const x0 = v128.load(xp), x1 = v128.load(xp, 16);
            let wv = v128.load32_splat(wp);
            a00 = f32x4.add(a00, f32x4.mul(x0, wv));
            a01 = f32x4.add(a01, f32x4.mul(x1, wv));
            wv = v128.load32_splat(wp, 4);
            a10 = f32x4.add(a10, f32x4.mul(x0, wv));
            a11 = f32x4.add(a11, f32x4.mul(x1, wv));
            wv = v128.load32_splat(wp, 8);
            a20 = f32x4.add(a20, f32x4.mul(x0, wv));
            a21 = f32x4.add(a21, f32x4.mul(x1, wv));
            wv = v128.load32_splat(wp, 12);
            a30 = f32x4.add(a30, f32x4.mul(x0, wv));
            a31 = f32x4.add(a31, f32x4.mul(x1, wv));
            wp += 16;
          }
        } else {
          for (let tp = tab; tp < tabEnd; tp += 4) {
            let xp = rowBase + <usize>load<i32>(tp);
            const xe = xp + <usize>inner * chanBytes;
            for (; xp < xe; xp += chanBytes) {
              const x0 = v128.load(xp), x1 = v128.load(xp, 16);
              let wv = v128.load32_splat(wp);
              a00 = f32x4.add(a00, f32x4.mul(x0, wv));
              a01 = f32x4.add(a01, f32x4.mul(x1, wv));
              wv = v128.load32_splat(wp, 4);
              a10 = f32x4.add(a10, f32x4.mul(x0, wv));
              a11 = f32x4.add(a11, f32x4.mul(x1, wv));
              wv = v128.load32_splat(wp, 8);
              a20 = f32x4.add(a20, f32x4.mul(x0, wv));
              a21 = f32x4.add(a21, f32x4.mul(x1, wv));
              wv = v128.load32_splat(wp, 12);
              a30 = f32x4.add(a30, f32x4.mul(x0, wv));
              a31 = f32x4.add(a31, f32x4.mul(x1, wv));
              wp += 16;
            }
          }
        }
        const co0 = b * 4;
        const nv = imin(4, CO - co0);
        const n0 = imin(4, cnt), n1 = cnt - 4;
        for (let i = 0; i < nv; i++) {
          const oc = g * CO + co0 + i;
          const off = (n * G * CO + oc) * oPlane + oh * oRow + ow0 * oStep;
          const op = at(out, off);
          const op2 = out2 != 0 ? at(out2, off) : 0;
          let v0 = a00, v1 = a01;
          if (i == 1) { v0 = a10; v1 = a11; } else if (i == 2) { v0 = a20; v1 = a21; } else if (i == 3) { v0 = a30; v1 = a31; }
          epilogue(p, oc, v0, op, op2, n0, stepBytes);
          if (n1 > 0) epilogue(p, oc, v1, op + (stepBytes << 2), op2 != 0 ? op2 + 16 : 0, n1, stepBytes);
        }
      }
    }
  }
}

/** One output channel x 16 pixels: for groups with few output channels (depthwise). Weights blk = 1. */
export function direct1Unit(p: usize, task: i32, tid: i32): void {
  const G = pi(p, CV.G), C = pi(p, CV.C), CO = pi(p, CV.CO);
  const S = pi(p, CV.S), PW = pi(p, CV.PW), kH = pi(p, CV.KH), kW = pi(p, CV.KW);
  const sH = pi(p, CV.SH), Ho = pi(p, CV.HO), Wo = pi(p, CV.WO);
  const x = pu(p, CV.X), w = pu(p, CV.W), out = pu(p, CV.OUT), out2 = pu(p, CV.OUT2);
  const rpt = pi(p, CV.RPT), cpt = pi(p, CV.CPT), plane = pi(p, CV.PLANE);
  const rowChunks = (Ho + rpt - 1) / rpt, colChunks = (Wo + cpt - 1) / cpt;
  let t = task;
  const cc = t % colChunks; t /= colChunks;
  const rc = t % rowChunks; t /= rowChunks;
  const g = t % G;
  const n = t / G;
  const r0 = rc * rpt, r1 = imin(Ho, r0 + rpt);
  const c0 = cc * cpt, c1 = imin(Wo, c0 + cpt);
  const rowPitch = S * PW;
  const xImg = pi(p, CV.FUSE) != 0
    ? fusedInput(p, tid, n, g, G, C, r0, r1, kH, sH, pi(p, CV.DH), S, PW)
    : at(x, (n * G + g) * C * plane);
  const oStep = pi(p, CV.OSTEP), oRow = pi(p, CV.OROW), oPlane = pi(p, CV.OPLANE);
  const stepBytes = <usize>oStep << 2, vecBytes = stepBytes << 2;
  const K = kH * kW * C;
  const tab = pu(p, CV.TAB), tabEnd = tab + (<usize>K << 2);
  for (let co = 0; co < CO; co++) {
    const oc = g * CO + co;
    const wb = at(w, oc * K);
    for (let oh = r0; oh < r1; oh++) {
      for (let ow0 = c0; ow0 < c1; ow0 += 16) {
        const cnt = imin(16, c1 - ow0);
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
        const rowBase = at(xImg, oh * sH * rowPitch + ow0);
        let wp = wb;
        for (let tp = tab; tp < tabEnd; tp += 4) {
          const xp = rowBase + <usize>load<i32>(tp);
          const wv = v128.load32_splat(wp);
          a0 = f32x4.add(a0, f32x4.mul(v128.load(xp), wv));
          a1 = f32x4.add(a1, f32x4.mul(v128.load(xp, 16), wv));
          a2 = f32x4.add(a2, f32x4.mul(v128.load(xp, 32), wv));
          a3 = f32x4.add(a3, f32x4.mul(v128.load(xp, 48), wv));
          wp += 4;
        }
        const off = (n * G * CO + oc) * oPlane + oh * oRow + ow0 * oStep;
        const op = at(out, off);
        const op2 = out2 != 0 ? at(out2, off) : 0;
        epilogue(p, oc, a0, op, op2, imin(4, cnt), stepBytes);
        if (cnt > 4) epilogue(p, oc, a1, op + vecBytes, op2 != 0 ? op2 + 16 : 0, imin(4, cnt - 4), stepBytes);
        if (cnt > 8) epilogue(p, oc, a2, op + 2 * vecBytes, op2 != 0 ? op2 + 32 : 0, imin(4, cnt - 8), stepBytes);
        if (cnt > 12) epilogue(p, oc, a3, op + 3 * vecBytes, op2 != 0 ? op2 + 48 : 0, cnt - 12, stepBytes);
      }
    }
  }
}

/**
 * A task is UPT consecutive units; a unit is (n, g, row chunk, column chunk),
 * column chunk fastest: small per-plane units (depthwise) are batched so the
 * threads do not fight over the task counter.
 */
export function conv_direct4(p: usize, task: i32, tid: i32): void {
  const upt = pi(p, CV.UPT), units = pi(p, CV.UNITS);
  const u1 = imin(units, (task + 1) * upt);
  for (let u = task * upt; u < u1; u++) direct4Unit(p, u, tid);
}

export function conv_direct1(p: usize, task: i32, tid: i32): void {
  const upt = pi(p, CV.UPT), units = pi(p, CV.UNITS);
  const u1 = imin(units, (task + 1) * upt);
  for (let u = task * upt; u < u1; u++) direct1Unit(p, u, tid);
}
