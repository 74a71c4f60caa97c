// Weight gradient, pass 1 of 2: register-blocked partial sums, one per chunk of
// output rows (codegen/tiles/wgrad.ts). An invocation owns CO_B output x CI_B
// input channels x KH_B kernel rows x KW columns of one chunk, walks the
// chunk's rows PX columns at a time, and writes its sums to
// partials[chunk][weight]; the CO_B sums of gradOut (bias / beta gradients) go
// to partials[chunk][W_SIZE + channel]. wgrad_reduce adds the chunks in order.
// Neighbouring invocations share their rows: their branches agree.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gradOut: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = flat_invocation(gid);
  if (index >= INVOCATIONS) { return; }
  let cib = index % CI_BLOCKS;
  let khb = (index / CI_BLOCKS) % KH_BLOCKS;
  let cob = (index / (CI_BLOCKS * KH_BLOCKS)) % CO_BLOCKS;
  let chunk = index / (CI_BLOCKS * KH_BLOCKS * CO_BLOCKS);
  let cb = cob * CO_B;
  let cig = cib * CI_B;
  let cin0 = (cb / COUT_PER_GROUP) * CIN_PER_GROUP + cig;
  let kh0 = khb * KH_B;
//@insert PROLOGUE
  let row_begin = chunk * ROWS_PER_CHUNK;
  let row_end = min(row_begin + ROWS_PER_CHUNK, N * HOUT);
  for (var row = row_begin; row < row_end; row++) {
    let n = row / HOUT;
    let oh = row % HOUT;
    let g_row = (n * COUT + cb) * (HOUT * WOUT) + oh * WOUT;
    let x_image = (n * CIN + cin0) * (H * W);
    for (var ow0 = 0u; ow0 < WOUT; ow0 += PX) {
//@insert BODY
    }
  }
//@insert EPILOGUE
}
