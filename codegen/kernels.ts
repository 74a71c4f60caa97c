/**
 * Every kernel kind as data: which template, which boolean flags specialise
 * it, and how its grid is laid out. Generation and dispatch read only this.
 */
import type { TemplateName } from '../templates/generated.js';
import { tensorSizes, type ConvBNConfig } from './config.js';

/** One invocation per element of a tensor, or one workgroup per output channel (reductions). */
export type Grid = { readonly kind: 'elements'; readonly over: 'x' | 'y' | 'weight' } | { readonly kind: 'channels' };

export interface KernelKindSpec {
  readonly template: TemplateName;
  readonly flags: readonly string[];
  readonly grid: Grid;
  /** Invocations per workgroup: a power of two (the reductions rely on it), <= every adapter's limit. */
  readonly workgroupSize: number;
}

export const KERNELS = {
  conv_forward: { template: 'conv_forward', flags: ['TUNE'], grid: { kind: 'elements', over: 'y' }, workgroupSize: 64 },
  conv_dgrad: { template: 'conv_dgrad', flags: ['TUNE'], grid: { kind: 'elements', over: 'x' }, workgroupSize: 64 },
  conv_wgrad: { template: 'conv_wgrad', flags: [], grid: { kind: 'elements', over: 'weight' }, workgroupSize: 64 },
  bn_stats: { template: 'bn_stats', flags: ['BATCH'], grid: { kind: 'channels' }, workgroupSize: 64 },
  bn_apply: { template: 'bn_apply', flags: [], grid: { kind: 'elements', over: 'y' }, workgroupSize: 64 },
  bn_grad_reduce: { template: 'bn_grad_reduce', flags: ['BATCH'], grid: { kind: 'channels' }, workgroupSize: 64 },
  bn_grad_apply: { template: 'bn_grad_apply', flags: ['BATCH'], grid: { kind: 'elements', over: 'y' }, workgroupSize: 64 },
  folded_grads: { template: 'folded_grads', flags: ['TUNE'], grid: { kind: 'channels' }, workgroupSize: 64 },
  train_wgrad_scalar: { template: 'train_wgrad_scalar', flags: [], grid: { kind: 'channels' }, workgroupSize: 64 },
} as const satisfies Record<string, KernelKindSpec>;

export type KernelKind = keyof typeof KERNELS;

/** A kernel kind with its flags set: what a plan step names and a cache key is built from. */
export interface KernelVariant {
  readonly kind: KernelKind;
  readonly flags: Readonly<Record<string, boolean>>;
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
    default: throw new Error(`a template declares binding '${name}', which has no size rule in codegen/kernels.ts`);
  }
}

/** Invocations (elements grid) or workgroups (channels grid) the kernel needs. */
export function gridExtent(spec: KernelKindSpec, c: ConvBNConfig): { workgroups: number } {
  if (spec.grid.kind === 'channels') return { workgroups: c.Cout };
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
