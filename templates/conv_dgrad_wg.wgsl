// Input gradient as an implicit GEMM with workgroup-memory tiling (GPUs): per
// group, gradX (Cin/g x input pixels) = W^T (Cin/g x Cout/g*kH*kW) * cols(gradOut),
// where a column entry is gradOut at the output position that tap reaches (0 where
// the stride skips it). TUNE: W' = W * s formed as A is loaded.
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradX: array<f32>;

const STATS: bool = false;
const SUM_ROWS: bool = false;
const TAPS: u32 = KH * KW;

fn load_a(z: u32, m: u32, k: u32) -> f32 {
  let co = z * COUT_PER_GROUP + k / TAPS;
  var s = 1.0;
  if (TUNE) { s = bn_fold_scale(channels[CH_GAMMA + co], channels[CH_VAR + co]); }
  return weight[(co * CIN_PER_GROUP + m) * TAPS + k % TAPS] * s;
}

fn load_b(z: u32, k: u32, n: u32) -> f32 {
  let co = z * COUT_PER_GROUP + k / TAPS;
  let kh = (k / KW) % KH;
  let kw = k % KW;
  let img = n / (H * W);
  let ih = (n / W) % H;
  let iw = n % W;
  let th = i32(ih) + PAD_TOP - i32(kh * DILATION_H);
  let tw = i32(iw) + PAD_LEFT - i32(kw * DILATION_W);
  if (th < 0 || tw < 0 || th % i32(STRIDE_H) != 0 || tw % i32(STRIDE_W) != 0) { return 0.0; }
  let oh = u32(th) / STRIDE_H;
  let ow = u32(tw) / STRIDE_W;
  if (oh >= HOUT || ow >= WOUT) { return 0.0; }
  return gradOut[y_at(img, co, oh, ow)];
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
  let img = n / (H * W);
  gradX[(img * CIN + z * CIN_PER_GROUP + m) * (H * W) + n % (H * W)] = v;
}

fn store_row_sum(z: u32, m: u32, v: f32) {}

fn store_stats(z: u32, m: u32, nt: u32, moments: vec3f) {}

//@insert CORE
