// Per-channel gradients once wgrad has written gW' = wgrad(x, dy), one
// workgroup per channel. gb' = sum dy.
// TUNE: gW = s * gW' (in place), gb = s * gb', gbeta = gb', ggamma from
//       folded_grad_gamma (common.wgsl).
// Otherwise (deploy): gW' and gb' are the gradients of the folded parameters.
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradWeight: array<f32>;
@group(0) @binding(4) var<storage, read_write> channelGrads: array<f32>;

const WEIGHTS_PER_OUT: u32 = CIN_PER_GROUP * KH * KW;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  var sum_dy = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) { sum_dy += gradOut[y_channel_at(c, m)]; }
  let gb_folded = workgroup_sum(local, sum_dy);
  if (!TUNE) {
    if (local == 0u) { channelGrads[G_BIAS + c] = gb_folded; }
    return;
  }
  let s = bn_fold_scale(channels[CH_GAMMA + c], channels[CH_VAR + c]);
  var sum_w_gw = 0.0;
  for (var k = local; k < WEIGHTS_PER_OUT; k += WORKGROUP_SIZE) {
    let i = c * WEIGHTS_PER_OUT + k;
    let gw_folded = gradWeight[i];
    sum_w_gw += weight[i] * gw_folded;
    gradWeight[i] = s * gw_folded;
  }
  let dot = workgroup_sum(local, sum_w_gw);
  if (local == 0u) {
    channelGrads[G_BIAS + c] = s * gb_folded;
    channelGrads[G_BETA + c] = gb_folded;
    channelGrads[G_GAMMA + c] = folded_grad_gamma(dot, channels[CH_BIAS + c], channels[CH_MEAN + c], gb_folded, channels[CH_VAR + c]);
  }
}
