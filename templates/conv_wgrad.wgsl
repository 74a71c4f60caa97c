// Weight gradient, one weight element per invocation, summed image by image
// so the float32 error grows with the image size, not the whole batch.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> gradWeight: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= W_SIZE) { return; }
  let k = w_coords(index);
  let c = (k.o / COUT_PER_GROUP) * CIN_PER_GROUP + k.i;
  var total = 0.0;
  for (var n = 0u; n < N; n++) {
    var acc = 0.0;
    for (var oh = 0u; oh < HOUT; oh++) {
      let ih = i32(oh * STRIDE_H + k.kh * DILATION_H) - PAD_TOP;
      if (ih < 0 || ih >= i32(H)) { continue; }
      for (var ow = 0u; ow < WOUT; ow++) {
        let iw = i32(ow * STRIDE_W + k.kw * DILATION_W) - PAD_LEFT;
        if (iw < 0 || iw >= i32(W)) { continue; }
        acc += gradOut[y_at(n, k.o, oh, ow)] * x[x_at(n, c, u32(ih), u32(iw))];
      }
    }
    total += acc;
  }
  gradWeight[index] = total;
}
