// Register-blocked direct convolution, no workgroup memory: for adapters where
// loads are dear and barriers dearer (CPU rasterisers such as llvmpipe). Each
// invocation computes CO_B output channels x PY rows x PX columns of one image;
// codegen/tiles/forward.ts unrolls the taps (PROLOGUE, BODY, EPILOGUE) with
// every index baked and bounds checks only where a tile can reach the border.
// Invocations next to each other share their channel block (and weights).
// TUNE: s = gamma / sqrt(var + eps) is per output channel, so conv(x, W * s) =
// s * conv(x, W): the epilogue writes acc * s + b', b' = (b - mean) * s + beta.
// No W' buffer, no transform pass, and no multiply per weight load.
// x is read as XElement: vec4<f32> for flattened 1x1 convs whose planes and tiles come in fours
// (one per-lane load for four pixels), else f32.
//@insert X_ELEMENT
@group(0) @binding(0) var<storage, read> x: array<XElement>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// STATS (train): per tile and channel, (count, mean, M2) of z into statsScratch (the y buffer, free
// until bn_apply), so the batch statistics need no pass over z (bn_stats_tiles merges them).
//@insert STATS_BINDING

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= INVOCATIONS) { return; }
  let cb = (index / TILE_COUNT) * CO_B;
  let tile = index % TILE_COUNT;
  let ow0 = (tile % TILES_W) * PX;
  let oh0 = ((tile / TILES_W) % TILES_H) * PY;
  let n = tile / (TILES_W * TILES_H);
  let x_image = (n * CIN + (cb / COUT_PER_GROUP) * CIN_PER_GROUP) * (VH * VW);
  let ih0 = i32(oh0 * V_STRIDE_H) - i32(V_PAD_TOP);
  let iw0 = i32(ow0 * V_STRIDE_W) - i32(V_PAD_LEFT);
//@insert PROLOGUE
  for (var ci = 0u; ci < CIN_PER_GROUP; ci++) {
    let x_channel = x_image + ci * (VH * VW);
    for (var kh = 0u; kh < KH_LOOP; kh++) {
      let wk = (cb * CIN_PER_GROUP + ci) * (KH * KW) + kh * KW;
//@insert BODY
    }
  }
//@insert EPILOGUE
}
