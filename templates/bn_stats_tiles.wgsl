// Train-mode batch statistics from the forward's per-tile partials (conv_fwd_reg
// or conv_fwd_wg with STATS wrote (count, mean, M2) of z per tile and channel
// into the y buffer), one workgroup per channel: no pass over z. Each invocation merges its
// strided tiles in order, then the workgroup merges those in a fixed tree, with
// Chan et al.'s rule (exact for a constant channel: equal means, zero M2).
// Written as bn_stats BATCH writes them: [mean | 1/sqrt(var + eps)] and the
// running stats updated with the unbiased variance.
@group(0) @binding(0) var<storage, read> statsScratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> channels: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

var<workgroup> merged: array<vec3f, WORKGROUP_SIZE>;  // (count, mean, M2)

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  var m = vec3f(0.0);
  for (var t = local; t < TILE_COUNT; t += WORKGROUP_SIZE) {
    let at = (c * TILE_COUNT + t) * 3u;
    m = merge_moments(m, vec3f(statsScratch[at], statsScratch[at + 1u], statsScratch[at + 2u]));
  }
  merged[local] = m;
  sync_workgroup();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (local < half) { merged[local] = merge_moments(merged[local], merged[local + half]); }
    sync_workgroup();
  }
  if (local == 0u) {
    let count = merged[0].x;
    let mean = merged[0].y;
    let m2 = merged[0].z;
    stats[S_MEAN + c] = mean;
    stats[S_INVSTD + c] = 1.0 / sqrt(m2 / count + EPS);
    let unbiased = m2 / max(count - 1.0, 1.0);
    channels[CH_MEAN + c] = (1.0 - MOMENTUM) * channels[CH_MEAN + c] + MOMENTUM * mean;
    channels[CH_VAR + c] = (1.0 - MOMENTUM) * channels[CH_VAR + c] + MOMENTUM * unbiased;
  }
}
