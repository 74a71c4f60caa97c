/**
 * The register-blocked input gradient (template conv_dgrad_reg.wgsl): the
 * transposed convolution, decomposed by stride phase so that no tap is
 * wasted on positions the stride skips.
 *
 * Input row ih = ph + strideH * qh (phase ph in [0, strideH)) receives tap kh
 * only when (ph + padTop - kh * dilationH) is a multiple of strideH, and then
 * from output row oh = qh + (ph + padTop - kh * dilationH) / strideH. So each
 * phase is a stride-1 correlation over (qh, qw) with its own, codegen-time
 * list of taps. One invocation computes CI_B input channels x PY x PX
 * positions of one phase; workgroups take the phases in turn, so each
 * workgroup has one phase (one switch branch) and the threads get a mix.
 * TUNE: W' = W * s, formed as loads happen: s (one per output channel) multiplies
 * either the weights or the gradOut values, whichever the phase loads fewer of.
 */
import { outputShape, type ConvBNConfig } from '../config.js';
import type { Expansion, KernelVariant } from '../kernels.js';
import { phaseTaps } from '../stride-phases.js';
import { alwaysInside, BLOCKED_WORKGROUP_SIZE, ceilDiv, distinct, i32, indent, param, tag, TileMismatchError, u32 } from './common.js';

export interface DgradTile {
  readonly CI_B: number;
  readonly PY: number;
  readonly PX: number;
}

export function dgradTileProblem(c: ConvBNConfig, t: DgradTile): string | undefined {
  const cinPerGroup = c.Cin / c.groups;
  if (t.CI_B < 1 || cinPerGroup % t.CI_B !== 0) return `CI_B = ${t.CI_B} must divide Cin/groups = ${cinPerGroup}`;
  if (t.PY < 1 || t.PX < 1) return 'PY and PX must be >= 1';
  if (t.CI_B * t.PY * t.PX > 512) return `CI_B * PY * PX = ${t.CI_B * t.PY * t.PX} accumulators is more than 512`;
  return undefined;
}

export function dgradTileOf(variant: KernelVariant): DgradTile {
  const p = variant.params;
  return { CI_B: param(p, 'CI_B'), PY: param(p, 'PY'), PX: param(p, 'PX') };
}

export function expandDgradReg(variant: KernelVariant, c: ConvBNConfig): Expansion {
  const t = dgradTileOf(variant);
  const problem = dgradTileProblem(c, t);
  if (problem) throw new TileMismatchError('conv_dgrad_reg', problem);
  const tune = variant.flags.TUNE === true;
  const out = outputShape(c);
  const { CI_B, PY, PX } = t;
  const SH = c.strideH, SW = c.strideW;
  const qh = ceilDiv(c.H, SH);
  const qw = ceilDiv(c.W, SW);
  const tilesH = ceilDiv(qh, PY);
  const tilesW = ceilDiv(qw, PX);
  const tileCount = c.N * tilesH * tilesW;
  const ciBlocks = c.Cin / CI_B;
  const phases = SH * SW;
  const workgroupsPerPhase = ceilDiv(ciBlocks * tileCount, BLOCKED_WORKGROUP_SIZE);
  const khw = c.kH * c.kW;

  const functions: string[] = [];
  const cases: string[] = [];
  for (let ph = 0; ph < SH; ph++) {
    for (let pw = 0; pw < SW; pw++) {
      const phase = ph * SW + pw;
      const rowTaps = phaseTaps(ph, c.padTop, c.kH, c.dilationH, SH);
      const colTaps = phaseTaps(pw, c.padLeft, c.kW, c.dilationW, SW);
      const lines: string[] = [];
      for (let i = 0; i < CI_B; i++) {
        for (let r = 0; r < PY; r++) lines.push(Array.from({ length: PX }, (_, p) => `var a${i}_${r}_${p} = 0.0;`).join(' '));
      }
      if (rowTaps.length > 0 && colTaps.length > 0) {
        // Row taps run in a loop (kh = kh0 + t * khStep, d = d0 - t * dStep): the body stays small.
        const khStep = rowTaps.length > 1 ? rowTaps[1].k - rowTaps[0].k : 1;
        const dStep = rowTaps.length > 1 ? rowTaps[0].d - rowTaps[1].d : 0;
        const cols = distinct(colTaps.flatMap((tp) => Array.from({ length: PX }, (_, p) => p + tp.d)));
        const colSafe = new Map(cols.map((o) => [o, alwaysInside(o, PX, tilesW, out.W)]));
        const rowSafe = Array.from({ length: PY }, (_, r) => rowTaps.every((tp) => alwaysInside(r + tp.d, PY, tilesH, out.H)));
        // TUNE: s multiplies whichever side of the product this phase loads fewer of per row tap.
        const scaleGrad = tune && PY * cols.length < CI_B * colTaps.length;
        const scaleWeights = tune && !scaleGrad;
        for (const o of cols) {
          if (colSafe.get(o)) {
            lines.push(`let c${tag(o)} = u32(qw0 + ${i32(o)});`);
          } else {
            lines.push(`let k${tag(o)} = qw0 + ${i32(o)} >= 0i && qw0 + ${i32(o)} < ${i32(out.W)};`);
            lines.push(`let c${tag(o)} = u32(clamp(qw0 + ${i32(o)}, 0i, ${i32(out.W - 1)}));`);
          }
        }
        lines.push('for (var j = 0u; j < COUT_PER_GROUP; j++) {');
        lines.push('  let co = first_out + j;');
        if (tune) lines.push('  let s = bn_fold_scale(channels[CH_GAMMA + co], channels[CH_VAR + co]);');
        lines.push('  let g = (n * COUT + co) * (HOUT * WOUT);');
        lines.push(`  let wb = (co * CIN_PER_GROUP + cig) * ${u32(khw)};`);
        lines.push(`  for (var t = 0u; t < ${u32(rowTaps.length)}; t++) {`);
        lines.push(`    let kh = ${u32(rowTaps[0].k)} + t * ${u32(khStep)};`);
        lines.push(`    let oh0 = qh0 + ${i32(rowTaps[0].d)} - i32(t * ${u32(dStep)});`);
        const body: string[] = [];
        for (let r = 0; r < PY; r++) {
          if (rowSafe[r]) {
            body.push(`let h${r} = g + u32(oh0 + ${i32(r)}) * WOUT;`);
          } else {
            body.push(`let q${r} = oh0 + ${i32(r)} >= 0i && oh0 + ${i32(r)} < ${i32(out.H)};`);
            body.push(`let h${r} = g + u32(clamp(oh0 + ${i32(r)}, 0i, ${i32(out.H - 1)})) * WOUT;`);
          }
          for (const cc of cols) {
            const conds = [...(rowSafe[r] ? [] : [`q${r}`]), ...(colSafe.get(cc) ? [] : [`k${tag(cc)}`])];
            const load = `gradOut[h${r} + c${tag(cc)}]`;
            const value = conds.length ? `select(0.0, ${load}, ${conds.join(' && ')})` : load;
            body.push(`let v${r}_${tag(cc)} = ${scaleGrad ? `${value} * s` : value};`);
          }
        }
        for (const ct of colTaps) {
          for (let i = 0; i < CI_B; i++) {
            body.push(`let w${i}_${ct.k} = weight[wb + kh * KW + ${u32(i * khw + ct.k)}]${scaleWeights ? ' * s' : ''};`);
          }
          for (let i = 0; i < CI_B; i++) {
            for (let r = 0; r < PY; r++) {
              body.push(Array.from({ length: PX }, (_, p) => `a${i}_${r}_${p} += v${r}_${tag(p + ct.d)} * w${i}_${ct.k};`).join(' '));
            }
          }
        }
        lines.push(indent(body, 4));
        lines.push('  }');
        lines.push('}');
      }
      // Stores: ih = ph + SH * (qh0 + r), iw = pw + SW * (qw0 + p); guarded where the tile can pass the edge.
      const rowGuard = !alwaysInside(ph, SH * PY, tilesH, c.H) || !alwaysInside(ph + SH * (PY - 1), SH * PY, tilesH, c.H);
      const colGuard = !alwaysInside(pw, SW * PX, tilesW, c.W) || !alwaysInside(pw + SW * (PX - 1), SW * PX, tilesW, c.W);
      lines.push(`let ih0 = ${u32(ph)} + ${u32(SH)} * u32(qh0);`);
      lines.push(`let iw0 = ${u32(pw)} + ${u32(SW)} * u32(qw0);`);
      for (let i = 0; i < CI_B; i++) {
        lines.push(`let xb${i} = ((n * CIN + ci0 + ${u32(i)}) * H + ih0) * W + iw0;`);
        for (let r = 0; r < PY; r++) {
          for (let p = 0; p < PX; p++) {
            const guard = [...(rowGuard ? [`ih0 + ${u32(r * SH)} < H`] : []), ...(colGuard ? [`iw0 + ${u32(p * SW)} < W`] : [])];
            const store = `gradX[xb${i} + ${u32(r * SH * c.W + p * SW)}] = a${i}_${r}_${p};`;
            lines.push(guard.length ? `if (${guard.join(' && ')}) { ${store} }` : store);
          }
        }
      }
      functions.push(`fn phase${phase}(n: u32, ci0: u32, qh0: i32, qw0: i32) {
  let first_out = (ci0 / CIN_PER_GROUP) * COUT_PER_GROUP;
  let cig = ci0 % CIN_PER_GROUP;
${indent(lines, 2)}
}`);
      cases.push(`case ${u32(phase)}: { phase${phase}(n, ci0, qh0, qw0); }`);
    }
  }
  cases.push('default: {}');
  return {
    constants: { CI_B, PY, PX, TILES_H: tilesH, TILES_W: tilesW, TILE_COUNT: tileCount, CI_BLOCKS: ciBlocks, PHASES: phases },
    inserts: { PHASES: functions.join('\n\n'), SWITCH: indent([`switch phase {`, ...cases.map((s) => `  ${s}`), '}'], 2) },
    workgroups: phases * workgroupsPerPhase,
  };
}
