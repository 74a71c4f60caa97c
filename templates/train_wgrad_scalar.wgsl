// Train-mode weight gradient when each output channel has a single weight
// (CIN_PER_GROUP * KH * KW == 1: 1x1 convs with one input channel per group).
// Then z - mean = w * (P - mean(P)) for the input values P feeding the channel,
// and sum(dz * P) collapses to gamma * eps * invstd^3 * sum(dy * (P - mean(P))).
// The generic sum(dz * x) reaches that value (~eps/var of its terms) only by
// cancellation, which float32 cannot resolve; this form has none. One workgroup per channel.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> gradWeight: array<f32>;

/** The input value feeding output element m of channel c (0 where it reads padding). */
fn tap(c: u32, m: u32) -> f32 {
  let n = m / (HOUT * WOUT);
  let oh = (m / WOUT) % HOUT;
  let ow = m % WOUT;
  let ih = i32(oh * STRIDE_H) - PAD_TOP;
  let iw = i32(ow * STRIDE_W) - PAD_LEFT;
  if (ih < 0 || ih >= i32(H) || iw < 0 || iw >= i32(W)) { return 0.0; }
  return x[x_at(n, (c / COUT_PER_GROUP) * CIN_PER_GROUP, u32(ih), u32(iw))];
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  var sum_p = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) { sum_p += tap(c, m); }
  let mean_p = workgroup_sum(local, sum_p) / f32(CHANNEL_SIZE);
  var sum_dy_p = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) {
    sum_dy_p += gradOut[y_channel_at(c, m)] * (tap(c, m) - mean_p);
  }
  let a = workgroup_sum(local, sum_dy_p);
  if (local == 0u) {
    let invstd = stats[S_INVSTD + c];
    gradWeight[c] = channels[CH_GAMMA + c] * EPS * invstd * invstd * invstd * a;
  }
}
