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
import { divisorUpTo, fitBlock } from '../tiles/common.js';
import { canFlatten, type ForwardTile } from '../tiles/forward.js';
import type { DgradTile } from '../tiles/dgrad.js';
import { gemmShape, igemmTileProblem, type IgemmPass, type IgemmTile } from '../tiles/igemm.js';
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


/*
 * Tiles for CPU rasterisers, from interleaved measurements on llvmpipe (see
 * BENCHMARKS.md and `convbn tune`): a per-lane load costs ~20 multiply-adds,
 * so blocks grow until the values kept live (accumulators, the x or gradOut
 * values of the current row, the weights of the current tap) start spilling
 * expensively. What won: 16 output channels x ~14 pixels of one row for the
 * forward and dgrad passes (layers a, b, g: 1.1-1.4x faster than 8 x 2 x 8);
 * 16 x 2 channels x 2 pixels for a 3x3 wgrad (1.5x over 4 x 2 x 8); 16 x 16
 * for a 1x1 forward (1.5x over 8 x 16).
 */
const CHANNEL_BLOCK = 16;
const ROW_PIXELS = 14;
const WGRAD_ACCUMULATORS = 288;

export function heuristicForward(c: ConvBNConfig, algo: Algorithm): ForwardChoice {
  if (algo === 'direct') return { algo };
  if (algo === 'wg') return { algo, tile: heuristicIgemm('forward', c) };
  const coutPerGroup = c.Cout / c.groups;
  const out = outputShape(c);
  if (canFlatten(c)) {
    // A 1x1 GEMM: every x load feeds CO_B multiply-adds and every weight PX: square blocks (16 x 16 won for layer c).
    const coB = divisorUpTo(coutPerGroup, CHANNEL_BLOCK);
    return { algo, tile: { CO_B: coB, PY: 1, PX: fitBlock(out.H * out.W, Math.max(8, 256 / coB)), UNROLL_KH: 0, FLAT: 1 } };
  }
  if (coutPerGroup <= 2) {
    // Depthwise-like: few channels share an x load, so share x rows across kernel rows instead.
    return { algo, tile: { CO_B: coutPerGroup, PY: Math.min(out.H, 4), PX: fitBlock(out.W, 8), UNROLL_KH: c.kH > 1 ? 1 : 0, FLAT: 0 } };
  }
  const px = fitBlock(out.W, ROW_PIXELS);
  const py = Math.min(out.H, Math.max(1, Math.round(ROW_PIXELS / px)));
  const tile: ForwardTile = { CO_B: divisorUpTo(coutPerGroup, CHANNEL_BLOCK), PY: py, PX: px, UNROLL_KH: 0, FLAT: 0 };
  return { algo, tile };
}

export function heuristicDgrad(c: ConvBNConfig, algo: Algorithm): DgradChoice {
  if (algo === 'direct') return { algo };
  if (algo === 'wg') return { algo, tile: heuristicIgemm('dgrad', c) };
  const cinPerGroup = c.Cin / c.groups;
  const qh = Math.ceil(c.H / c.strideH);
  const qw = Math.ceil(c.W / c.strideW);
  // Depthwise-like: 2 x 7 won on layer d (1.6x over 4 x 7); otherwise the forward's row of ~14 pixels
  // (layers a, b, f, g: 1.05-1.6x over 2 x 7; convbn tune on llvmpipe, 2026-11-22).
  if (cinPerGroup <= 2) return { algo, tile: { CI_B: cinPerGroup, PY: Math.min(qh, 2), PX: fitBlock(qw, ROW_PIXELS / 2) } };
  const px = fitBlock(qw, ROW_PIXELS);
  const tile: DgradTile = { CI_B: divisorUpTo(cinPerGroup, CHANNEL_BLOCK), PY: Math.min(qh, Math.max(1, Math.round(ROW_PIXELS / px))), PX: px };
  return { algo, tile };
}

export function heuristicWgrad(c: ConvBNConfig, algo: Algorithm): WgradChoice {
  if (algo === 'direct') return { algo };
  if (algo === 'wg') return { algo, tile: heuristicIgemm('wgrad', c) };
  const cinPerGroup = c.Cin / c.groups;
  const coutPerGroup = c.Cout / c.groups;
  const out = outputShape(c);
  const taps = c.kH * c.kW;
  // Accumulators are CO_B * CI_B * KH_B * kW; few pixels per step keep the gradOut values live few.
  const coB = divisorUpTo(coutPerGroup, CHANNEL_BLOCK);
  const ciB = divisorUpTo(cinPerGroup, Math.max(1, Math.floor(WGRAD_ACCUMULATORS / (coB * taps))));
  const full = coB * ciB * taps <= 320;
  const px = coB * ciB <= 2 ? fitBlock(out.W, 8) : Math.min(out.W, 2);
  const tile: WgradTile = { CO_B: coB, CI_B: ciB, PX: px, KH_B: full ? c.kH : 1 };
  return { algo, tile };
}

/**
 * GPUs: 32 x 32 tiles won most layers on an H100 (`convbn tune`, BENCHMARKS-GPU.md). Where the tiles
 * are few (fewer than about four per multiprocessor of a large GPU) and K is long, K is split across
 * slices of the workgroup (each keeping >= 16 K steps), so more invocations hide memory latency.
 */
function heuristicIgemm(pass: IgemmPass, c: ConvBNConfig): IgemmTile {
  const g = gemmShape(pass, c);
  const TM = g.M >= 32 ? 32 : 16;
  const TN = 32;
  const TK = 8;
  const tiles = Math.ceil(g.M / TM) * Math.ceil(g.N / TN) * g.batch;
  const KS = tiles >= FEW_TILES ? 1 : ([4, 2].find((ks) => g.K >= ks * TK * 16 && !igemmTileProblem({ TM, TN, TK, KS: ks })) ?? 1);
  return { TM, TN, TK, KS };
}

const FEW_TILES = 512;

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
