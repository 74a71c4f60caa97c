/**
 * The one place that decides which implementation and tile each conv pass
 * gets on an adapter: a forced choice (tests, benchmarks, the tuner), else the
 * tuning cache's measured winner, else the heuristic for the adapter's kind.
 *
 * CPU rasterisers (llvmpipe...) get the register-blocked kernels: there a
 * per-lane load costs about twenty multiply-adds, workgroup memory is no
 * cheaper than a storage buffer, and a barrier suspends every invocation, so
 * large register blocks and no barriers win (measured: shared/PLATFORM.md,
 * BENCHMARKS.md). GPUs get the workgroup-memory implicit GEMM.
 */
import { outputShape, type ConvBNConfig } from '../config.js';
import { canFlatten, type ForwardTile } from '../tiles/forward.js';
import type { DgradTile } from '../tiles/dgrad.js';
import type { IgemmTile } from '../tiles/igemm.js';
import type { WgradTile } from '../tiles/wgrad.js';
import type { TuningCache } from './cache.js';
import {
  choiceProblem, PASSES, type Algorithm, type DgradChoice, type ForwardChoice, type KernelChoice, type Pass, type PassChoice,
  type WgradChoice,
} from './choice.js';
import { GENERIC_CPU, type AdapterProfile } from './profile.js';

/** Where kernels will run and what is known about it. */
export interface KernelTarget {
  readonly profile?: AdapterProfile;
  readonly cache?: TuningCache;
  /** Overrides per pass: an algorithm (its heuristic tile) or a full choice. */
  readonly force?: Partial<Record<Pass, Algorithm | PassChoice>>;
}

/** The largest divisor of n that is <= max. */
function divisorUpTo(n: number, max: number): number {
  for (let d = Math.min(n, max); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** A block length near `want` that splits `extent` into equal-ish tiles (56 -> 8, 28 -> 7, 12 -> 6). */
function fitBlock(extent: number, want: number): number {
  const tiles = Math.ceil(extent / want);
  return Math.ceil(extent / tiles);
}

export function heuristicForward(c: ConvBNConfig, algo: Algorithm): ForwardChoice {
  if (algo === 'direct') return { algo };
  if (algo === 'wg') return { algo, tile: heuristicIgemm(c.Cout / c.groups) };
  const coutPerGroup = c.Cout / c.groups;
  const out = outputShape(c);
  const coB = divisorUpTo(coutPerGroup, 8);
  if (canFlatten(c)) {
    return { algo, tile: { CO_B: coB, PY: 1, PX: fitBlock(out.H * out.W, coB >= 8 ? 16 : 32), UNROLL_KH: 0, FLAT: 1 } };
  }
  const thin = coB <= 2; // depthwise-like: few channels share an x load, so share rows across kernel rows instead
  const tile: ForwardTile = {
    CO_B: coB,
    PY: Math.min(out.H, thin ? 4 : 2),
    PX: fitBlock(out.W, 8),
    UNROLL_KH: thin && c.kH > 1 ? 1 : 0,
    FLAT: 0,
  };
  return { algo, tile };
}

export function heuristicDgrad(c: ConvBNConfig, algo: Algorithm): DgradChoice {
  if (algo === 'direct') return { algo };
  if (algo === 'wg') return { algo, tile: heuristicIgemm(c.Cin / c.groups) };
  const cinPerGroup = c.Cin / c.groups;
  const ciB = divisorUpTo(cinPerGroup, 8);
  const qh = Math.ceil(c.H / c.strideH);
  const qw = Math.ceil(c.W / c.strideW);
  const tile: DgradTile = { CI_B: ciB, PY: Math.min(qh, ciB <= 2 ? 4 : 2), PX: fitBlock(qw, 8) };
  return { algo, tile };
}

export function heuristicWgrad(c: ConvBNConfig, algo: Algorithm): WgradChoice {
  if (algo === 'direct') return { algo };
  if (algo === 'wg') return { algo, tile: heuristicIgemm(c.Cout / c.groups) };
  const cinPerGroup = c.Cin / c.groups;
  const coutPerGroup = c.Cout / c.groups;
  const out = outputShape(c);
  const coB = divisorUpTo(coutPerGroup, 4);
  const ciB = divisorUpTo(cinPerGroup, 2);
  const tile: WgradTile = {
    CO_B: coB, CI_B: ciB, PX: fitBlock(out.W, 8), KH_B: coB * ciB * c.kH * c.kW <= 96 ? c.kH : 1,
  };
  return { algo, tile };
}

function heuristicIgemm(m: number): IgemmTile {
  return { TM: m >= 64 ? 64 : m >= 32 ? 32 : 16, TN: 32, TK: 8 };
}

function heuristic(pass: Pass, c: ConvBNConfig, algo: Algorithm): PassChoice {
  switch (pass) {
    case 'forward': return heuristicForward(c, algo);
    case 'dgrad': return heuristicDgrad(c, algo);
    case 'wgrad': return heuristicWgrad(c, algo);
  }
}

/** The algorithm an adapter gets when nothing is forced or cached. */
export function defaultAlgorithm(profile: AdapterProfile): Algorithm {
  return profile.isCpu ? 'reg' : 'wg';
}

/** Kernel choice for every conv pass of `c` on `target` (default: a CPU rasteriser, this project's platform). */
export function selectKernels(c: ConvBNConfig, target: KernelTarget = {}): KernelChoice {
  const profile = target.profile ?? GENERIC_CPU;
  const pick = (pass: Pass): PassChoice => {
    const forced = target.force?.[pass];
    if (forced !== undefined) {
      const choice = typeof forced === 'string' ? heuristic(pass, c, forced) : forced;
      const problem = choiceProblem(pass, choice, c);
      if (problem) throw new Error(`forced ${pass} kernel does not fit this layer: ${problem}`);
      return choice;
    }
    const cached = target.cache?.lookup(profile.key, c, pass);
    if (cached) return cached;
    return heuristic(pass, c, defaultAlgorithm(profile));
  };
  const [forward, dgrad, wgrad] = PASSES.map(pick);
  return { forward: forward as ForwardChoice, dgrad: dgrad as DgradChoice, wgrad: wgrad as WgradChoice };
}
