// GEMM core shared by conv_fwd_wg, conv_dgrad_wg and conv_wgrad_wg (spliced in
// by codegen/tiles/igemm.ts): C[z] = A[z] (GEMM_M x GEMM_K) * B[z] (GEMM_K x GEMM_N)
// for each batch entry z, with load_a, load_b, store_c (and, for wgrad,
// store_row_sum) from the pass's template. A TM x TN tile per workgroup of KS
// slices of 8 x 8 invocations. Slice g stages K steps g, g + KS, ... (TK each)
// through its own part of workgroup memory; each invocation keeps an RM x RN
// block of C in registers: RM adjacent rows, and RN columns 8 apart, so that the
// 8 invocations of a row read adjacent words of tile_b (no bank conflicts) and
// store adjacent elements of C (coalesced on a GPU). With KS > 1 the slices add
// their blocks through workgroup memory at the end, and slice 0 stores.
var<workgroup> tile_a: array<f32, KS * TM * TK>;  // [slice][k][m]
var<workgroup> tile_b: array<f32, KS * TK * TN>;  // [slice][k][n]
var<workgroup> partial_c: array<f32, PARTIAL_C_SIZE>;  // [m][n], then the row sums (KS > 1)

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
  for (var k_base = 0u; k_base < GEMM_K; k_base += KS * TK) {
    let k0 = k_base + slice * TK;
    // A: consecutive invocations walk k (contiguous weights); B: they walk n (contiguous pixels).
    for (var e = local; e < TM * TK; e += SLICE_SIZE) {
      let m = mt * TM + e / TK;
      let k = k0 + e % TK;
      var v = 0.0;
      if (m < GEMM_M && k < GEMM_K) { v = load_a(z, m, k); }
      tile_a[a_base + (e % TK) * TM + e / TK] = v;
    }
    for (var e = local; e < TK * TN; e += SLICE_SIZE) {
      let k = k0 + e / TN;
      let n = nt * TN + e % TN;
      var v = 0.0;
      if (n < GEMM_N && k < GEMM_K) { v = load_b(z, k, n); }
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
    // Slices 1 .. KS-1 add their blocks into slice 0's, one at a time through partial_c.
    for (var g = 1u; g < KS; g++) {
      if (slice == g) {
        for (var i = 0u; i < RM; i++) {
          for (var j = 0u; j < RN; j++) { partial_c[(ty * RM + i) * TN + j * 8u + tx] = acc[i * RN + j]; }
          if (SUM_ROWS && tx == 0u) { partial_c[TM * TN + ty * RM + i] = row_sum[i]; }
        }
      }
      workgroupBarrier();
      if (slice == 0u) {
        for (var i = 0u; i < RM; i++) {
          for (var j = 0u; j < RN; j++) { acc[i * RN + j] += partial_c[(ty * RM + i) * TN + j * 8u + tx]; }
          if (SUM_ROWS && tx == 0u) { row_sum[i] += partial_c[TM * TN + ty * RM + i]; }
        }
      }
      workgroupBarrier();
    }
    if (slice != 0u) { return; }
  }
  for (var i = 0u; i < RM; i++) {
    let m = mt * TM + ty * RM + i;
    if (m >= GEMM_M) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = nt * TN + j * 8u + tx;
      if (n < GEMM_N) { store_c(z, m, n, acc[i * RN + j]); }
    }
    if (SUM_ROWS && tx == 0u && nt == 0u) { store_row_sum(z, m, row_sum[i]); }
  }
}
