// The statistics BN normalises with, one workgroup per channel, written as
// [mean | 1/sqrt(var + eps)]. BATCH (train): mean and biased variance of z over
// (N, HOUT, WOUT), two passes for accuracy, the first shifted by the channel's
// first value so a constant channel gets exactly its value as mean and exactly 0
// as variance (xhat = 0, not rounding noise times 1/sqrt(eps)); running stats
// updated as PyTorch's BatchNorm2d does, with the unbiased variance.
// Otherwise (eval): the running stats.
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> channels: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  if (!BATCH) {
    if (local == 0u) {
      stats[S_MEAN + c] = channels[CH_MEAN + c];
      stats[S_INVSTD + c] = 1.0 / sqrt(channels[CH_VAR + c] + EPS);
    }
    return;
  }
  let shift = z[y_channel_at(c, 0u)];
  var sum = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) { sum += z[y_channel_at(c, m)] - shift; }
  let mean = shift + workgroup_sum(local, sum) / f32(CHANNEL_SIZE);
  var squares = 0.0;
  for (var m = local; m < CHANNEL_SIZE; m += WORKGROUP_SIZE) {
    let d = z[y_channel_at(c, m)] - mean;
    squares += d * d;
  }
  let variance = workgroup_sum(local, squares) / f32(CHANNEL_SIZE);
  if (local == 0u) {
    stats[S_MEAN + c] = mean;
    stats[S_INVSTD + c] = 1.0 / sqrt(variance + EPS);
    // Train mode refuses CHANNEL_SIZE < 2; max() keeps the constant expression defined for eval's specialisation.
    let unbiased = variance * (f32(CHANNEL_SIZE) / f32(max(CHANNEL_SIZE, 2u) - 1u));
    channels[CH_MEAN + c] = (1.0 - MOMENTUM) * channels[CH_MEAN + c] + MOMENTUM * mean;
    channels[CH_VAR + c] = (1.0 - MOMENTUM) * channels[CH_VAR + c] + MOMENTUM * unbiased;
  }
}
