// BN parameter gradients, one workgroup per channel: gbeta = sum dy,
// ggamma = sum dy * xhat. The conv bias gradient is sum dz: gamma * invstd * gbeta
// with running stats (eval); exactly 0 with batch stats (train), since the
// batch mean cancels any bias.
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> channelGrads: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  let mean = stats[S_MEAN + c];
  let invstd = stats[S_INVSTD + c];
  var sum_dy = 0.0;
  var sum_dy_xhat = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) {
    let i = y_channel_at(c, m);
    let dy = gradOut[i];
    sum_dy += dy;
    sum_dy_xhat += dy * (z[i] - mean) * invstd;
  }
  let gbeta = workgroup_sum(local, sum_dy);
  let ggamma = workgroup_sum(local, sum_dy_xhat);
  if (local == 0u) {
    channelGrads[G_BETA + c] = gbeta;
    channelGrads[G_GAMMA + c] = ggamma;
    if (BATCH) {
      channelGrads[G_BIAS + c] = 0.0;
    } else {
      channelGrads[G_BIAS + c] = channels[CH_GAMMA + c] * invstd * gbeta;
    }
  }
}
