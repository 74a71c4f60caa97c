// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Weight gradient with channels innermost (the default for dense layers), its partial sums and gather. */
import { at, imax, imin, pi, pu } from './common';
import { transpose4, transposeQuad } from './transpose';
import { WN } from './slots';

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

/** dst[c][0..7] = src_k[c] (k = 0..7: rows `plane` bytes apart) for columns c in [0, n): whole 32-byte records. */
export function transpose8(src: usize, plane: usize, dst: usize, n: i32): void {
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
export function packXRow(p: usize, ng: i32, r: i32, dst: usize, blockBytes: usize): void {
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
export function packDzRow(p: usize, ng: i32, oh: i32, dst: usize, blockBytes: usize, sums: usize): void {
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
