// Weight gradient, pass 1 of 2, as an implicit GEMM with workgroup-memory
// tiling (GPUs): per group and chunk of output rows, partials (Cout/g x
// Cin/g*kH*kW) = gradOut (Cout/g x chunk pixels) * im2col(x). Row sums of A
// (sum of gradOut per channel: bias / beta gradients) come with the same loads.
// wgrad_reduce adds the chunks in order, as for conv_wgrad_reg.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

const STATS: bool = false;
const SUM_ROWS: bool = true;
const TAPS: u32 = KH * KW;

/** The batch pixels of chunk z's reduction: [chunk_first(z), chunk_end(z)). */
fn chunk_first(z: u32) -> u32 { return (z % CHUNKS) * ROWS_PER_CHUNK * WOUT; }
fn chunk_end(z: u32) -> u32 { return min((z % CHUNKS + 1u) * ROWS_PER_CHUNK, N * HOUT) * WOUT; }

fn gemm_k(z: u32) -> u32 { return GEMM_K; }

fn load_a(z: u32, m: u32, k: u32) -> f32 {
  let p = chunk_first(z) + k;
  if (p >= chunk_end(z)) { return 0.0; }
  let co = (z / CHUNKS) * COUT_PER_GROUP + m;
  let img = p / (HOUT * WOUT);
  return gradOut[(img * COUT + co) * (HOUT * WOUT) + p % (HOUT * WOUT)];
}

fn load_b(z: u32, k: u32, n: u32) -> f32 {
  let p = chunk_first(z) + k;
  if (p >= chunk_end(z)) { return 0.0; }
  let ci = (z / CHUNKS) * CIN_PER_GROUP + n / TAPS;
  let kh = (n / KW) % KH;
  let kw = n % KW;
  let img = p / (HOUT * WOUT);
  let oh = (p / WOUT) % HOUT;
  let ow = p % WOUT;
  let ih = i32(oh * STRIDE_H + kh * DILATION_H) - PAD_TOP;
  let iw = i32(ow * STRIDE_W + kw * DILATION_W) - PAD_LEFT;
  if (ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) { return 0.0; }
  return x[x_at(img, ci, u32(ih), u32(iw))];
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
  let co = (z / CHUNKS) * COUT_PER_GROUP + m;
  partials[(z % CHUNKS) * PARTIAL_STRIDE + co * (CIN_PER_GROUP * TAPS) + n] = v;
}

fn store_row_sum(z: u32, m: u32, v: f32) {
  let co = (z / CHUNKS) * COUT_PER_GROUP + m;
  partials[(z % CHUNKS) * PARTIAL_STRIDE + W_SIZE + co] = v;
}

fn store_stats(z: u32, m: u32, nt: u32, moments: vec3f) {}

//@insert CORE
