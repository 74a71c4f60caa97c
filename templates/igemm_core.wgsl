// GEMM core shared by conv_fwd_wg, conv_dgrad_wg and conv_wgrad_wg (spliced in
// by codegen/tiles/igemm.ts): C[z] = A[z] (GEMM_M x GEMM_K) * B[z] (GEMM_K x GEMM_N)
// for each batch entry z, with gemm_k, load_a, load_b, store_c (and, for wgrad,
// store_row_sum) from the pass's template. A TM x TN tile per workgroup of KS
// slices of 8 x 8 invocations. Slice g stages K steps g, g + KS, ... (TK each)
// through its own part of workgroup memory; each invocation keeps an RM x RN
// block of C in registers: RM adjacent rows, and RN columns 8 apart, so that the
// 8 invocations of a row read adjacent words of tile_b (no bank conflicts) and
// store adjacent elements of C (coalesced on a GPU). With KS > 1 the slices add
// their blocks through workgroup memory (exchange) at the end, and slice 0 stores.
// STATS (forward, train): each invocation also takes count, mean and M2 of its
// RN values of each row, shifted by the first (a constant row gives exactly 0
// as M2); the 8 invocations of a row merge theirs in order (Chan et al.) and
// store_stats writes one partial per row and N tile. The slices' last
// exchange ended with a barrier, so STATS may reuse it.
var<workgroup> tile_a: array<f32, KS * TM * TK>;  // [slice][k][m]
var<workgroup> tile_b: array<f32, KS * TK * TN>;  // [slice][k][n]
// KS > 1: [m][n], then the row sums; after that (STATS) [m][tx][count, mean, M2].
var<workgroup> exchange: array<f32, EXCHANGE_SIZE>;

const SLICE_SIZE: u32 = 64u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local_index: u32) {
  let w = flat_workgroup(wid);
  let nt = w % TILES_N;
  let mt = (w / TILES_N) % TILES_M;
  let z = w / (TILES_N * TILES_M);
  if (z >= GEMM_BATCH) { return; }
  let slice = local_index / SLICE_SIZE;
  let local = local_index % SLICE_SIZE;
  let tx = local % 8u;
  let ty = local / 8u;
  let a_base = slice * (TM * TK);
  let b_base = slice * (TK * TN);
  var acc: array<f32, RM * RN>;
  var row_sum: array<f32, RM>;
  // The trip count is the same for every slice (barriers need uniform control flow); loads past K read 0.
  // gemm_k (the pass template's): K of batch entry z, uniform over the workgroup (dgrad: its stride phase's).
  let k_end = gemm_k(z);
  for (var k_base = 0u; k_base < k_end; k_base += KS * TK) {
    let k0 = k_base + slice * TK;
    // A: consecutive invocations walk k (contiguous weights); B: they walk n (contiguous pixels).
    for (var e = local; e < TM * TK; e += SLICE_SIZE) {
      let m = mt * TM + e / TK;
      let k = k0 + e % TK;
      var v = 0.0;
      if (m < GEMM_M && k < k_end) { v = load_a(z, m, k); }
      tile_a[a_base + (e % TK) * TM + e / TK] = v;
    }
    for (var e = local; e < TK * TN; e += SLICE_SIZE) {
      let k = k0 + e / TN;
      let n = nt * TN + e % TN;
      var v = 0.0;
      if (n < GEMM_N && k < k_end) { v = load_b(z, k, n); }
      tile_b[b_base + e] = v;
    }
    sync_workgroup();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, RM>;
      for (var i = 0u; i < RM; i++) { a[i] = tile_a[a_base + kk * TM + ty * RM + i]; }
      if (SUM_ROWS && tx == 0u) {
        for (var i = 0u; i < RM; i++) { row_sum[i] += a[i]; }
      }
      for (var j = 0u; j < RN; j++) {
        let b = tile_b[b_base + kk * TN + j * 8u + tx];
        for (var i = 0u; i < RM; i++) { acc[i * RN + j] += a[i] * b; }
      }
    }
    sync_workgroup();
  }
  if (KS > 1u) {
    // Slices 1 .. KS-1 add their blocks into slice 0's, one at a time through exchange.
    for (var g = 1u; g < KS; g++) {
      if (slice == g) {
        for (var i = 0u; i < RM; i++) {
          for (var j = 0u; j < RN; j++) { exchange[(ty * RM + i) * TN + j * 8u + tx] = acc[i * RN + j]; }
          if (SUM_ROWS && tx == 0u) { exchange[TM * TN + ty * RM + i] = row_sum[i]; }
        }
      }
      workgroupBarrier();
      if (slice == 0u) {
        for (var i = 0u; i < RM; i++) {
          for (var j = 0u; j < RN; j++) { acc[i * RN + j] += exchange[(ty * RM + i) * TN + j * 8u + tx]; }
          if (SUM_ROWS && tx == 0u) { row_sum[i] += exchange[TM * TN + ty * RM + i]; }
        }
      }
      workgroupBarrier();
    }
  }
  // Slice 0 holds the sums. No return for the others: STATS's barrier below needs every invocation.
  if (slice == 0u) {
    for (var i = 0u; i < RM; i++) {
      let m = mt * TM + ty * RM + i;
      if (m >= GEMM_M) { continue; }
      for (var j = 0u; j < RN; j++) {
        let n = nt * TN + j * 8u + tx;
        if (n < GEMM_N) { store_c(z, m, n, acc[i * RN + j]); }
      }
      if (SUM_ROWS && tx == 0u && nt == 0u) { store_row_sum(z, m, row_sum[i]); }
      if (STATS) {
        var count = 0.0;
        var first = 0.0;
        var sum_d = 0.0;
        for (var j = 0u; j < RN; j++) {
          if (nt * TN + j * 8u + tx < GEMM_N) {
            if (count == 0.0) { first = acc[i * RN + j]; }
            count += 1.0;
            sum_d += acc[i * RN + j] - first;
          }
        }
        let mean_d = select(0.0, sum_d / max(count, 1.0), count > 0.0);
        var m2 = 0.0;
        for (var j = 0u; j < RN; j++) {
          if (nt * TN + j * 8u + tx < GEMM_N) {
            let e = (acc[i * RN + j] - first) - mean_d;
            m2 += e * e;
          }
        }
        let at = ((ty * RM + i) * 8u + tx) * 3u;
        exchange[at] = count;
        exchange[at + 1u] = first + mean_d;
        exchange[at + 2u] = m2;
      }
    }
  }
  if (STATS) {
    sync_workgroup();
    if (slice == 0u && tx == 0u) {
      for (var i = 0u; i < RM; i++) {
        let m = mt * TM + ty * RM + i;
        if (m >= GEMM_M) { continue; }
        var moments = vec3f(0.0);
        for (var t = 0u; t < 8u; t++) {
          let at = ((ty * RM + i) * 8u + t) * 3u;
          moments = merge_moments(moments, vec3f(exchange[at], exchange[at + 1u], exchange[at + 2u]));
        }
        store_stats(z, m, nt, moments);
      }
    }
  }
}
