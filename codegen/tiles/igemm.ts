/**
 * Implicit GEMM with workgroup-memory tiling, for GPUs where shared memory is
 * fast and barriers cheap (the opposite of a CPU rasteriser). One GEMM core
 * (templates/igemm_core.wgsl) for all three passes; each pass's template gives
 * the loaders that read A and B straight from the tensors (im2col on the fly)
 * and the store. 64 invocations (8 x 8) per K slice, each computing a
 * (TM/8) x (TN/8) block of a TM x TN tile, K staged TK at a time. KS > 1
 * splits K inside the workgroup: KS groups of 64 invocations take every
 * KS-th K step and add their blocks at the end, so a layer with few tiles and
 * a long K (ResNet's deep layers: 64 tiles, K = 4608) keeps KS times more
 * invocations in flight to hide memory latency, with no second kernel.
 *
 *   forward: per group, M = Cout/g, N = batch pixels, K = Cin/g * kH * kW
 *   dgrad:   per group and stride phase, M = Cin/g, N = the phase's input pixels,
 *            K = Cout/g * the taps that reach the phase (codegen/stride-phases.ts)
 *   wgrad:   per group and chunk of rows, M = Cout/g, N = Cin/g * kH * kW,
 *            K = the chunk's pixels; partial sums for wgrad_reduce, as conv_wgrad_reg.
 */
import { TEMPLATES } from '../../templates/generated.js';
import { outputShape, type ConvBNConfig } from '../config.js';
import type { Expansion, KernelVariant } from '../kernels.js';
import { ceilDiv, i32, param, statsPartialsFit, TileMismatchError, u32 } from './common.js';
import { axisPhases, type AxisPhase } from '../stride-phases.js';
import { partialStride, rowsPerChunk, wgradChunks } from './wgrad.js';

export type IgemmPass = 'forward' | 'dgrad' | 'wgrad';

export interface IgemmTile {
  readonly TM: number;
  readonly TN: number;
  readonly TK: number;
  /** K slices per workgroup (64 invocations each). */
  readonly KS: number;
}

/** Invocations per K slice (8 x 8). */
const SLICE_INVOCATIONS = 64;
/** WebGPU's default limits, which every adapter meets: workgroup memory bytes and invocations per workgroup. */
const WORKGROUP_STORAGE_BYTES = 16384;
const WORKGROUP_INVOCATIONS = 256;

/**
 * Floats of the exchange area: the C block and row sums the KS slices add through, then (`stats`)
 * the (count, mean, M2) of each row's 8 invocations; at least 1 (WGSL arrays are not empty).
 */
function exchangeFloats(t: IgemmTile, stats: boolean): number {
  return Math.max(1, t.KS > 1 ? t.TM * t.TN + t.TM : 0, stats ? t.TM * 8 * 3 : 0);
}

/** Workgroup memory a tile takes, in f32s: KS staged A and B tiles, and the exchange area. */
export function igemmWorkgroupFloats(t: IgemmTile, stats = false): number {
  return t.KS * t.TK * (t.TM + t.TN) + exchangeFloats(t, stats);
}

/** `stats`: the forward's STATS epilogue, whose merge scratch must fit too. */
export function igemmTileProblem(t: IgemmTile, stats = false): string | undefined {
  for (const [name, v] of [['TM', t.TM], ['TN', t.TN]] as const) {
    if (v !== 8 && v !== 16 && v !== 32 && v !== 64) return `${name} must be 8, 16, 32 or 64`;
  }
  if (t.TK !== 4 && t.TK !== 8 && t.TK !== 16) return 'TK must be 4, 8 or 16';
  if (t.KS !== 1 && t.KS !== 2 && t.KS !== 4) return 'KS must be 1, 2 or 4';
  if (t.KS * SLICE_INVOCATIONS > WORKGROUP_INVOCATIONS) return `KS x ${SLICE_INVOCATIONS} invocations exceed ${WORKGROUP_INVOCATIONS}`;
  // common.wgsl's reduction scratch (one f32 per invocation) counts too where a compiler keeps it.
  const bytes = 4 * (igemmWorkgroupFloats(t, stats) + t.KS * SLICE_INVOCATIONS);
  if (bytes > WORKGROUP_STORAGE_BYTES) return `the tile needs ${bytes} bytes of workgroup memory (at most ${WORKGROUP_STORAGE_BYTES})`;
  return undefined;
}

export function igemmTileOf(variant: KernelVariant): IgemmTile {
  const p = variant.params;
  return { TM: param(p, 'TM'), TN: param(p, 'TN'), TK: param(p, 'TK'), KS: param(p, 'KS') };
}

/** The dgrad's stride phases along both axes (codegen/stride-phases.ts). */
function dgradPhases(c: ConvBNConfig): { rows: AxisPhase[]; cols: AxisPhase[] } {
  return {
    rows: axisPhases(c.H, c.kH, c.strideH, c.dilationH, c.padTop),
    cols: axisPhases(c.W, c.kW, c.strideW, c.dilationW, c.padLeft),
  };
}

/**
 * The GEMM of each pass. dgrad: one per group and stride phase (batch = groups x phases), N and K
 * those of the largest phase (a smaller one's workgroups stop at its own K and skip columns past its N).
 */
export function gemmShape(pass: IgemmPass, c: ConvBNConfig): { M: number; N: number; K: number; batch: number } {
  const out = outputShape(c);
  const cinPerGroup = c.Cin / c.groups;
  const coutPerGroup = c.Cout / c.groups;
  const taps = c.kH * c.kW;
  switch (pass) {
    case 'forward': return { M: coutPerGroup, N: c.N * out.H * out.W, K: cinPerGroup * taps, batch: c.groups };
    case 'dgrad': {
      const { rows, cols } = dgradPhases(c);
      const most = (axis: AxisPhase[], of: (p: AxisPhase) => number) => Math.max(...axis.map(of));
      return {
        M: cinPerGroup,
        N: c.N * most(rows, (p) => p.positions) * most(cols, (p) => p.positions),
        K: coutPerGroup * most(rows, (p) => p.count) * most(cols, (p) => p.count),
        batch: c.groups * c.strideH * c.strideW,
      };
    }
    case 'wgrad': return { M: coutPerGroup, N: cinPerGroup * taps, K: rowsPerChunk(c) * out.W, batch: c.groups * wgradChunks(c) };
  }
}

/**
 * The forward's STATS partials, one per output channel and N tile (3 floats each, in the y buffer):
 * their count, or undefined where the tile's merge scratch or the partials do not fit.
 */
export function igemmStatsTiles(c: ConvBNConfig, t: IgemmTile): number | undefined {
  if (igemmTileProblem(t, true)) return undefined;
  const tiles = ceilDiv(gemmShape('forward', c).N, t.TN);
  return statsPartialsFit(c, tiles) ? tiles : undefined;
}

function expandPass(pass: IgemmPass, variant: KernelVariant, c: ConvBNConfig): Expansion {
  const t = igemmTileOf(variant);
  const stats = pass === 'forward' && variant.flags.STATS === true;
  const problem = igemmTileProblem(t, stats);
  if (problem) throw new TileMismatchError(`conv_${pass}_wg`, problem);
  if (stats && variant.flags.TUNE) throw new TileMismatchError('conv_fwd_wg', 'STATS is for train mode, which never folds');
  if (stats && igemmStatsTiles(c, t) === undefined) {
    throw new TileMismatchError('conv_fwd_wg', 'STATS needs 3 floats per N tile and channel to fit in y');
  }
  const g = gemmShape(pass, c);
  const tilesM = ceilDiv(g.M, t.TM);
  const tilesN = ceilDiv(g.N, t.TN);
  const workgroups = tilesM * tilesN * g.batch;
  const inserts: Record<string, string> = { CORE: TEMPLATES.igemm_core };
  if (pass === 'dgrad') inserts.PHASES = phaseTables(c);
  if (pass === 'forward') {
    inserts.STATS_BINDING = stats
      ? '@group(0) @binding(4) var<storage, read_write> statsScratch: array<f32>;'
      : 'var<private> statsScratch: array<f32, 1>;';
  }
  return {
    constants: {
      TM: t.TM, TN: t.TN, TK: t.TK, KS: t.KS, RM: t.TM / 8, RN: t.TN / 8, EXCHANGE_SIZE: exchangeFloats(t, stats),
      GEMM_M: g.M, GEMM_N: g.N, GEMM_K: g.K, GEMM_BATCH: g.batch, TILES_M: tilesM, TILES_N: tilesN,
      ...(pass === 'wgrad' ? { CHUNKS: wgradChunks(c), ROWS_PER_CHUNK: rowsPerChunk(c), PARTIAL_STRIDE: partialStride(c) } : {}),
    },
    inserts,
    workgroups,
    workgroupSize: SLICE_INVOCATIONS * t.KS,
  };
}

/** The dgrad template's per-phase tables of one axis (see conv_dgrad_wg.wgsl): H (rows, kh) or W (columns, kw). */
function axisTables(axis: 'H' | 'W', phases: readonly AxisPhase[]): string[] {
  const table = (name: string, type: 'u32' | 'i32', values: number[]) =>
    `const ${name} = array<${type}, ${values.length}>(${values.map((v) => (type === 'u32' ? u32(v) : i32(v))).join(', ')});`;
  const k = axis === 'H' ? 'KH' : 'KW';
  return [
    table(axis === 'H' ? 'PHASE_ROWS' : 'PHASE_COLS', 'u32', phases.map((p) => p.positions)),
    table(`PHASE_TAPS_${axis}`, 'u32', phases.map((p) => p.count)),
    table(`PHASE_${k}0`, 'u32', phases.map((p) => p.first)),
    table(`PHASE_OFF_${axis}`, 'i32', phases.map((p) => p.offset)),
    `const PHASE_${k}_STEP: u32 = ${u32(phases[0].step)};`,
    `const PHASE_OFF_${axis}_STEP: u32 = ${u32(phases[0].offsetStep)};`,
  ];
}

/** Every table of the dgrad template. */
function phaseTables(c: ConvBNConfig): string {
  const { rows, cols } = dgradPhases(c);
  return [`const PHASES: u32 = ${u32(c.strideH * c.strideW)};`, ...axisTables('H', rows), ...axisTables('W', cols)].join('\n');
}

export const expandForwardWg = (v: KernelVariant, c: ConvBNConfig): Expansion => expandPass('forward', v, c);
export const expandDgradWg = (v: KernelVariant, c: ConvBNConfig): Expansion => expandPass('dgrad', v, c);
export const expandWgradWg = (v: KernelVariant, c: ConvBNConfig): Expansion => expandPass('wgrad', v, c);
