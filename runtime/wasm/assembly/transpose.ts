// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/** Transposes: 4x4 SIMD blocks (also used by the channels-innermost wgrad) and the NHWC <-> NCHW kernel. */
import { imin, pi, pu } from './common';
import { TP } from './slots';

/** 4 columns of 4 source rows as 4 destination vectors (a 4x4 transpose), stored `dstride` bytes apart. */
// @ts-ignore: decorator
@inline export function transposeQuad(s0: usize, s1: usize, s2: usize, s3: usize, d: usize, dstride: usize): void {
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
export function transpose4(s0: usize, s1: usize, s2: usize, s3: usize, dst: usize, dstride: usize, n: i32): void {
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

/** Columns per tile: a tile's 4 source rows and the destination rows it writes stay in L1. */
const TILE = 64;

/**
 * dst[n][c][r] = src[n][r][c] for images of ROWS x COLS floats: NHWC to NCHW (rows = pixels, cols = channels)
 * or back (the reverse). Task (image, chunk of RPT rows, a multiple of 4).
 */
export function transpose_images(p: usize, task: i32, tid: i32): void {
  const rows = pi(p, TP.ROWS), cols = pi(p, TP.COLS), rpt = pi(p, TP.RPT);
  const chunks = (rows + rpt - 1) / rpt;
  const n = task / chunks;
  const r0 = (task % chunks) * rpt, r1 = imin(rows, r0 + rpt);
  const image = (<usize>n * <usize>rows * <usize>cols) << 2;
  const src = pu(p, TP.SRC) + image, dst = pu(p, TP.DST) + image;
  const srow = <usize>cols << 2, drow = <usize>rows << 2;
  for (let c0 = 0; c0 < cols; c0 += TILE) {
    const width = imin(TILE, cols - c0);
    const s0 = src + (<usize>c0 << 2), d0 = dst + <usize>c0 * drow;
    let r = r0;
    for (; r + 4 <= r1; r += 4) {
      const s = s0 + <usize>r * srow;
      transpose4(s, s + srow, s + 2 * srow, s + 3 * srow, d0 + (<usize>r << 2), drow, width);
    }
    for (; r < r1; r++) {
      const s = s0 + <usize>r * srow;
      let d = d0 + (<usize>r << 2);
      for (let c = 0; c < width; c++, d += drow) store<f32>(d, load<f32>(s + (<usize>c << 2)));
    }
  }
}
