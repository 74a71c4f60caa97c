// Register-blocked input gradient, no workgroup memory (CPU rasterisers): the
// transposed convolution split by stride phase, so each phase is a stride-1
// correlation with a fixed tap list (codegen/tiles/dgrad.ts generates one
// function per phase). An invocation computes CI_B input channels x PY x PX
// positions of one phase; every gradOut value loaded feeds CI_B multiply-adds
// per tap that reads it, every weight PY * PX.
// TUNE: W' = W * s, with s multiplying the fewer loads (weights or gradOut).
@group(0) @binding(0) var<storage, read> gradOut: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> channels: array<f32>;
@group(0) @binding(3) var<storage, read_write> gradX: array<f32>;

//@insert PHASES

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  // Workgroups take the phases in turn (phases differ in tap count: one phase per
  // workgroup keeps its branch uniform, alternating keeps the threads' loads even).
  let index = flat_invocation(gid);
  let phase = (index / WORKGROUP_SIZE) % PHASES;
  let rest = ((index / WORKGROUP_SIZE) / PHASES) * WORKGROUP_SIZE + index % WORKGROUP_SIZE;
  if (phase >= PHASES || rest >= CI_BLOCKS * TILE_COUNT) { return; }
  let ci0 = (rest / TILE_COUNT) * CI_B;
  let tile = rest % TILE_COUNT;
  let qw0 = i32((tile % TILES_W) * PX);
  let qh0 = i32(((tile / TILES_W) % TILES_H) * PY);
  let n = tile / (TILES_W * TILES_H);
//@insert SWITCH
}
