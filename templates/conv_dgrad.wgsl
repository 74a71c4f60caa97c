// Input gradient: the transposed convolution of gradOut with the weights, one
// input element per invocation. An output position contributes only where
// (ih + padTop - kh * dilation) is a non-negative multiple of the stride.
// TUNE: the weights are W' = W * s, rebuilt as they are loaded.
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradX: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= X_SIZE) { return; }
  let p = x_coords(index);
  let ci = p.c % CIN_PER_GROUP;
  let first_out = (p.c / CIN_PER_GROUP) * COUT_PER_GROUP;
  var acc = 0.0;
  for (var j = 0u; j < COUT_PER_GROUP; j++) {
    let co = first_out + j;
    var scale = 1.0;
    if (TUNE) { scale = bn_fold_scale(channels[CH_GAMMA + co], channels[CH_VAR + co]); }
    for (var kh = 0u; kh < KH; kh++) {
      let th = i32(p.h) + PAD_TOP - i32(kh * DILATION_H);
      if (th < 0 || th % i32(STRIDE_H) != 0) { continue; }
      let oh = u32(th) / STRIDE_H;
      if (oh >= HOUT) { continue; }
      for (var kw = 0u; kw < KW; kw++) {
        let tw = i32(p.w) + PAD_LEFT - i32(kw * DILATION_W);
        if (tw < 0 || tw % i32(STRIDE_W) != 0) { continue; }
        let ow = u32(tw) / STRIDE_W;
        if (ow >= WOUT) { continue; }
        acc += gradOut[y_at(p.n, co, oh, ow)] * (weight[w_at(co, ci, kh, kw)] * scale);
      }
    }
  }
  gradX[index] = acc;
}
