// Input gradient as an implicit GEMM with workgroup-memory tiling (GPUs), split by
// stride phase: input row ih = ph + STRIDE_H * qh receives tap kh only when
// (ph + PAD_TOP - kh * DILATION_H) is a multiple of STRIDE_H (codegen/stride-phases.ts),
// so each phase (ph, pw) is its own GEMM over the taps that reach it, and no
// multiply-add meets a position the stride skips. Batch entry z = group * PHASES +
// phase: per group and phase, gradX (Cin/g x the phase's pixels) = W^T (Cin/g x
// Cout/g * the phase's taps) * cols(gradOut). Stride 1 is one phase with every tap.
// The tables (PHASE_*) come from codegen; a phase's K and N are its own (the
// workgroup's phase is uniform, so is its K loop). TUNE: W' = W * s formed as A is loaded.
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradX: array<f32>;

const STATS: bool = false;
const SUM_ROWS: bool = false;
const TAPS: u32 = KH * KW;

// Per row phase ph: PHASE_ROWS (input rows of the phase), PHASE_TAPS_H (taps reaching it), PHASE_KH0 (the
// first of them; the next are PHASE_KH_STEP apart) and PHASE_OFF_H (output row of qh = 0 for that first tap;
// each next tap reads PHASE_OFF_H_STEP rows up). The same per column phase pw with W.
//@insert PHASES

fn phase_of(z: u32) -> vec2u { return vec2u((z % PHASES) / STRIDE_W, (z % PHASES) % STRIDE_W); }

fn phase_taps(z: u32) -> u32 {
  let p = phase_of(z);
  return PHASE_TAPS_H[p.x] * PHASE_TAPS_W[p.y];
}

fn gemm_k(z: u32) -> u32 { return COUT_PER_GROUP * phase_taps(z); }

/** (image, qh, qw) of column n of phase z, or an image past the batch when n is past the phase's pixels. */
fn phase_pixel(z: u32, n: u32) -> vec3u {
  let p = phase_of(z);
  let rows = PHASE_ROWS[p.x];
  let cols = PHASE_COLS[p.y];
  if (rows * cols == 0u) { return vec3u(N, 0u, 0u); }
  return vec3u(n / (rows * cols), (n / cols) % rows, n % cols);
}

/** The kernel tap (kh, kw) and its output offset (dh, dw) for k's tap index in phase z. */
fn phase_tap(z: u32, t: u32) -> vec4i {
  let p = phase_of(z);
  let th = t / PHASE_TAPS_W[p.y];
  let tw = t % PHASE_TAPS_W[p.y];
  return vec4i(
    i32(PHASE_KH0[p.x] + th * PHASE_KH_STEP), i32(PHASE_KW0[p.y] + tw * PHASE_KW_STEP),
    PHASE_OFF_H[p.x] - i32(th * PHASE_OFF_H_STEP), PHASE_OFF_W[p.y] - i32(tw * PHASE_OFF_W_STEP));
}

fn load_a(z: u32, m: u32, k: u32) -> f32 {
  let taps = phase_taps(z);
  let co = (z / PHASES) * COUT_PER_GROUP + k / taps;
  let tap = phase_tap(z, k % taps);
  var s = 1.0;
  if (TUNE) { s = bn_fold_scale(channels[CH_GAMMA + co], channels[CH_VAR + co]); }
  return weight[(co * CIN_PER_GROUP + m) * TAPS + u32(tap.x) * KW + u32(tap.y)] * s;
}

fn load_b(z: u32, k: u32, n: u32) -> f32 {
  let px = phase_pixel(z, n);
  if (px.x >= N) { return 0.0; }
  let taps = phase_taps(z);
  let co = (z / PHASES) * COUT_PER_GROUP + k / taps;
  let tap = phase_tap(z, k % taps);
  let oh = i32(px.y) + tap.z;
  let ow = i32(px.z) + tap.w;
  if (oh < 0 || ow < 0 || oh >= i32(HOUT) || ow >= i32(WOUT)) { return 0.0; }
  return gradOut[y_at(px.x, co, u32(oh), u32(ow))];
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
  let px = phase_pixel(z, n);
  if (px.x >= N) { return; }
  let p = phase_of(z);
  let ih = p.x + STRIDE_H * px.y;
  let iw = p.y + STRIDE_W * px.z;
  gradX[(px.x * CIN + (z / PHASES) * CIN_PER_GROUP + m) * (H * W) + ih * W + iw] = v;
}

fn store_row_sum(z: u32, m: u32, v: f32) {}

fn store_stats(z: u32, m: u32, nt: u32, moments: vec3f) {}

//@insert CORE
