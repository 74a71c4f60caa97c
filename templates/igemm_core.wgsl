// GEMM core shared by conv_fwd_wg, conv_dgrad_wg and conv_wgrad_wg (spliced in
// by codegen/tiles/igemm.ts): C[z] = A[z] (GEMM_M x GEMM_K) * B[z] (GEMM_K x GEMM_N)
// for each batch entry z, with load_a, load_b, store_c (and, for wgrad,
// store_row_sum) from the pass's template. A TM x TN tile per workgroup of 8 x 8
// invocations, K staged through workgroup memory TK at a time; each invocation
// keeps an RM x RN block of C in registers.
var<workgroup> tile_a: array<f32, TM * TK>;  // [k][m]
var<workgroup> tile_b: array<f32, TK * TN>;  // [k][n]

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let w = flat_workgroup(wid);
  let nt = w % TILES_N;
  let mt = (w / TILES_N) % TILES_M;
  let z = w / (TILES_N * TILES_M);
  if (z >= GEMM_BATCH) { return; }
  let tx = local % 8u;
  let ty = local / 8u;
  var acc: array<f32, RM * RN>;
  var row_sum: array<f32, RM>;
  for (var k0 = 0u; k0 < GEMM_K; k0 += TK) {
    // A: consecutive invocations walk k (contiguous weights); B: they walk n (contiguous pixels).
    for (var e = local; e < TM * TK; e += WORKGROUP_SIZE) {
      let m = mt * TM + e / TK;
      let k = k0 + e % TK;
      var v = 0.0;
      if (m < GEMM_M && k < GEMM_K) { v = load_a(z, m, k); }
      tile_a[(e % TK) * TM + e / TK] = v;
    }
    for (var e = local; e < TK * TN; e += WORKGROUP_SIZE) {
      let k = k0 + e / TN;
      let n = nt * TN + e % TN;
      var v = 0.0;
      if (n < GEMM_N && k < GEMM_K) { v = load_b(z, k, n); }
      tile_b[e] = v;
    }
    sync_workgroup();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, RM>;
      for (var i = 0u; i < RM; i++) { a[i] = tile_a[kk * TM + ty * RM + i]; }
      if (SUM_ROWS && tx == 0u) {
        for (var i = 0u; i < RM; i++) { row_sum[i] += a[i]; }
      }
      for (var j = 0u; j < RN; j++) {
        let b = tile_b[kk * TN + tx * RN + j];
        for (var i = 0u; i < RM; i++) { acc[i * RN + j] += a[i] * b; }
      }
    }
    sync_workgroup();
  }
  for (var i = 0u; i < RM; i++) {
    let m = mt * TM + ty * RM + i;
    if (m >= GEMM_M) { continue; }
    for (var j = 0u; j < RN; j++) {
      let n = nt * TN + tx * RN + j;
      if (n < GEMM_N) { store_c(z, m, n, acc[i * RN + j]); }
    }
    if (SUM_ROWS && tx == 0u && nt == 0u) { store_row_sum(z, m, row_sum[i]); }
  }
}
