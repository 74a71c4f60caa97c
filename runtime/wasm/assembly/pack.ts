// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Input and weight packing for the direct convolutions. */
import { at, imin, pi, pu } from './common';
import { CV, PK, PWT } from './slots';

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
export function packRows(
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
export function fusedInput(p: usize, tid: i32, n: i32, g: i32, G: i32, C: i32, r0: i32, r1: i32, kH: i32, sH: i32, dH: i32, S: i32, PW: i32): usize {
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
