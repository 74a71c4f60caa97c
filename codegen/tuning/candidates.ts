/**
 * What `convbn tune` times for one pass of one config: the heuristic choice
 * for the adapter first, then a few neighbouring tiles, and one candidate of
 * each other algorithm family that can win somewhere (the workgroup-memory
 * GEMM on GPUs; on a CPU rasteriser it is timed once so the table shows why
 * it loses). Every candidate fits the config (checked with choiceProblem).
 * Kept short: each candidate costs a pipeline compile and a few timed runs.
 */
import { outputShape, type ConvBNConfig } from '../config.js';
import { divisorUpTo, fitBlock } from '../tiles/common.js';
import { canFlatten } from '../tiles/forward.js';
import { choiceProblem, describeChoice, type Pass, type PassChoice } from './choice.js';
import type { AdapterProfile } from './profile.js';
import { defaultAlgorithm, heuristicDgrad, heuristicForward, heuristicWgrad } from './select.js';

export { divisorUpTo } from '../tiles/common.js';

const fit = fitBlock;

function regCandidates(pass: Pass, c: ConvBNConfig): PassChoice[] {
  const out = outputShape(c);
  const cinPerGroup = c.Cin / c.groups;
  const coutPerGroup = c.Cout / c.groups;
  switch (pass) {
    case 'forward': {
      const list: PassChoice[] = [];
      const co = (m: number) => divisorUpTo(coutPerGroup, m);
      if (canFlatten(c)) {
        const hw = out.H * out.W;
        for (const [m, px] of [[16, 16], [8, 32], [32, 8], [16, 8]] as const) {
          list.push({ algo: 'reg', tile: { CO_B: co(m), PY: 1, PX: fit(hw, px), UNROLL_KH: 0, FLAT: 1 } });
        }
      }
      for (const [m, py, px] of [[16, 1, 14], [16, 2, 7], [8, 1, 28], [8, 2, 8], [16, 1, 8], [32, 1, 7]] as const) {
        list.push({ algo: 'reg', tile: { CO_B: co(m), PY: Math.min(py, out.H), PX: fit(out.W, px), UNROLL_KH: 0, FLAT: 0 } });
      }
      if (c.kH > 1 && coutPerGroup <= 2) {
        list.push({ algo: 'reg', tile: { CO_B: co(2), PY: Math.min(4, out.H), PX: fit(out.W, 8), UNROLL_KH: 1, FLAT: 0 } });
        list.push({ algo: 'reg', tile: { CO_B: co(2), PY: Math.min(8, out.H), PX: fit(out.W, 8), UNROLL_KH: 1, FLAT: 0 } });
      }
      return list;
    }
    case 'dgrad': {
      const qh = Math.ceil(c.H / c.strideH);
      const qw = Math.ceil(c.W / c.strideW);
      const ci = (m: number) => divisorUpTo(cinPerGroup, m);
      return ([[16, 2, 7], [16, 1, 14], [8, 2, 8], [8, 1, 28], [32, 1, 7]] as const).map(([m, py, px]) =>
        ({ algo: 'reg', tile: { CI_B: ci(m), PY: Math.min(py, qh), PX: fit(qw, px) } }));
    }
    case 'wgrad': {
      const list: PassChoice[] = [];
      for (const [mo, mi, px, full] of [[16, 2, 2, true], [8, 4, 2, true], [8, 2, 4, true], [4, 2, 8, true], [16, 16, 2, true], [8, 8, 4, true], [16, 1, 2, false]] as const) {
        const coB = divisorUpTo(coutPerGroup, mo);
        const ciB = divisorUpTo(cinPerGroup, mi);
        list.push({ algo: 'reg', tile: { CO_B: coB, CI_B: ciB, PX: Math.min(out.W, px), KH_B: full ? c.kH : 1 } });
      }
      return list;
    }
  }
}

const HEURISTIC = { forward: heuristicForward, dgrad: heuristicDgrad, wgrad: heuristicWgrad } as const;

/** Candidates for one pass, the heuristic choice first, deduplicated, each fitting `c`. */
export function tuningCandidates(pass: Pass, c: ConvBNConfig, profile: AdapterProfile, options: { direct?: boolean } = {}): PassChoice[] {
  const heuristic = HEURISTIC[pass];
  const list: PassChoice[] = [heuristic(c, defaultAlgorithm(profile))];
  if (profile.isCpu) {
    list.push(...regCandidates(pass, c), heuristic(c, 'wg'));
  } else {
    for (const [TM, TN, TK, KS] of [[32, 32, 8, 1], [64, 32, 8, 1], [32, 64, 8, 1], [16, 64, 8, 1], [32, 32, 8, 2], [32, 32, 8, 4],
      [64, 32, 8, 2], [16, 32, 8, 4], [32, 32, 16, 2]] as const) {
      list.push({ algo: 'wg', tile: { TM, TN, TK, KS } });
    }
    list.push(heuristic(c, 'reg'));
  }
  if (options.direct) list.push({ algo: 'direct' });
  const seen = new Set<string>();
  return list.filter((choice) => {
    const key = describeChoice(choice);
    if (seen.has(key) || choiceProblem(pass, choice, c)) return false;
    seen.add(key);
    return true;
  });
}
