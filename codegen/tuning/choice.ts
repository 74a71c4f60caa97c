/**
 * Which implementation each convolution pass uses: the algorithm and its
 * tile. A choice is plain JSON (the tuning cache stores it) and turns into
 * kernel variants in codegen/plans.ts.
 */
import type { ConvBNConfig } from '../config.js';
import { dgradTileProblem, type DgradTile } from '../tiles/dgrad.js';
import { forwardTileProblem, type ForwardTile } from '../tiles/forward.js';
import { igemmTileProblem, type IgemmTile } from '../tiles/igemm.js';
import { wgradTileProblem, type WgradTile } from '../tiles/wgrad.js';

export type Pass = 'forward' | 'dgrad' | 'wgrad';
export const PASSES: readonly Pass[] = ['forward', 'dgrad', 'wgrad'];

/**
 * 'direct': one output per invocation (reference, any adapter).
 * 'reg': register-blocked, no workgroup memory (CPU rasterisers).
 * 'wg': implicit GEMM tiled through workgroup memory (GPUs).
 */
export type Algorithm = 'direct' | 'reg' | 'wg';
export const ALGORITHMS: readonly Algorithm[] = ['direct', 'reg', 'wg'];

export type ForwardChoice = { readonly algo: 'direct' } | { readonly algo: 'reg'; readonly tile: ForwardTile } | { readonly algo: 'wg'; readonly tile: IgemmTile };
export type DgradChoice = { readonly algo: 'direct' } | { readonly algo: 'reg'; readonly tile: DgradTile } | { readonly algo: 'wg'; readonly tile: IgemmTile };
export type WgradChoice = { readonly algo: 'direct' } | { readonly algo: 'reg'; readonly tile: WgradTile } | { readonly algo: 'wg'; readonly tile: IgemmTile };

export interface KernelChoice {
  readonly forward: ForwardChoice;
  readonly dgrad: DgradChoice;
  readonly wgrad: WgradChoice;
}

export type PassChoice = ForwardChoice | DgradChoice | WgradChoice;

/** Why a choice cannot run a config (a tile that does not divide its channels...), or undefined. */
export function choiceProblem(pass: Pass, choice: PassChoice, c: ConvBNConfig): string | undefined {
  if (choice === null || typeof choice !== 'object') return 'not an object';
  switch (choice.algo) {
    case 'direct': return undefined;
    case 'wg': return igemmTileProblem(choice.tile);
    case 'reg':
      if (pass === 'forward') return forwardTileProblem(c, choice.tile as ForwardTile);
      if (pass === 'dgrad') return dgradTileProblem(c, choice.tile as DgradTile);
      return wgradTileProblem(c, choice.tile as WgradTile);
    default: return `unknown algorithm '${String((choice as { algo: unknown }).algo)}'`;
  }
}

/** Short, human-readable: reg 8x2x8, wg 32x32x8, direct. */
export function describeChoice(choice: PassChoice): string {
  if (choice.algo === 'direct') return 'direct';
  const t = choice.tile as unknown as Record<string, number>;
  const dims = Object.entries(t).map(([k, v]) => `${k}=${v}`).join(',');
  return `${choice.algo}(${dims})`;
}
