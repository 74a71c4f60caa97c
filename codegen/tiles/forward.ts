/**
 * The register-blocked forward convolution (template conv_fwd_reg.wgsl).
 *
 * Each invocation computes CO_B output channels x PY rows x PX columns. Per
 * input channel (and kernel row, unless UNROLL_KH), it loads the x values its
 * tile's taps read, each once (distinct offsets p*strideW + kw*dilationW), and
 * CO_B weights per tap; every x value then feeds CO_B multiply-adds per tap
 * that reads it and every weight PY * PX. On llvmpipe a per-lane load costs
 * ~20 multiply-adds, so these ratios are what the kernel's speed is.
 *
 * UNROLL_KH: the kernel rows are unrolled too and x rows shared between them
 * (rows r*strideH + kh*dilationH), fewer loads for more code (depthwise).
 * FLAT: a 1x1, stride 1, unpadded conv is a GEMM over H*W: the tile runs along
 * the flattened image (PY must be 1), so narrow images waste no lanes. When
 * H*W and PX are multiples of 4 and no tile passes a plane's end, x is read as
 * vec4 (one per-lane load for four pixels: 16% faster on layer c on llvmpipe).
 */
import { outputShape, type ConvBNConfig } from '../config.js';
import type { Expansion, KernelVariant } from '../kernels.js';
import { alwaysInside, BLOCKED_WORKGROUP_SIZE, ceilDiv, distinct, i32, indent, param, statsPartialsFit, tag, TileMismatchError, u32 } from './common.js';

export interface ForwardTile {
  readonly CO_B: number;
  readonly PY: number;
  readonly PX: number;
  readonly UNROLL_KH: 0 | 1;
  readonly FLAT: 0 | 1;
}

/** A 1x1 conv that reads every pixel in place: the image can be flattened. */
export function canFlatten(c: ConvBNConfig): boolean {
  return c.kH === 1 && c.kW === 1 && c.strideH === 1 && c.strideW === 1 &&
    c.padTop === 0 && c.padBottom === 0 && c.padLeft === 0 && c.padRight === 0;
}

/** Why `tile` cannot run `c`, or undefined when it can. */
export function forwardTileProblem(c: ConvBNConfig, t: ForwardTile): string | undefined {
  const coutPerGroup = c.Cout / c.groups;
  if (t.CO_B < 1 || coutPerGroup % t.CO_B !== 0) return `CO_B = ${t.CO_B} must divide Cout/groups = ${coutPerGroup}`;
  if (t.PY < 1 || t.PX < 1) return 'PY and PX must be >= 1';
  if (t.UNROLL_KH !== 0 && t.UNROLL_KH !== 1) return 'UNROLL_KH must be 0 or 1';
  if (t.FLAT !== 0 && t.FLAT !== 1) return 'FLAT must be 0 or 1';
  if (t.FLAT === 1 && !canFlatten(c)) return 'FLAT needs a 1x1, stride 1, unpadded conv';
  if (t.FLAT === 1 && t.PY !== 1) return 'FLAT needs PY = 1';
  if (t.CO_B * t.PY * t.PX > 512) return `CO_B * PY * PX = ${t.CO_B * t.PY * t.PX} accumulators is more than 512`;
  return undefined;
}

/** Tiles of the forward grid: images x tile rows x tile columns (a flattened 1x1 is one row per image). */
export function forwardTileCount(c: ConvBNConfig, t: ForwardTile): number {
  const out = outputShape(c);
  const flat = t.FLAT === 1;
  return c.N * ceilDiv(flat ? 1 : out.H, t.PY) * ceilDiv(flat ? out.H * out.W : out.W, t.PX);
}

/**
 * STATS (train): each invocation also writes, per channel, its tile's (count, mean, M2) of z into the
 * y buffer: the partials per channel (the tile count), or undefined where they do not fit.
 */
export function forwardStatsTiles(c: ConvBNConfig, t: ForwardTile): number | undefined {
  const tiles = forwardTileCount(c, t);
  return statsPartialsFit(c, tiles) ? tiles : undefined;
}

/**
 * The STATS epilogue of channel j: count, mean and M2 of the tile's valid z values, shifted by the
 * first one (a constant channel gets its value as mean and exactly 0 as M2), at statsScratch
 * [(channel * TILE_COUNT + tile) * 3]. bn_stats_tiles merges them (Chan et al.) in tile order.
 */
function tileStats(j: number, PY: number, PX: number, guard: (r: number, p: number) => string[]): string[] {
  const z = (r: number, p: number) => `(a${j}_${r}_${p} + shift)`;
  const lines = [`let z0 = ${z(0, 0)};`, 'var count = 0.0;', 'var sum_d = 0.0;'];
  const each = (body: (r: number, p: number) => string) => {
    for (let r = 0; r < PY; r++) {
      for (let p = 0; p < PX; p++) {
        const g = guard(r, p);
        lines.push(g.length ? `if (${g.join(' && ')}) { ${body(r, p)} }` : body(r, p));
      }
    }
  };
  each((r, p) => `count += 1.0; sum_d += ${z(r, p)} - z0;`);
  lines.push('let mean_d = sum_d / count;', 'var m2 = 0.0;');
  each((r, p) => `{ let e = (${z(r, p)} - z0) - mean_d; m2 += e * e; }`);
  lines.push('let at = (co * TILE_COUNT + tile) * 3u;',
    'statsScratch[at] = count;', 'statsScratch[at + 1u] = z0 + mean_d;', 'statsScratch[at + 2u] = m2;');
  return lines;
}

/** bn_stats_tiles: TILES, the partials per channel that the STATS forward (reg or wg) wrote. */
export function expandStatsTiles(variant: KernelVariant, c: ConvBNConfig): Expansion {
  const tiles = param(variant.params, 'TILES');
  if (!statsPartialsFit(c, tiles)) throw new TileMismatchError('bn_stats_tiles', 'the tile partials do not fit in y');
  return { constants: { TILE_COUNT: tiles }, inserts: {}, workgroups: c.Cout };
}

export function forwardTileOf(variant: KernelVariant): ForwardTile {
  const p = variant.params;
  return {
    CO_B: param(p, 'CO_B'), PY: param(p, 'PY'), PX: param(p, 'PX'),
    UNROLL_KH: param(p, 'UNROLL_KH') as 0 | 1, FLAT: param(p, 'FLAT') as 0 | 1,
  };
}

export function expandForwardReg(variant: KernelVariant, c: ConvBNConfig): Expansion {
  const t = forwardTileOf(variant);
  const problem = forwardTileProblem(c, t);
  if (problem) throw new TileMismatchError('conv_fwd_reg', problem);
  const tune = variant.flags.TUNE === true;
  const stats = variant.flags.STATS === true;
  if (stats && forwardStatsTiles(c, t) === undefined) throw new TileMismatchError('conv_fwd_reg', 'STATS needs 3 floats per tile and channel to fit in y');
  if (stats && tune) throw new TileMismatchError('conv_fwd_reg', 'STATS is for train mode, which never folds');
  const out = outputShape(c);
  const flat = t.FLAT === 1;
  // The virtual geometry: a flattened 1x1 conv is one row of H*W pixels per image.
  const VH = flat ? 1 : c.H;
  const VW = flat ? c.H * c.W : c.W;
  const VHOUT = flat ? 1 : out.H;
  const VWOUT = flat ? out.H * out.W : out.W;
  const SH = c.strideH, SW = c.strideW, DH = c.dilationH, DW = c.dilationW;
  const PT = flat ? 0 : c.padTop, PL = flat ? 0 : c.padLeft;
  const { CO_B, PY, PX } = t;
  const tilesH = ceilDiv(VHOUT, PY);
  const tilesW = ceilDiv(VWOUT, PX);
  // The one tile count, shared with bn_stats_tiles (it reads the STATS partials by tile index).
  const tileCount = forwardTileCount(c, t);
  const coBlocks = c.Cout / CO_B;
  const invocations = tileCount * coBlocks;
  const unrollKh = t.UNROLL_KH === 1 || c.kH === 1;
  // A flattened 1x1 whose planes and tiles come in fours reads x as vec4: every tile starts 4-aligned
  // and none passes its plane's end, so no load needs a check.
  const vecX = flat && (c.H * c.W) % 4 === 0 && PX % 4 === 0 && VWOUT % PX === 0;
  const wPerOut = (c.Cin / c.groups) * c.kH * c.kW;

  // Columns: every distinct offset the tile's taps read, checked only where a tile can leave the row.
  const cols = distinct(Array.from({ length: PX * c.kW }, (_, i) => Math.floor(i / c.kW) * SW + (i % c.kW) * DW));
  const colSafe = new Map(cols.map((o) => [o, alwaysInside(o - PL, PX * SW, tilesW, VW)]));
  const prologue: string[] = [];
  for (let j = 0; j < CO_B; j++) {
    for (let r = 0; r < PY; r++) prologue.push(Array.from({ length: PX }, (_, p) => `var a${j}_${r}_${p} = 0.0;`).join(' '));
  }
  for (const o of cols) {
    if (colSafe.get(o)) {
      prologue.push(`let c${o} = u32(iw0 + ${i32(o)});`);
    } else {
      prologue.push(`let k${o} = iw0 + ${i32(o)} >= 0i && iw0 + ${i32(o)} < ${i32(VW)};`);
      prologue.push(`let c${o} = u32(clamp(iw0 + ${i32(o)}, 0i, ${i32(VW - 1)}));`);
    }
  }

  // Rows: (r, kh) pairs; with a kh loop, the row offset is r*SH + kh*DH at run time.
  const body: string[] = [];
  const rowKeys: { key: string; offsets: number[] }[] = [];
  const rowOf = (r: number, kh: number): string => (unrollKh ? `${tag(r * SH + kh * DH)}` : `${r}`);
  if (unrollKh) {
    for (const ro of distinct(Array.from({ length: PY * c.kH }, (_, i) => Math.floor(i / c.kH) * SH + (i % c.kH) * DH))) {
      rowKeys.push({ key: tag(ro), offsets: [ro] });
    }
  } else {
    for (let r = 0; r < PY; r++) rowKeys.push({ key: `${r}`, offsets: Array.from({ length: c.kH }, (_, kh) => r * SH + kh * DH) });
  }
  for (const { key, offsets } of rowKeys) {
    const safe = offsets.every((ro) => alwaysInside(ro - PT, PY * SH, tilesH, VH));
    const ih = unrollKh ? `ih0 + ${i32(offsets[0])}` : `ih0 + ${i32(Number(key) * SH)} + i32(kh * DILATION_H)`;
    if (safe) {
      body.push(`let x${key} = x_channel + u32(${ih}) * ${u32(VW)};`);
    } else {
      body.push(`let ihr${key} = ${ih};`);
      body.push(`let q${key} = ihr${key} >= 0i && ihr${key} < ${i32(VH)};`);
      body.push(`let x${key} = x_channel + u32(clamp(ihr${key}, 0i, ${i32(VH - 1)})) * ${u32(VW)};`);
    }
    if (vecX) {
      body.push(`let xq${key} = (x${key} + c0) / 4u;`);
      for (let q = 0; q < PX / 4; q++) {
        body.push(`let x4_${key}_${q} = x[xq${key} + ${u32(q)}];`);
        for (let j = 0; j < 4; j++) body.push(`let v${key}_${4 * q + j} = x4_${key}_${q}.${'xyzw'[j]};`);
      }
      continue;
    }
    for (const o of cols) {
      const conds = [...(safe ? [] : [`q${key}`]), ...(colSafe.get(o) ? [] : [`k${o}`])];
      const load = `x[x${key} + c${o}]`;
      body.push(`let v${key}_${o} = ${conds.length ? `select(0.0, ${load}, ${conds.join(' && ')})` : load};`);
    }
  }
  const khs = unrollKh ? Array.from({ length: c.kH }, (_, kh) => kh) : [0];
  for (const kh of khs) {
    for (let kw = 0; kw < c.kW; kw++) {
      for (let j = 0; j < CO_B; j++) {
        const index = `wk + ${u32(j * wPerOut + (unrollKh ? kh * c.kW : 0) + kw)}`;
        body.push(`let w${j}_${kh}_${kw} = weight[${index}];`);
      }
      for (let j = 0; j < CO_B; j++) {
        for (let r = 0; r < PY; r++) {
          body.push(Array.from({ length: PX }, (_, p) =>
            `a${j}_${r}_${p} += v${rowOf(r, kh)}_${p * SW + kw * DW} * w${j}_${kh}_${kw};`).join(' '));
        }
      }
    }
  }

  const epilogue: string[] = [];
  const rowGuard = VHOUT % PY !== 0;
  const colGuard = VWOUT % PX !== 0;
  for (let j = 0; j < CO_B; j++) {
    epilogue.push('{');
    epilogue.push(`  let co = cb + ${u32(j)};`);
    // TUNE: s is read here, not before the loop, so it is not live across it (registers are the scarce thing).
    if (tune) epilogue.push('  let s = bn_fold_scale(channels[CH_GAMMA + co], channels[CH_VAR + co]);');
    epilogue.push(tune
      ? '  let shift = (channels[CH_BIAS + co] - channels[CH_MEAN + co]) * s + channels[CH_BETA + co];'
      : '  let shift = channels[CH_BIAS + co];');
    epilogue.push(`  let yb = ((n * COUT + co) * ${u32(VHOUT)} + oh0) * ${u32(VWOUT)} + ow0;`);
    for (let r = 0; r < PY; r++) {
      for (let p = 0; p < PX; p++) {
        const guard = [...(rowGuard ? [`oh0 + ${u32(r)} < ${u32(VHOUT)}`] : []), ...(colGuard ? [`ow0 + ${u32(p)} < ${u32(VWOUT)}`] : [])];
        const store = tune
          ? `y[yb + ${u32(r * VWOUT + p)}] = fma(a${j}_${r}_${p}, s, shift);`
          : `y[yb + ${u32(r * VWOUT + p)}] = a${j}_${r}_${p} + shift;`;
        epilogue.push(guard.length ? `  if (${guard.join(' && ')}) { ${store} }` : `  ${store}`);
      }
    }
    if (stats) epilogue.push(...indent(tileStats(j, PY, PX, (r, p) => [
      ...(rowGuard ? [`oh0 + ${u32(r)} < ${u32(VHOUT)}`] : []), ...(colGuard ? [`ow0 + ${u32(p)} < ${u32(VWOUT)}`] : []),
    ]), 2).split('\n'));
    epilogue.push('}');
  }

  return {
    constants: {
      CO_B, PY, PX, VH, VW, VHOUT, VWOUT, TILES_H: tilesH, TILES_W: tilesW, TILE_COUNT: tileCount,
      INVOCATIONS: invocations, KH_LOOP: unrollKh ? 1 : c.kH, V_STRIDE_H: SH, V_STRIDE_W: SW, V_PAD_TOP: PT, V_PAD_LEFT: PL,
    },
    inserts: {
      X_ELEMENT: `alias XElement = ${vecX ? 'vec4<f32>' : 'f32'};`,
      STATS_BINDING: stats ? '@group(0) @binding(4) var<storage, read_write> statsScratch: array<f32>;' : '',
      PROLOGUE: indent(prologue, 2), BODY: indent(body, 6), EPILOGUE: indent(epilogue, 2),
    },
    workgroups: ceilDiv(invocations, BLOCKED_WORKGROUP_SIZE),
  };
}
