// Direct convolution, one output element per invocation.
// TUNE: W' = W * s is formed as each weight is loaded and b' = (b - mean) * s + beta
// in the prologue, s = gamma / sqrt(var + eps): no W' buffer, no transform pass.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= Y_SIZE) { return; }
  let o = y_coords(index);
  var scale = 1.0;
  var shift = channels[CH_BIAS + o.c];
  if (TUNE) {
    scale = bn_fold_scale(channels[CH_GAMMA + o.c], channels[CH_VAR + o.c]);
    shift = (channels[CH_BIAS + o.c] - channels[CH_MEAN + o.c]) * scale + channels[CH_BETA + o.c];
  }
  let first_channel = (o.c / COUT_PER_GROUP) * CIN_PER_GROUP;
  var acc = 0.0;
  for (var ci = 0u; ci < CIN_PER_GROUP; ci++) {
    for (var kh = 0u; kh < KH; kh++) {
      let ih = i32(o.h * STRIDE_H + kh * DILATION_H) - PAD_TOP;
      if (ih < 0 || ih >= i32(H)) { continue; }
      for (var kw = 0u; kw < KW; kw++) {
        let iw = i32(o.w * STRIDE_W + kw * DILATION_W) - PAD_LEFT;
        if (iw < 0 || iw >= i32(W)) { continue; }
        let w = weight[w_at(o.c, ci, kh, kw)] * scale;
        acc += x[x_at(o.n, first_channel + ci, u32(ih), u32(iw))] * w;
      }
    }
  }
  y[index] = acc + shift;
}
