// Train-mode batch statistics from the forward's per-tile partials (conv_fwd_reg
// with STATS wrote (count, mean, M2) of z per tile and channel into the y
// buffer), one workgroup per channel: no pass over z. Each invocation merges its
// strided tiles in order, then the workgroup merges those in a fixed tree, with
// Chan et al.'s rule (exact for a constant channel: equal means, zero M2).
// Written as bn_stats BATCH writes them: [mean | 1/sqrt(var + eps)] and the
// running stats updated with the unbiased variance.
@group(0) @binding(0) var<storage, read> statsScratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> channels: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

struct Moments { count: f32, mean: f32, m2: f32 }

var<workgroup> merged: array<Moments, WORKGROUP_SIZE>;

fn merge(a: Moments, b: Moments) -> Moments {
  if (b.count == 0.0) { return a; }
  if (a.count == 0.0) { return b; }
  let count = a.count + b.count;
  let delta = b.mean - a.mean;
  return Moments(count, a.mean + delta * (b.count / count), a.m2 + b.m2 + delta * delta * (a.count * b.count / count));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  var m = Moments(0.0, 0.0, 0.0);
  for (var t = local; t < TILE_COUNT; t += WORKGROUP_SIZE) {
    let at = (c * TILE_COUNT + t) * 3u;
    m = merge(m, Moments(statsScratch[at], statsScratch[at + 1u], statsScratch[at + 2u]));
  }
  merged[local] = m;
  sync_workgroup();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (local < half) { merged[local] = merge(merged[local], merged[local + half]); }
    sync_workgroup();
  }
  if (local == 0u) {
    let total = merged[0];
    let variance = total.m2 / total.count;
    stats[S_MEAN + c] = total.mean;
    stats[S_INVSTD + c] = 1.0 / sqrt(variance + EPS);
    let unbiased = total.m2 / max(total.count - 1.0, 1.0);
    channels[CH_MEAN + c] = (1.0 - MOMENTUM) * channels[CH_MEAN + c] + MOMENTUM * total.mean;
    channels[CH_VAR + c] = (1.0 - MOMENTUM) * channels[CH_VAR + c] + MOMENTUM * unbiased;
  }
}
