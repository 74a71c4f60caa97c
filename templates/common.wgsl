// Shared by every kernel; codegen prepends the config's constants above this.
// Index helpers keep NCHW / OIHW arithmetic in one place, in integers.

struct Nchw { n: u32, c: u32, h: u32, w: u32 }
struct Oihw { o: u32, i: u32, kh: u32, kw: u32 }

fn x_at(n: u32, c: u32, h: u32, w: u32) -> u32 { return ((n * CIN + c) * H + h) * W + w; }
fn y_at(n: u32, c: u32, h: u32, w: u32) -> u32 { return ((n * COUT + c) * HOUT + h) * WOUT + w; }
fn w_at(o: u32, i: u32, kh: u32, kw: u32) -> u32 { return ((o * CIN_PER_GROUP + i) * KH + kh) * KW + kw; }

fn x_coords(index: u32) -> Nchw {
  return Nchw(index / (CIN * H * W), (index / (H * W)) % CIN, (index / W) % H, index % W);
}
fn y_coords(index: u32) -> Nchw {
  return Nchw(index / (COUT * HOUT * WOUT), (index / (HOUT * WOUT)) % COUT, (index / WOUT) % HOUT, index % WOUT);
}
fn w_coords(index: u32) -> Oihw {
  return Oihw(index / (CIN_PER_GROUP * KH * KW), (index / (KH * KW)) % CIN_PER_GROUP, (index / KW) % KH, index % KW);
}
/** Element `m` of one output channel's N*HOUT*WOUT values (the BN reduction set). */
fn y_channel_at(c: u32, m: u32) -> u32 {
  return ((m / (HOUT * WOUT)) * COUT + c) * (HOUT * WOUT) + m % (HOUT * WOUT);
}

// Dispatches wider than maxComputeWorkgroupsPerDimension fold into y; DISPATCH_X is baked per kernel.
fn flat_invocation(gid: vec3u) -> u32 { return gid.x + gid.y * (DISPATCH_X * WORKGROUP_SIZE); }
fn flat_workgroup(wid: vec3u) -> u32 { return wid.x + wid.y * DISPATCH_X; }

// Per-channel parameters share one buffer: [bias | gamma | beta | running mean | running var], COUT each.
const CH_BIAS: u32 = 0u;
const CH_GAMMA: u32 = COUT;
const CH_BETA: u32 = 2u * COUT;
const CH_MEAN: u32 = 3u * COUT;
const CH_VAR: u32 = 4u * COUT;
// Per-channel gradients: [bias | gamma | beta].
const G_BIAS: u32 = 0u;
const G_GAMMA: u32 = COUT;
const G_BETA: u32 = 2u * COUT;
// Normalisation statistics in use (batch in train, running in eval): [mean | 1/sqrt(var + eps)].
const S_MEAN: u32 = 0u;
const S_INVSTD: u32 = COUT;

// The tune fold, in one place for every kernel: s = gamma / sqrt(var + eps) scales W (W' = W s) and
// b' = (b - mean) s + beta; gamma's gradient comes from the folded gradients gW', gb' without
// dividing by s (gamma = 0 channels work): (sum_k W gW' + (b - mean) gb') / sqrt(var + eps).
fn bn_fold_scale(gamma: f32, running_var: f32) -> f32 {
  return gamma / sqrt(running_var + EPS);
}

fn folded_grad_gamma(sum_w_gw: f32, bias: f32, mean: f32, gb_folded: f32, running_var: f32) -> f32 {
  return (sum_w_gw + (bias - mean) * gb_folded) / sqrt(running_var + EPS);
}

// (count, mean, M2) of two disjoint sets merged with Chan et al.'s rule (exact for equal means: a
// constant channel keeps M2 = 0). For train's batch statistics from per-tile partials.
fn merge_moments(a: vec3f, b: vec3f) -> vec3f {
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let count = a.x + b.x;
  let delta = b.y - a.y;
  return vec3f(count, a.y + delta * (b.x / count), a.z + b.z + delta * delta * (a.x * b.x / count));
}

// Tree sum over one workgroup (WORKGROUP_SIZE is a power of two). Deterministic:
// the same inputs give the same bits, whatever the adapter.
var<workgroup> partial_sums: array<f32, WORKGROUP_SIZE>;

// On Dawn's OpenGL ES backend over Mesa llvmpipe, workgroupBarrier() alone let a
// workgroup-memory read move past it (a second reduction read stale sums); the
// extra storageBarrier() keeps the order there and costs nothing elsewhere.
fn sync_workgroup() {
  storageBarrier();
  workgroupBarrier();
}

fn workgroup_sum(local: u32, value: f32) -> f32 {
  partial_sums[local] = value;
  sync_workgroup();
  for (var half = WORKGROUP_SIZE / 2u; half > 0u; half /= 2u) {
    if (local < half) { partial_sums[local] += partial_sums[local + half]; }
    sync_workgroup();
  }
  let total = partial_sums[0];
  sync_workgroup(); // partial_sums is reused by the next call
  return total;
}
