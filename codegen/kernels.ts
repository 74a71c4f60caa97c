/**
 * Every kernel kind as data: which template, which boolean flags and numeric
 * tile parameters specialise it, and how its grid is laid out. Generation and
 * dispatch read only this.
 *
 * Kinds come in families per pass (forward, dgrad, wgrad):
 * - `conv_forward`, `conv_dgrad`, `conv_wgrad`: one output element per
 *   invocation, no blocking (the reference implementation; any adapter).
 * - `conv_fwd_reg`, `conv_dgrad_reg`, `conv_wgrad_reg`: register-blocked
 *   direct convolution, no workgroup memory, taps unrolled by codegen/tiles.
 *   Made for CPU rasterisers (llvmpipe, SwiftShader) where every per-lane load
 *   is dear and barriers are dearer.
 * - `conv_fwd_wg`, `conv_dgrad_wg`, `conv_wgrad_wg`: implicit GEMM with
 *   workgroup-memory tiling (discrete GPUs), one GEMM core for all three.
 * `wgrad_reduce` is the deterministic second pass of every chunked wgrad;
 * `bn_stats_tiles` merges the per-tile statistics a train-mode `conv_fwd_reg`
 * or `conv_fwd_wg` (flag STATS) writes, in place of `bn_stats` reading z again.
 * codegen/tuning/select.ts picks per adapter and config; codegen/plans.ts binds.
 */
import type { TemplateName } from '../templates/generated.js';
import { tensorSizes, type ConvBNConfig } from './config.js';
import { BLOCKED_WORKGROUP_SIZE } from './tiles/common.js';
import { expandDgradReg } from './tiles/dgrad.js';
import { expandForwardReg, expandStatsTiles } from './tiles/forward.js';
import { expandDgradWg, expandForwardWg, expandWgradWg } from './tiles/igemm.js';
import { expandWgradReduce, expandWgradReg, partialStride, wgradChunks } from './tiles/wgrad.js';

export { partialStride, wgradChunks } from './tiles/wgrad.js';

/**
 * One invocation per element of a tensor, one workgroup per output channel
 * (reductions), or a grid the kind's expansion computes (blocked kernels).
 */
export type Grid =
  | { readonly kind: 'elements'; readonly over: 'x' | 'y' | 'weight' }
  | { readonly kind: 'channels' }
  | { readonly kind: 'tiles' };

/** What a blocked kind adds to its template for one variant and config. */
export interface Expansion {
  /** Extra u32 constants for the header (tile sizes, tile counts, ...). */
  readonly constants: Readonly<Record<string, number>>;
  /** Generated WGSL that replaces each `//@insert NAME` line of the template. */
  readonly inserts: Readonly<Record<string, string>>;
  /** Workgroups to dispatch (grid kind 'tiles'). */
  readonly workgroups: number;
  /** Invocations per workgroup where the tile decides it (else the kind's). */
  readonly workgroupSize?: number;
}

export interface KernelKindSpec {
  readonly template: TemplateName;
  readonly flags: readonly string[];
  /** Numeric tile parameters (positive integers, or 0/1 switches): part of the variant and its key. */
  readonly params?: readonly string[];
  /** The largest value a parameter may take (default DEFAULT_PARAM_MAX: tile sizes). */
  readonly paramMax?: number;
  readonly grid: Grid;
  /** Invocations per workgroup: a power of two (the reductions rely on it), <= every adapter's limit. */
  readonly workgroupSize: number;
  /** Blocked kinds: constants, generated code and grid for a variant (throws on a tile that does not fit the config). */
  readonly expand?: (variant: KernelVariant, c: ConvBNConfig) => Expansion;
  /**
   * A per-channel kernel whose outputs are sums over the batch (or per-channel
   * copies): a batch split into chunks may run it per chunk and add the results.
   */
  readonly summable?: boolean;
}

/** Tile parameters are sizes and switches: anything larger is a mistake, not a tile. */
export const DEFAULT_PARAM_MAX = 4096;

const CONV_PARAMS = {
  forward: ['CO_B', 'PY', 'PX', 'UNROLL_KH', 'FLAT'],
  dgrad: ['CI_B', 'PY', 'PX'],
  wgrad: ['CO_B', 'CI_B', 'PX', 'KH_B'],
  igemm: ['TM', 'TN', 'TK', 'KS'],
} as const;

export const KERNELS = {
  conv_forward: { template: 'conv_forward', flags: ['TUNE'], grid: { kind: 'elements', over: 'y' }, workgroupSize: 64 },
  conv_dgrad: { template: 'conv_dgrad', flags: ['TUNE'], grid: { kind: 'elements', over: 'x' }, workgroupSize: 64 },
  conv_wgrad: { template: 'conv_wgrad', flags: [], grid: { kind: 'elements', over: 'weight' }, workgroupSize: 64 },
  conv_fwd_reg: {
    template: 'conv_fwd_reg', flags: ['TUNE', 'STATS'], params: CONV_PARAMS.forward, grid: { kind: 'tiles' }, workgroupSize: BLOCKED_WORKGROUP_SIZE,
    expand: expandForwardReg,
  },
  conv_dgrad_reg: {
    template: 'conv_dgrad_reg', flags: ['TUNE'], params: CONV_PARAMS.dgrad, grid: { kind: 'tiles' }, workgroupSize: BLOCKED_WORKGROUP_SIZE,
    expand: expandDgradReg,
  },
  conv_wgrad_reg: {
    template: 'conv_wgrad_reg', flags: [], params: CONV_PARAMS.wgrad, grid: { kind: 'tiles' }, workgroupSize: BLOCKED_WORKGROUP_SIZE,
    expand: expandWgradReg,
  },
  conv_fwd_wg: {
    template: 'conv_fwd_wg', flags: ['TUNE', 'STATS'], params: CONV_PARAMS.igemm, grid: { kind: 'tiles' }, workgroupSize: BLOCKED_WORKGROUP_SIZE,
    expand: expandForwardWg,
  },
  conv_dgrad_wg: {
    template: 'conv_dgrad_wg', flags: ['TUNE'], params: CONV_PARAMS.igemm, grid: { kind: 'tiles' }, workgroupSize: BLOCKED_WORKGROUP_SIZE,
    expand: expandDgradWg,
  },
  conv_wgrad_wg: {
    template: 'conv_wgrad_wg', flags: [], params: CONV_PARAMS.igemm, grid: { kind: 'tiles' }, workgroupSize: BLOCKED_WORKGROUP_SIZE,
    expand: expandWgradWg,
  },
  wgrad_reduce: {
    template: 'wgrad_reduce', flags: ['TUNE', 'FOLD'], grid: { kind: 'channels' }, workgroupSize: 64, summable: true,
    expand: expandWgradReduce,
  },
  // 256 invocations: on a GPU one workgroup per channel is all the parallelism there is (two passes over z, ~1 ms for
  // layer a at 64 on an H100); on llvmpipe train mode mostly takes bn_stats_tiles instead.
  bn_stats: { template: 'bn_stats', flags: ['BATCH'], grid: { kind: 'channels' }, workgroupSize: 256 },
  // Train's batch statistics from a STATS forward's per-tile partials; TILES: that forward's partials per channel.
  bn_stats_tiles: {
    template: 'bn_stats_tiles', flags: [], params: ['TILES'], paramMax: 2 ** 30, grid: { kind: 'channels' }, workgroupSize: 64,
    expand: expandStatsTiles,
  },
  bn_apply: { template: 'bn_apply', flags: [], grid: { kind: 'elements', over: 'y' }, workgroupSize: 64 },
  bn_grad_reduce: { template: 'bn_grad_reduce', flags: ['BATCH'], grid: { kind: 'channels' }, workgroupSize: 64 },
  bn_grad_apply: { template: 'bn_grad_apply', flags: ['BATCH', 'PAIR'], grid: { kind: 'elements', over: 'y' }, workgroupSize: 64 },
  folded_grads: { template: 'folded_grads', flags: ['TUNE'], grid: { kind: 'channels' }, workgroupSize: 64, summable: true },
  train_wgrad_scalar: { template: 'train_wgrad_scalar', flags: [], grid: { kind: 'channels' }, workgroupSize: 64, summable: true },
} as const satisfies Record<string, KernelKindSpec>;

export type KernelKind = keyof typeof KERNELS;

/** A kernel kind with its flags (and tile parameters) set: what a plan step names and a cache key is built from. */
export interface KernelVariant {
  readonly kind: KernelKind;
  readonly flags: Readonly<Record<string, boolean>>;
  /** The kind's tile parameters, every one of them; absent for kinds without any. */
  readonly params?: Readonly<Record<string, number>>;
}

export function kernelSpec(kind: KernelKind): KernelKindSpec {
  return KERNELS[kind];
}

/** Storage buffers are named by what they hold; their sizes follow from the config. */
export function bindingElements(name: string, c: ConvBNConfig): number {
  const s = tensorSizes(c);
  switch (name) {
    case 'x': case 'gradX': return s.x;
    case 'weight': case 'gradWeight': return s.weight;
    case 'y': case 'z': case 'gradOut': case 'gradZ': return s.y;
    case 'channels': return 5 * c.Cout;
    case 'stats': return 2 * c.Cout;
    case 'channelGrads': return 3 * c.Cout;
    case 'partials': return wgradChunks(c) * partialStride(c);
    case 'statsScratch': return s.y;
    default: throw new Error(`a template declares binding '${name}', which has no size rule in codegen/kernels.ts`);
  }
}

/** Invocations (elements grid) or workgroups (channels grid) the kernel needs; tiles grids come from the expansion. */
export function gridExtent(spec: KernelKindSpec, c: ConvBNConfig): { workgroups: number } {
  if (spec.grid.kind === 'channels') return { workgroups: c.Cout };
  if (spec.grid.kind === 'tiles') throw new Error('a tiles grid comes from the kind\'s expansion, not from gridExtent');
  const s = tensorSizes(c);
  const count = spec.grid.over === 'x' ? s.x : spec.grid.over === 'y' ? s.y : s.weight;
  return { workgroups: Math.ceil(count / spec.workgroupSize) };
}

/** Every adapter allows 65535 workgroups per dimension; wider grids fold into y. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

export function dispatchFor(workgroups: number): [number, number, number] {
  if (workgroups <= MAX_WORKGROUPS_PER_DIMENSION) return [workgroups, 1, 1];
  return [MAX_WORKGROUPS_PER_DIMENSION, Math.ceil(workgroups / MAX_WORKGROUPS_PER_DIMENSION), 1];
}
