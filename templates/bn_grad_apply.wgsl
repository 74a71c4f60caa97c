// dz, the gradient at the conv output. Running stats (eval): dz = dy * gamma * invstd.
// Batch stats (train): dz = gamma * invstd * (dy - (gbeta + xhat * ggamma) / M).
// With M = 2 values per channel that difference is eps / (var + eps) of its terms
// (centred dy and xhat are parallel): the exact form is
// dz = gamma * eps * invstd^3 * (dy - mean(dy)), which float32 computes without cancellation.
// PAIR: the batch has M = 2 values per channel. A chunk of a split batch may hold one or two of
// them, or two of a larger batch's: the plan sets PAIR from the whole batch, and mean(dy) comes
// from the batch sum the host scaled to this chunk's CHANNEL_SIZE.
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> channelGrads: array<f32>;
@group(0) @binding(5) var<storage, read_write> gradZ: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= Y_SIZE) { return; }
  let c = y_coords(index).c;
  let invstd = stats[S_INVSTD + c];
  let g = channels[CH_GAMMA + c] * invstd;
  if (BATCH && PAIR) {
    let centred = gradOut[index] - channelGrads[G_BETA + c] / f32(CHANNEL_SIZE);
    gradZ[index] = channels[CH_GAMMA + c] * EPS * invstd * invstd * invstd * centred;
  } else if (BATCH) {
    let xhat = (z[index] - stats[S_MEAN + c]) * invstd;
    let mean_terms = (channelGrads[G_BETA + c] + xhat * channelGrads[G_GAMMA + c]) / f32(CHANNEL_SIZE);
    gradZ[index] = g * (gradOut[index] - mean_terms);
  } else {
    gradZ[index] = g * gradOut[index];
  }
}
