// y = (z - mean) / sqrt(var + eps) * gamma + beta with the statistics in use.
@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> channels: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= Y_SIZE) { return; }
  let c = y_coords(index).c;
  let xhat = (z[index] - stats[S_MEAN + c]) * stats[S_INVSTD + c];
  y[index] = xhat * channels[CH_GAMMA + c] + channels[CH_BETA + c];
}
