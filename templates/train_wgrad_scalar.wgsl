// Train-mode weight gradient when each output channel sees at most one input
// value per output position: one input channel per group and at most one kernel
// tap that ever reads inside the image (a 1x1 kernel, or a larger one whose other
// taps only ever read padding). For a tap reading values P:
// z - mean = w * (P - mean(P)), and sum(dz * P) collapses to
// gamma * eps * invstd^3 * sum((dy - mean(dy)) * P). The generic sum(dz * x) reaches
// that value (~eps/var of its terms) only by cancellation float32 cannot resolve;
// this form has none. Taps that only read padding have P = 0 and get exactly 0.
// One workgroup per channel.
//
// mean(dy) is the batch's (bn_grad_reduce's sum, in channelGrads, over CHANNEL_SIZE: a chunk of a
// split batch gets the batch sum scaled to its size), so a chunk's result is its share of the
// batch sum and chunks add up. The sum runs centred on the chunk's own mean of P, m:
// sum((dy - mean(dy)) * (P - m)) + m * sum(dy - mean(dy)), the second sum ~0 for a whole batch.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> channelGrads: array<f32>;
@group(0) @binding(5) var<storage, read_write> gradWeight: array<f32>;

/** The input value tap (kh, kw) of channel c reads for output element m (0 where it reads padding). */
fn tap(c: u32, m: u32, kh: u32, kw: u32) -> f32 {
  let n = m / (HOUT * WOUT);
  let oh = (m / WOUT) % HOUT;
  let ow = m % WOUT;
  let ih = i32(oh * STRIDE_H + kh * DILATION_H) - PAD_TOP;
  let iw = i32(ow * STRIDE_W + kw * DILATION_W) - PAD_LEFT;
  if (ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) { return 0.0; }
  return x[x_at(n, (c / COUT_PER_GROUP) * CIN_PER_GROUP, u32(ih), u32(iw))];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  let invstd = stats[S_INVSTD + c];
  let scale = channels[CH_GAMMA + c] * EPS * invstd * invstd * invstd;
  let mean_dy = channelGrads[G_BETA + c] / f32(CHANNEL_SIZE);
  var sum_d = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) { sum_d += gradOut[y_channel_at(c, m)] - mean_dy; }
  let rest = workgroup_sum(local, sum_d);
  for (var kh = 0u; kh < KH; kh++) {
    for (var kw = 0u; kw < KW; kw++) {
      var sum_p = 0.0;
      for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) { sum_p += tap(c, m, kh, kw); }
      let mean_p = workgroup_sum(local, sum_p) / f32(CHANNEL_SIZE);
      var sum_dy_p = 0.0;
      for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) {
        sum_dy_p += (gradOut[y_channel_at(c, m)] - mean_dy) * (tap(c, m, kh, kw) - mean_p);
      }
      let a = workgroup_sum(local, sum_dy_p);
      if (local == 0u) { gradWeight[w_at(c, 0u, kh, kw)] = scale * (a + mean_p * rest); }
    }
  }
}
