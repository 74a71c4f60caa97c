// Forward convolution as an implicit GEMM with workgroup-memory tiling (GPUs):
// per group, C (Cout/g x pixels) = W (Cout/g x Cin/g*kH*kW) * im2col(x), the
// im2col read on the fly. TUNE: s is per output channel (a row of C), so
// conv(x, W s) = s conv(x, W): the store writes acc * s + b', and A loads stay plain.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// STATS (train): per channel and N tile, (count, mean, M2) of z into statsScratch (the y buffer, free
// until bn_apply), so the batch statistics need no pass over z (bn_stats_tiles merges them). Without
// STATS a private stand-in that is never written.
//@insert STATS_BINDING

const SUM_ROWS: bool = false;
const TAPS: u32 = KH * KW;

fn scale_of(co: u32) -> f32 {
  if (TUNE) { return bn_fold_scale(channels[CH_GAMMA + co], channels[CH_VAR + co]); }
  return 1.0;
}

fn gemm_k(z: u32) -> u32 { return GEMM_K; }

fn load_a(z: u32, m: u32, k: u32) -> f32 {
  let co = z * COUT_PER_GROUP + m;
  return weight[co * (CIN_PER_GROUP * TAPS) + k];
}

fn load_b(z: u32, k: u32, n: u32) -> f32 {
  let ci = k / TAPS;
  let kh = (k / KW) % KH;
  let kw = k % KW;
  let img = n / (HOUT * WOUT);
  let oh = (n / WOUT) % HOUT;
  let ow = n % WOUT;
  let ih = i32(oh * STRIDE_H + kh * DILATION_H) - PAD_TOP;
  let iw = i32(ow * STRIDE_W + kw * DILATION_W) - PAD_LEFT;
  if (ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) { return 0.0; }
  return x[x_at(img, z * CIN_PER_GROUP + ci, u32(ih), u32(iw))];
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
  let co = z * COUT_PER_GROUP + m;
  let img = n / (HOUT * WOUT);
  let at = (img * COUT + co) * (HOUT * WOUT) + n % (HOUT * WOUT);
  if (TUNE) {
    let s = scale_of(co);
    y[at] = fma(v, s, (channels[CH_BIAS + co] - channels[CH_MEAN + co]) * s + channels[CH_BETA + co]);
  } else {
    y[at] = v + channels[CH_BIAS + co];
  }
}

fn store_row_sum(z: u32, m: u32, v: f32) {}

fn store_stats(z: u32, m: u32, nt: u32, moments: vec3f) {
  if (STATS) {
    let co = z * COUT_PER_GROUP + m;
    let at = (co * TILES_N + nt) * 3u;
    statsScratch[at] = moments.x;
    statsScratch[at + 1u] = moments.y + channels[CH_BIAS + co];
    statsScratch[at + 2u] = moments.z;
  }
}

//@insert CORE
