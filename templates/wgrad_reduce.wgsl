// Weight gradient, pass 2 of 2, one workgroup per output channel: adds the
// chunks' partial sums in chunk order (deterministic). With FOLD (tune and
// deploy) it also finishes the per-channel gradients in the same pass, which
// a separate folded_grads kernel used to do with its own pass over gradOut:
//   gb' = sum dy (from the partials).
//   TUNE: gW = s * gW', gb = s * gb', gbeta = gb', ggamma from folded_grad_gamma
//         (common.wgsl).
//   deploy: gW' and gb' are the gradients of the folded parameters.
// Weights move as Quad: vec4<f32> where a channel's weights and the partial
// stride come in fours, else f32 (codegen/tiles/wgrad.ts inserts the alias).
// On llvmpipe, where every per-lane load is a gather, this pass ran 25-35%
// faster with vec4 loads.
//@insert QUAD
@group(0) @binding(0) var<storage, read> partials: array<Quad>;
@group(0) @binding(1) var<storage, read> weight: array<Quad>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradWeight: array<Quad>;
@group(0) @binding(4) var<storage, read_write> channelGrads: array<f32>;

const QUADS_PER_OUT: u32 = CIN_PER_GROUP * KH * KW / QUAD;
const PARTIAL_QUADS: u32 = PARTIAL_STRIDE / QUAD;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) local: u32) {
  let c = flat_workgroup(wid);
  if (c >= COUT) { return; }
  var s = 1.0;
  if (TUNE) { s = bn_fold_scale(channels[CH_GAMMA + c], channels[CH_VAR + c]); }
  var dot = Quad(0.0);
  for (var k = local; k < QUADS_PER_OUT; k += WORKGROUP_SIZE) {
    let i = c * QUADS_PER_OUT + k;
    var g = Quad(0.0);
    for (var chunk = 0u; chunk < CHUNKS; chunk++) { g += partials[chunk * PARTIAL_QUADS + i]; }
    if (TUNE) {
      dot += weight[i] * g;
      gradWeight[i] = s * g;
    } else {
      gradWeight[i] = g;
    }
  }
  if (!FOLD) { return; }
  var gb = 0.0;
  if (local == 0u) {
    for (var chunk = 0u; chunk < CHUNKS; chunk++) { gb += partial_float(chunk * PARTIAL_STRIDE + W_SIZE + c); }
  }
  if (TUNE) {
    let total = workgroup_sum(local, quad_sum(dot));
    if (local == 0u) {
      channelGrads[G_BIAS + c] = s * gb;
      channelGrads[G_BETA + c] = gb;
      channelGrads[G_GAMMA + c] = folded_grad_gamma(total, channels[CH_BIAS + c], channels[CH_MEAN + c], gb, channels[CH_VAR + c]);
    }
  } else if (local == 0u) {
    channelGrads[G_BIAS + c] = gb;
  }
}
