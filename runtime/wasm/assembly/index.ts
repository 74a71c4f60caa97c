// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/**
 * convbn WebAssembly kernels (AssemblyScript, 128-bit SIMD).
 *
 * Every export has the signature (params: usize, task: i32): the host writes
 * an i32/f32 parameter block into wasm memory and runs tasks 0..n-1 spread over
 * threads. A task always does the same arithmetic whichever thread runs it, and
 * every reduction is split in a fixed way (per task, then in task order), so
 * results do not depend on the thread count.
 *
 * No allocation happens here (--runtime stub): the host owns the memory.
 * Parameter slots (PK.PLANES, CV.FUSE, ...) come from runtime/wasm/layout.ts, generated into ./slots.
 */
import { BN, CV, PK, PWT, SC, WG, WG_ACC_BYTES, WN } from './slots';

@inline function pi(p: usize, i: i32): i32 { return load<i32>(p + (<usize>i << 2)); }
@inline function pu(p: usize, i: i32): usize { return <usize>load<u32>(p + (<usize>i << 2)); }
@inline function pf(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
/** Address of float element i. */
@inline function at(base: usize, i: i32): usize { return base + (<usize>i << 2); }
@inline function imin(a: i32, b: i32): i32 { return a < b ? a : b; }
@inline function imax(a: i32, b: i32): i32 { return a > b ? a : b; }

@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline function storeN(p: usize, v: v128, n: i32): void {
  if (n >= 4) { v128.store(p, v); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** storeN with `step` bytes between the lanes' floats (4: contiguous). */
@inline function storeStep(p: usize, v: v128, n: i32, step: usize): void {
  if (step == 4) { storeN(p, v, n); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p + step, f32x4.extract_lane(v, 1));
  if (n > 2) store<f32>(p + 2 * step, f32x4.extract_lane(v, 2));
  if (n > 3) store<f32>(p + 3 * step, f32x4.extract_lane(v, 3));
}

// ---------------------------------------------------------------------------
// Input packing: zero padding, zero insertion (for transposed convs) and
// stride-phase split, so the SIMD kernels read unit-stride rows with no bounds.
// dst[plane][r][ph][j] = src[plane][(r - padT) / upH][(j*S + ph - padL) / upW]
// when both divisions are exact and in range, else 0.
// ---------------------------------------------------------------------------

export function pack_input(p: usize, task: i32, tid: i32): void {
  const planes = pi(p, PK.PLANES), srcH = pi(p, PK.SRCH), srcW = pi(p, PK.SRCW);
  const upH = pi(p, PK.UPH), upW = pi(p, PK.UPW), padT = pi(p, PK.PADT), padL = pi(p, PK.PADL);
  const R = pi(p, PK.R), S = pi(p, PK.S), PW = pi(p, PK.PW);
  const src = pu(p, PK.SRC), dst = pu(p, PK.DST), ppt = pi(p, PK.PPT);
  const p0 = task * ppt, p1 = imin(planes, p0 + ppt);
  for (let pl = p0; pl < p1; pl++) {
    packRows(at(src, pl * srcH * srcW), at(dst, pl * R * S * PW), 0, R, srcH, srcW, upH, upW, padT, padL, S, PW);
  }
}

/** Rows r0 .. r0+count-1 of one packed plane (see pack_input), written from dbase on. */
function packRows(
  sbase: usize, dbase: usize, r0: i32, count: i32, srcH: i32, srcW: i32, upH: i32, upW: i32,
  padT: i32, padL: i32, S: i32, PW: i32,
): void {
  const rowLen = S * PW;
  for (let r = r0; r < r0 + count; r++) {
    const drow = at(dbase, (r - r0) * rowLen);
    const ru = r - padT;
    let sr = -1;
    if (ru >= 0 && ru % upH == 0) {
      const q = ru / upH;
      if (q < srcH) sr = q;
    }
    if (sr < 0) {
      memory.fill(drow, 0, <usize>rowLen << 2);
      continue;
    }
    const srow = at(sbase, sr * srcW);
    if (upW == 1) {
      for (let ph = 0; ph < S; ph++) {
        const dph = at(drow, ph * PW);
        // j*S + ph - padL in [0, srcW)  <=>  j in [lo, hi)
        const first = padL - ph;
        let lo = first > 0 ? (first + S - 1) / S : 0;
        let hi = (srcW + padL - ph + S - 1) / S;
        if (hi > PW) hi = PW;
        if (lo > PW) lo = PW;
        if (hi < lo) hi = lo;
        if (S == 1) {
          // Rows here are short (a depthwise plane is tens of floats): vector moves and single stores beat
          // memory.fill / memory.copy calls.
          for (let j = 0; j < lo; j++) store<f32>(at(dph, j), 0);
          let d = at(dph, lo), sp = at(srow, lo - padL);
          const dEnd = at(dph, hi);
          for (; d + 16 <= dEnd; d += 16, sp += 16) v128.store(d, v128.load(sp));
          for (; d < dEnd; d += 4, sp += 4) store<f32>(d, load<f32>(sp));
          for (let j = hi; j < PW; j++) store<f32>(at(dph, j), 0);
          continue;
        }
        if (lo > 0) memory.fill(dph, 0, <usize>lo << 2);
        {
          let sp = at(srow, lo * S + ph - padL);
          const step = <usize>S << 2;
          for (let j = lo; j < hi; j++) {
            store<f32>(at(dph, j), load<f32>(sp));
            sp += step;
          }
        }
        if (hi < PW) memory.fill(at(dph, hi), 0, <usize>(PW - hi) << 2);
      }
    } else {
      for (let ph = 0; ph < S; ph++) {
        const dph = at(drow, ph * PW);
        for (let j = 0; j < PW; j++) {
          const cu = j * S + ph - padL;
          let v: f32 = 0;
          if (cu >= 0 && cu % upW == 0) {
            const q = cu / upW;
            if (q < srcW) v = load<f32>(at(srow, q));
          }
          store<f32>(at(dph, j), v);
        }
      }
    }
  }
}

/**
 * Fused packing (CV.FUSE != 0): x is the unpacked source; the task packs the
 * input rows its output rows r0..r1-1 read, for the C channels of (n, g),
 * into this thread's scratch, and returns the address that plays the packed
 * image base (row 0 of the packed plane; only rows from r0*sH on are touched).
 */
function fusedInput(p: usize, tid: i32, n: i32, g: i32, G: i32, C: i32, r0: i32, r1: i32, kH: i32, sH: i32, dH: i32, S: i32, PW: i32): usize {
  const srcH = pi(p, CV.SRCH), srcW = pi(p, CV.SRCW);
  const first = r0 * sH;
  const count = (r1 - 1) * sH + (kH - 1) * dH + 1 - first;
  const planeBytes = <usize>pi(p, CV.PLANE) << 2; // channel pitch: rows of the tallest task
  const scratch = pu(p, CV.SCRATCH) + <usize>tid * pu(p, CV.SSTRIDE);
  const x = pu(p, CV.X);
  for (let c = 0; c < C; c++) {
    packRows(at(x, ((n * G + g) * C + c) * srcH * srcW), scratch + <usize>c * planeBytes, first, count,
      srcH, srcW, pi(p, CV.UPH), pi(p, CV.UPW), pi(p, CV.PADT), pi(p, CV.PADL), S, PW);
  }
  // Packed row r of channel 0 sits at scratch + (r - first) rows.
  return scratch - (<usize>(first * S * PW) << 2);
}

// ---------------------------------------------------------------------------
// Weight packing (one task per group). The conv problem has G groups, C input
// and CO output channels per group and a kH x kW kernel.
// layout 0: OIHW copy, times scale[o] when scale != 0.
// layout 1: forward blocks  dst[g][cob][kh][kw][c][blk] = W[g*CO+co][c][kh][kw] * scale[g*CO+co]
// layout 2: transposed (dgrad) blocks from W of shape [G*C][CO][SKH][SKW] (the
//           original forward weights), flipped and strided:
//           W[g*C+c][co][KH0 - kh*KHS][KW0 - kw*KWS] * scale[g*C+c] for kh < kH, kw < kW
//           (KH0 = SKH-1, KHS = 1: the whole kernel flipped; a strided dgrad's stride phase
//           takes every KHS-th tap from KH0 down)
// Output channels past CO in the last block are zero.
// ---------------------------------------------------------------------------

export function pack_weights(p: usize, task: i32, tid: i32): void {
  const CO = pi(p, PWT.CO), C = pi(p, PWT.C), kH = pi(p, PWT.KH), kW = pi(p, PWT.KW);
  const src = pu(p, PWT.SRC), scale = pu(p, PWT.SCALE), dst = pu(p, PWT.DST);
  const layout = pi(p, PWT.LAYOUT), blk = pi(p, PWT.BLK);
  const K = kH * kW;
  const g = task;
  if (layout == 0) {
    const per = C * K;
    for (let o = g * CO; o < (g + 1) * CO; o++) {
      const s: f32 = scale != 0 ? load<f32>(at(scale, o)) : 1;
      for (let i = 0; i < per; i++) store<f32>(at(dst, o * per + i), load<f32>(at(src, o * per + i)) * s);
    }
    return;
  }
  const nb = (CO + blk - 1) / blk;
  for (let b = 0; b < nb; b++) {
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        for (let c = 0; c < C; c++) {
          for (let i = 0; i < blk; i++) {
            const co = b * blk + i;
            const d = ((((g * nb + b) * kH + kh) * kW + kw) * C + c) * blk + i;
            let v: f32 = 0;
            if (co < CO) {
              if (layout == 1) {
                const o = g * CO + co;
                v = load<f32>(at(src, ((o * C + c) * kH + kh) * kW + kw));
                if (scale != 0) v *= load<f32>(at(scale, o));
              } else {
                const o = g * C + c;
                const sh = pi(p, PWT.KH0) - kh * pi(p, PWT.KHS), sw = pi(p, PWT.KW0) - kw * pi(p, PWT.KWS);
                v = load<f32>(at(src, ((o * CO + co) * pi(p, PWT.SKH) + sh) * pi(p, PWT.SKW) + sw));
                if (scale != 0) v *= load<f32>(at(scale, o));
              }
            }
            store<f32>(at(dst, d), v);
          }
        }
      }
    }
  }
}

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
@inline function epilogue(p: usize, oc: i32, v: v128, op: usize, op2: usize, n: i32, step: usize): void {
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
function direct4Narrow(
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

function direct4Unit(p: usize, task: i32, tid: i32): void {
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
function direct1Unit(p: usize, task: i32, tid: i32): void {
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

// ---------------------------------------------------------------------------
// Scalar generic paths on unpacked NCHW / OIHW data: every config, bounds checked.
// ---------------------------------------------------------------------------

/** Task (n, oc). A = x, B = weights (OIHW). */
export function conv_scalar(p: usize, task: i32, tid: i32): void {
  const Cin = pi(p, SC.CIN), Cout = pi(p, SC.COUT), H = pi(p, SC.H), W = pi(p, SC.W);
  const kH = pi(p, SC.KH), kW = pi(p, SC.KW), sH = pi(p, SC.SH), sW = pi(p, SC.SW);
  const pT = pi(p, SC.PT), pL = pi(p, SC.PL), dH = pi(p, SC.DH), dW = pi(p, SC.DW), G = pi(p, SC.G);
  const Ho = pi(p, SC.HO), Wo = pi(p, SC.WO);
  const x = pu(p, SC.A), w = pu(p, SC.B), out = pu(p, SC.OUT), bias = pu(p, SC.BIAS), out2 = pu(p, SC.OUT2);
  const n = task / Cout, oc = task % Cout;
  const Cig = Cin / G, Cog = Cout / G, g = oc / Cog;
  const b: f32 = bias != 0 ? load<f32>(at(bias, oc)) : 0;
  let m2: f32 = 0, s2: f32 = 0, b2: f32 = 0;
  if (out2 != 0) {
    m2 = load<f32>(at(pu(p, SC.M2), oc)); s2 = load<f32>(at(pu(p, SC.S2), oc)); b2 = load<f32>(at(pu(p, SC.B2), oc));
  }
  for (let oh = 0; oh < Ho; oh++) {
    for (let ow = 0; ow < Wo; ow++) {
      let acc: f32 = 0;
      for (let ci = 0; ci < Cig; ci++) {
        const ic = g * Cig + ci;
        for (let kh = 0; kh < kH; kh++) {
          const ih = oh * sH - pT + kh * dH;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < kW; kw++) {
            const iw = ow * sW - pL + kw * dW;
            if (iw < 0 || iw >= W) continue;
            acc += load<f32>(at(x, ((n * Cin + ic) * H + ih) * W + iw)) *
              load<f32>(at(w, ((oc * Cig + ci) * kH + kh) * kW + kw));
          }
        }
      }
      const v = acc + b;
      const off = ((n * Cout + oc) * Ho + oh) * Wo + ow;
      store<f32>(at(out, off), v);
      if (out2 != 0) store<f32>(at(out2, off), (v - m2) * s2 + b2);
    }
  }
}

/** Task (n, ic): gx = sum over the taps that read it. A = dz, B = weights (OIHW), OUT = gx. */
export function dgrad_scalar(p: usize, task: i32, tid: i32): void {
  const Cin = pi(p, SC.CIN), Cout = pi(p, SC.COUT), H = pi(p, SC.H), W = pi(p, SC.W);
  const kH = pi(p, SC.KH), kW = pi(p, SC.KW), sH = pi(p, SC.SH), sW = pi(p, SC.SW);
  const pT = pi(p, SC.PT), pL = pi(p, SC.PL), dH = pi(p, SC.DH), dW = pi(p, SC.DW), G = pi(p, SC.G);
  const Ho = pi(p, SC.HO), Wo = pi(p, SC.WO);
  const dz = pu(p, SC.A), w = pu(p, SC.B), gx = pu(p, SC.OUT);
  const n = task / Cin, ic = task % Cin;
  const Cig = Cin / G, Cog = Cout / G, g = ic / Cig, ci = ic % Cig;
  for (let ih = 0; ih < H; ih++) {
    for (let iw = 0; iw < W; iw++) {
      let acc: f32 = 0;
      for (let co = 0; co < Cog; co++) {
        const oc = g * Cog + co;
        for (let kh = 0; kh < kH; kh++) {
          const th = ih + pT - kh * dH;
          if (th < 0 || th % sH != 0) continue;
          const oh = th / sH;
          if (oh >= Ho) continue;
          for (let kw = 0; kw < kW; kw++) {
            const tw = iw + pL - kw * dW;
            if (tw < 0 || tw % sW != 0) continue;
            const ow = tw / sW;
            if (ow >= Wo) continue;
            acc += load<f32>(at(dz, ((n * Cout + oc) * Ho + oh) * Wo + ow)) *
              load<f32>(at(w, ((oc * Cig + ci) * kH + kh) * kW + kw));
          }
        }
      }
      store<f32>(at(gx, ((n * Cin + ic) * H + ih) * W + iw), acc);
    }
  }
}

/** Task oc: gw[oc][ci][kh][kw] = sum over n, pixels of dz * x (f64 accumulation). A = x, B = dz, OUT = gw. */
export function wgrad_scalar(p: usize, task: i32, tid: i32): void {
  const N = pi(p, SC.N), Cin = pi(p, SC.CIN), Cout = pi(p, SC.COUT), H = pi(p, SC.H), W = pi(p, SC.W);
  const kH = pi(p, SC.KH), kW = pi(p, SC.KW), sH = pi(p, SC.SH), sW = pi(p, SC.SW);
  const pT = pi(p, SC.PT), pL = pi(p, SC.PL), dH = pi(p, SC.DH), dW = pi(p, SC.DW), G = pi(p, SC.G);
  const Ho = pi(p, SC.HO), Wo = pi(p, SC.WO);
  const x = pu(p, SC.A), dz = pu(p, SC.B), gw = pu(p, SC.OUT);
  const oc = task;
  const Cig = Cin / G, Cog = Cout / G, g = oc / Cog;
  for (let ci = 0; ci < Cig; ci++) {
    const ic = g * Cig + ci;
    for (let kh = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        let acc: f64 = 0;
        for (let n = 0; n < N; n++) {
          for (let oh = 0; oh < Ho; oh++) {
            const ih = oh * sH - pT + kh * dH;
            if (ih < 0 || ih >= H) continue;
            for (let ow = 0; ow < Wo; ow++) {
              const iw = ow * sW - pL + kw * dW;
              if (iw < 0 || iw >= W) continue;
              acc += <f64>load<f32>(at(dz, ((n * Cout + oc) * Ho + oh) * Wo + ow)) *
                <f64>load<f32>(at(x, ((n * Cin + ic) * H + ih) * W + iw));
            }
          }
        }
        store<f32>(at(gw, ((oc * Cig + ci) * kH + kh) * kW + kw), <f32>acc);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// SIMD weight gradient on packed x (forward packing) and unpacked dz.
// gw[g*CO+co][k], k = (ci, kh, kw), reduced over n, oh, ow in a fixed order.
// ---------------------------------------------------------------------------

@inline function xoff(k: i32, kHW: i32, kW: i32, plane: i32, dH: i32, dW: i32, S: i32, PW: i32): i32 {
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

// ---------------------------------------------------------------------------
// Weight gradient with channels innermost ("nhwc"): x and dz are transposed
// so that gW[co][ci..ci+7] for one tap is a vector sum of
// splat(dz[p][co]) * x[p + tap][ci..ci+7] over pixels p: the forward kernel's
// shape (2 vector loads + 4 broadcasts per 8 multiply-adds, one pointer each).
// The transposed rows are channel-blocked (8 x channels, 4 dz channels per
// pixel record), so a pass streams contiguous rows.
// Each task transposes the rows of its chunk of output rows into its thread's
// scratch and sums them into its own partial gW; a second job adds the
// partials in task order.
// ---------------------------------------------------------------------------

/** 4 columns of 4 source rows as 4 destination vectors (a 4x4 transpose), stored `dstride` bytes apart. */
// @ts-ignore: decorator
@inline function transposeQuad(s0: usize, s1: usize, s2: usize, s3: usize, d: usize, dstride: usize): void {
  const v0 = v128.load(s0), v1 = v128.load(s1), v2 = v128.load(s2), v3 = v128.load(s3);
  const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(d + dstride, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
  v128.store(d + 2 * dstride, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
  v128.store(d + 3 * dstride, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
}

/**
 * dst[c][k] = src_k[c] for 4 source rows (k = 0..3) and columns c in [0, n):
 * 4x4 SIMD transposes, then scalar columns. dst rows are `dstride` bytes apart.
 */
function transpose4(s0: usize, s1: usize, s2: usize, s3: usize, dst: usize, dstride: usize, n: i32): void {
  let c = 0;
  for (; c + 4 <= n; c += 4) {
    const o = <usize>c << 2;
    transposeQuad(s0 + o, s1 + o, s2 + o, s3 + o, dst + <usize>c * dstride, dstride);
  }
  for (; c < n; c++) {
    const o = <usize>c << 2;
    const d = dst + <usize>c * dstride;
    store<f32>(d, load<f32>(s0 + o));
    store<f32>(d, load<f32>(s1 + o), 4);
    store<f32>(d, load<f32>(s2 + o), 8);
    store<f32>(d, load<f32>(s3 + o), 12);
  }
}

/** dst[c][0..7] = src_k[c] (k = 0..7: rows `plane` bytes apart) for columns c in [0, n): whole 32-byte records. */
function transpose8(src: usize, plane: usize, dst: usize, n: i32): void {
  let c = 0;
  for (; c + 4 <= n; c += 4) {
    const s = src + (<usize>c << 2), d = dst + (<usize>c << 5);
    transposeQuad(s, s + plane, s + 2 * plane, s + 3 * plane, d, 32);
    transposeQuad(s + 4 * plane, s + 5 * plane, s + 6 * plane, s + 7 * plane, d + 16, 32);
  }
  for (; c < n; c++) {
    const s = src + (<usize>c << 2), d = dst + (<usize>c << 5);
    for (let k = 0; k < 8; k++) store<f32>(d + (<usize>k << 2), load<f32>(s + <usize>k * plane));
  }
}

/**
 * Row r of the padded x plane of (n, g) = ng, channels innermost in blocks of 8:
 * dst[cib][c][8] = x[n][g*C + 8*cib + j][r - padT][c - padL] (0 outside, and for ci >= C),
 * the blocks `blockBytes` apart, so that one wgrad pass (8 input channels) reads contiguous memory.
 */
function packXRow(p: usize, ng: i32, r: i32, dst: usize, blockBytes: usize): void {
  const C = pi(p, WN.C), Cp = pi(p, WN.CP), Wp = pi(p, WN.WP);
  const H = pi(p, WN.H), W = pi(p, WN.W), padT = pi(p, WN.PADT), padL = pi(p, WN.PADL);
  const nbc = Cp >> 3;
  const rowBytes = <usize>(Wp * 8) << 2;
  const ih = r - padT;
  const lo = imax(0, padL), hi = imin(Wp, padL + W);
  if (ih < 0 || ih >= H || hi <= lo) {
    for (let b = 0; b < nbc; b++) memory.fill(dst + <usize>b * blockBytes, 0, rowBytes);
    return;
  }
  // Zero only what the copy below leaves: padding columns, and a last block's channels past C.
  for (let b = 0; b < nbc; b++) {
    const row = dst + <usize>b * blockBytes;
    if (b * 8 + 8 > C) {
      memory.fill(row, 0, rowBytes);
    } else {
      memory.fill(row, 0, <usize>lo << 5);
      memory.fill(row + (<usize>hi << 5), 0, <usize>(Wp - hi) << 5);
    }
  }
  const plane = <usize>(H * W) << 2;
  const src0 = at(pu(p, WN.X), ng * C * H * W + ih * W + lo - padL);
  const d0 = dst + (<usize>lo << 5);
  let ci = 0;
  for (; ci + 8 <= C; ci += 8) transpose8(src0 + <usize>ci * plane, plane, d0 + <usize>(ci >> 3) * blockBytes, hi - lo);
  for (; ci + 4 <= C; ci += 4) {
    const sp = src0 + <usize>ci * plane;
    const dp = d0 + <usize>(ci >> 3) * blockBytes + (<usize>(ci & 7) << 2);
    transpose4(sp, sp + plane, sp + 2 * plane, sp + 3 * plane, dp, 32, hi - lo);
  }
  for (; ci < C; ci++) {
    let sp = src0 + <usize>ci * plane;
    let dp = d0 + <usize>(ci >> 3) * blockBytes + (<usize>(ci & 7) << 2);
    for (let c = lo; c < hi; c++) {
      store<f32>(dp, load<f32>(sp));
      sp += 4;
      dp += 32;
    }
  }
}

/**
 * Row oh of dz of (n, g) = ng in blocks of 4 channels: dst[cob][ow][4] = dz[n][g*CO + 4*cob + j][oh][ow]
 * (0 for co >= CO), the blocks `blockBytes` apart. `sums` != 0: also sums[co] = the row's sum per channel,
 * read back from the block just written (in L1), so the bias gradient needs no pass of its own over dz.
 */
function packDzRow(p: usize, ng: i32, oh: i32, dst: usize, blockBytes: usize, sums: usize): void {
  const CO = pi(p, WN.CO), Cq = pi(p, WN.CQ), Ho = pi(p, WN.HO), Wo = pi(p, WN.WO);
  const nbq = Cq >> 2;
  const rowBytes = <usize>(Wo * 4) << 2;
  const plane = <usize>(Ho * Wo) << 2;
  const src0 = at(pu(p, WN.DZ), ng * CO * Ho * Wo + oh * Wo);
  let co = 0;
  for (; co + 4 <= CO; co += 4) {
    const sp = src0 + <usize>co * plane;
    transpose4(sp, sp + plane, sp + 2 * plane, sp + 3 * plane, dst + <usize>(co >> 2) * blockBytes, 16, Wo);
  }
  if (co < CO) {
    const db = dst + <usize>(co >> 2) * blockBytes;
    memory.fill(db, 0, rowBytes);
    for (let j = 0; co < CO; co++, j++) {
      let sp = src0 + <usize>co * plane;
      let dp = db + (<usize>j << 2);
      for (let ow = 0; ow < Wo; ow++) {
        store<f32>(dp, load<f32>(sp));
        sp += 4;
        dp += 16;
      }
    }
  }
  if (sums == 0) return;
  for (let b = 0; b < nbq; b++) {
    const row = dst + <usize>b * blockBytes;
    let acc = f32x4.splat(0);
    for (let q = row; q < row + rowBytes; q += 16) acc = f32x4.add(acc, v128.load(q));
    v128.store(sums + (<usize>b << 4), acc);
  }
}

/** out[g*CO + co] = sum over n, oh of sums[(n*G + g)*Ho + oh][co] (the dz row sums), in f64, in order. Task = channel. */
export function wgrad_nhwc_chan_sums(p: usize, oc: i32, tid: i32): void {
  const N = pi(p, WN.N), G = pi(p, WN.G), CO = pi(p, WN.CO), Cq = pi(p, WN.CQ), Ho = pi(p, WN.HO);
  const sums = pu(p, WN.SUMS), out = pu(p, WN.SUMS_OUT);
  const g = oc / CO, co = oc % CO;
  let s: f64 = 0;
  for (let n = 0; n < N; n++) {
    const rows = (n * G + g) * Ho;
    for (let oh = 0; oh < Ho; oh++) s += <f64>load<f32>(at(sums, (rows + oh) * Cq + co));
  }
  store<f32>(at(out, oc), <f32>s);
}

/**
 * Partial gW of output rows oh0..oh1-1 of image n. Partial layout [g][cob][tap][cib][4 co][8 ci].
 * Per group, the task first packs the x rows its chunk reads and the chunk's dz rows, channels
 * innermost, into its thread's scratch (sized to stay in L2; x and dz get no transposed copies in
 * memory). Then a pass (cob, cib, tap) runs over the chunk's rows with its 8 accumulators in
 * registers and stores them once; its x and dz blocks are contiguous rows, read in order.
 */
export function wgrad_nhwc(p: usize, task: i32, tid: i32): void {
  const G = pi(p, WN.G), Cp = pi(p, WN.CP), Cq = pi(p, WN.CQ), Wp = pi(p, WN.WP);
  const kH = pi(p, WN.KH), kW = pi(p, WN.KW), sH = pi(p, WN.SH), sW = pi(p, WN.SW);
  const dH = pi(p, WN.DH), dW = pi(p, WN.DW), Ho = pi(p, WN.HO), Wo = pi(p, WN.WO);
  const ohc = pi(p, WN.OHC), sums = pu(p, WN.SUMS);
  const chunks = (Ho + ohc - 1) / ohc;
  const n = task / chunks;
  const oh0 = (task % chunks) * ohc, oh1 = imin(Ho, oh0 + ohc);
  const rows = oh1 - oh0;
  const xRows = (rows - 1) * sH + (kH - 1) * dH + 1;
  const T = kH * kW, nbq = Cq >> 2, nbc = Cp >> 3;
  const partFloats = G * Cq * T * Cp;
  const part = pu(p, WN.PART) + (<usize>task * <usize>partFloats << 2);
  const xStep = <usize>sW << 5, xRowBytes = <usize>Wp << 5, xRowStep = <usize>sH * xRowBytes, dRowBytes = <usize>Wo << 4;
  const xBlockBytes = <usize>xRows * xRowBytes, dBlockBytes = <usize>rows * dRowBytes;
  const xs = pu(p, WN.SCRATCH) + <usize>tid * <usize>pi(p, WN.SSTRIDE);
  const ds = xs + <usize>nbc * xBlockBytes;
  for (let g = 0; g < G; g++) {
    const ng = n * G + g;
    for (let r = 0; r < xRows; r++) packXRow(p, ng, oh0 * sH + r, xs + <usize>r * xRowBytes, xBlockBytes);
    for (let oh = oh0; oh < oh1; oh++) {
      packDzRow(p, ng, oh, ds + <usize>(oh - oh0) * dRowBytes, dBlockBytes, sums != 0 ? at(sums, (ng * Ho + oh) * Cq) : 0);
    }
    for (let cob = 0; cob < nbq; cob++) {
      const dzBlock = ds + <usize>cob * dBlockBytes;
      for (let cib = 0; cib < nbc; cib++) {
        const xBlock = xs + <usize>cib * xBlockBytes;
        for (let kh = 0; kh < kH; kh++) {
          for (let kw = 0; kw < kW; kw++) {
            const tap = kh * kW + kw;
            const tile = part + (<usize>((((g * nbq + cob) * T + tap) * nbc + cib)) << 7);
            let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
            let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
            let xRow = xBlock + (<usize>(kh * dH * Wp + kw * dW) << 5);
            let dRow = dzBlock;
            for (let r = 0; r < rows; r++) {
              let xp = xRow;
              const dEnd = dRow + dRowBytes;
              for (let dp = dRow; dp < dEnd; dp += 16) {
                const x0 = v128.load(xp), x1 = v128.load(xp, 16);
                let wv = v128.load32_splat(dp);
                a00 = f32x4.add(a00, f32x4.mul(x0, wv));
                a01 = f32x4.add(a01, f32x4.mul(x1, wv));
                wv = v128.load32_splat(dp, 4);
                a10 = f32x4.add(a10, f32x4.mul(x0, wv));
                a11 = f32x4.add(a11, f32x4.mul(x1, wv));
                wv = v128.load32_splat(dp, 8);
                a20 = f32x4.add(a20, f32x4.mul(x0, wv));
                a21 = f32x4.add(a21, f32x4.mul(x1, wv));
                wv = v128.load32_splat(dp, 12);
                a30 = f32x4.add(a30, f32x4.mul(x0, wv));
                a31 = f32x4.add(a31, f32x4.mul(x1, wv));
                xp += xStep;
              }
              xRow += xRowStep;
              dRow = dEnd;
            }
            v128.store(tile, a00); v128.store(tile, a01, 16); v128.store(tile, a10, 32); v128.store(tile, a11, 48);
            v128.store(tile, a20, 64); v128.store(tile, a21, 80); v128.store(tile, a30, 96); v128.store(tile, a31, 112);
          }
        }
      }
    }
  }
}

/** partial[0][i] = sum over tasks t of partial[t][i], t in order, for i in the task's chunk of WN.OPT floats. */
export function wgrad_nhwc_sum(p: usize, task: i32, tid: i32): void {
  const G = pi(p, WN.G), Cp = pi(p, WN.CP), Cq = pi(p, WN.CQ), kH = pi(p, WN.KH), kW = pi(p, WN.KW);
  const tasks = pi(p, WN.TASKS), chunk = pi(p, WN.OPT);
  const partFloats = G * Cq * kH * kW * Cp;
  const i0 = task * chunk, i1 = imin(partFloats, i0 + chunk);
  const part = pu(p, WN.PART);
  const stride = <usize>partFloats << 2;
  for (let i = i0; i < i1; i += 4) {
    const a = at(part, i);
    let v = v128.load(a);
    let q = a;
    for (let t = 1; t < tasks; t++) {
      q += stride;
      v = f32x4.add(v, v128.load(q));
    }
    v128.store(a, v);
  }
}

/** gW[g*CO+co][ci][kh][kw] from the summed partial (layout [g][cob][tap][cib][4 co][8 ci]). Task = output channel. */
export function wgrad_nhwc_gather(p: usize, oc: i32, tid: i32): void {
  const C = pi(p, WN.C), CO = pi(p, WN.CO), Cp = pi(p, WN.CP), Cq = pi(p, WN.CQ);
  const kH = pi(p, WN.KH), kW = pi(p, WN.KW);
  const part = pu(p, WN.PART), gw = pu(p, WN.GW);
  const T = kH * kW, nbq = Cq >> 2, nbc = Cp >> 3;
  const g = oc / CO, co = oc % CO;
  const cob = co >> 2, i = co & 3;
  for (let ci = 0; ci < C; ci++) {
    const cib = ci >> 3, j = ci & 7;
    for (let tap = 0; tap < T; tap++) {
      const idx = ((((g * nbq + cob) * T + tap) * nbc + cib) << 5) + i * 8 + j;
      store<f32>(at(gw, (oc * C + ci) * T + tap), load<f32>(at(part, idx)));
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

// ---------------------------------------------------------------------------
// Per-channel BatchNorm kernels: one task per channel, every sum in f64 (a
// per-channel sum can cancel to a small rest that float32 blocks would lose).
// ---------------------------------------------------------------------------

/** dst = (src - m) * s + b */
function affine(src: usize, dst: usize, n: i32, m: f32, s: f32, b: f32): void {
  const vm = f32x4.splat(m), vs = f32x4.splat(s), vb = f32x4.splat(b);
  let i = 0;
  const n4 = n & ~3;
  for (; i < n4; i += 4) {
    v128.store(at(dst, i), f32x4.add(f32x4.mul(f32x4.sub(v128.load(at(src, i)), vm), vs), vb));
  }
  for (; i < n; i++) store<f32>(at(dst, i), (load<f32>(at(src, i)) - m) * s + b);
}


/** sum a, in f64 (train mode: the batch statistics and their gradients must not cancel to float32 noise). */
function sum64(a: usize, n: i32): f64 {
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
function dev64(a: usize, ma: f64, b: usize, mb: f64, n: i32): f64 {
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
