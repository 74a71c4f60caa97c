/**
 * The chunked weight gradient: gW[o, i, kh, kw] = sum over (n, oh, ow) of
 * gradOut[n, o, oh, ow] * x[n, i, oh*sH + kh*dH - pT, ow*sW + kw*dW - pL].
 *
 * The reduction over N*Hout*Wout is split into chunks of whole output rows;
 * pass 1 (conv_wgrad_reg here, or conv_igemm_wg) writes one partial sum per
 * chunk and weight, plus sum(gradOut) per chunk and output channel (the bias
 * and beta gradients, fused into the same loop); pass 2 (wgrad_reduce) adds
 * the chunks in chunk order, so the result is deterministic.
 *
 * In pass 1 an invocation owns CO_B output channels x CI_B input channels x
 * KH_B kernel rows x all KW columns of one chunk and walks its rows PX
 * columns at a time: CO_B * PX gradOut loads and CI_B * KH_B rows of x loads
 * (distinct offsets p*sW + kw*dW) feed CO_B*CI_B*KH_B*KW*PX multiply-adds.
 */
import { outputShape, tensorSizes, type ConvBNConfig } from '../config.js';
import type { Expansion, KernelVariant } from '../kernels.js';
import { alwaysInside, BLOCKED_WORKGROUP_SIZE, ceilDiv, distinct, i32, indent, param, TileMismatchError, u32 } from './common.js';

/** Floats per chunk in the partial sums: every weight, then sum(gradOut) per output channel. */
export function partialStride(c: ConvBNConfig): number {
  return tensorSizes(c).weight + c.Cout;
}

/** At most this many chunks, and partial sums of at most 2^22 floats (16 MiB). */
export const MAX_WGRAD_CHUNKS = 32;
export const MAX_PARTIAL_FLOATS = 2 ** 22;

/**
 * Chunks of the wgrad reduction: enough for parallelism when the weights are
 * few, one when they alone give plenty. A function of the config only (the
 * partial-sum buffer is sized from it), whatever the tile.
 */
export function wgradChunks(c: ConvBNConfig): number {
  const rows = c.N * outputShape(c).H;
  const wanted = Math.max(1, Math.min(MAX_WGRAD_CHUNKS, rows, Math.floor(MAX_PARTIAL_FLOATS / partialStride(c))));
  return ceilDiv(rows, ceilDiv(rows, wanted));
}

export function rowsPerChunk(c: ConvBNConfig): number {
  const rows = c.N * outputShape(c).H;
  return ceilDiv(rows, wgradChunks(c));
}

export interface WgradTile {
  readonly CO_B: number;
  readonly CI_B: number;
  readonly PX: number;
  /** Kernel rows per invocation: 1 or kH. */
  readonly KH_B: number;
}

export function wgradTileProblem(c: ConvBNConfig, t: WgradTile): string | undefined {
  const cinPerGroup = c.Cin / c.groups;
  const coutPerGroup = c.Cout / c.groups;
  if (t.CO_B < 1 || coutPerGroup % t.CO_B !== 0) return `CO_B = ${t.CO_B} must divide Cout/groups = ${coutPerGroup}`;
  if (t.CI_B < 1 || cinPerGroup % t.CI_B !== 0) return `CI_B = ${t.CI_B} must divide Cin/groups = ${cinPerGroup}`;
  if (t.PX < 1) return 'PX must be >= 1';
  if (t.KH_B !== 1 && t.KH_B !== c.kH) return `KH_B must be 1 or kH = ${c.kH}`;
  if (t.CO_B * t.CI_B * t.KH_B * c.kW > 512) return `CO_B * CI_B * KH_B * kW = ${t.CO_B * t.CI_B * t.KH_B * c.kW} accumulators is more than 512`;
  return undefined;
}

export function wgradTileOf(variant: KernelVariant): WgradTile {
  const p = variant.params;
  return { CO_B: param(p, 'CO_B'), CI_B: param(p, 'CI_B'), PX: param(p, 'PX'), KH_B: param(p, 'KH_B') };
}

export function expandWgradReg(variant: KernelVariant, c: ConvBNConfig): Expansion {
  const t = wgradTileOf(variant);
  const problem = wgradTileProblem(c, t);
  if (problem) throw new TileMismatchError('conv_wgrad_reg', problem);
  const out = outputShape(c);
  const { CO_B, CI_B, PX, KH_B } = t;
  const SW = c.strideW, DW = c.dilationW;
  const chunks = wgradChunks(c);
  const coBlocks = c.Cout / CO_B;
  const ciBlocks = c.Cin / c.groups / CI_B;
  const khBlocks = c.kH / KH_B;
  const invocations = chunks * coBlocks * ciBlocks * khBlocks;
  const owBlocks = ceilDiv(out.W, PX);
  const hw = out.H * out.W;

  const prologue: string[] = [];
  for (let j = 0; j < CO_B; j++) {
    prologue.push(`var sum${j} = 0.0;`);
    for (let i = 0; i < CI_B; i++) {
      for (let k = 0; k < KH_B; k++) prologue.push(Array.from({ length: c.kW }, (_, kw) => `var a${j}_${i}_${k}_${kw} = 0.0;`).join(' '));
    }
  }

  const body: string[] = [];
  const colGuard = out.W % PX !== 0;
  for (let j = 0; j < CO_B; j++) {
    for (let p = 0; p < PX; p++) {
      const at = `g_row + ${u32(j * hw)} + ow0 + ${u32(p)}`;
      body.push(colGuard
        ? `let d${j}_${p} = select(0.0, gradOut[min(${at}, g_row + ${u32(j * hw + out.W - 1)})], ow0 + ${u32(p)} < WOUT);`
        : `let d${j}_${p} = gradOut[${at}];`);
    }
    body.push(`sum${j} += ${Array.from({ length: PX }, (_, p) => `d${j}_${p}`).join(' + ')};`);
  }
  body.push(`let iw0 = i32(ow0 * STRIDE_W) - PAD_LEFT;`);
  const cols = distinct(Array.from({ length: PX * c.kW }, (_, i) => Math.floor(i / c.kW) * SW + (i % c.kW) * DW));
  const colSafe = new Map(cols.map((o) => [o, alwaysInside(o - c.padLeft, PX * SW, owBlocks, c.W)]));
  for (const o of cols) {
    if (colSafe.get(o)) {
      body.push(`let c${o} = u32(iw0 + ${i32(o)});`);
    } else {
      body.push(`let k${o} = iw0 + ${i32(o)} >= 0i && iw0 + ${i32(o)} < ${i32(c.W)};`);
      body.push(`let c${o} = u32(clamp(iw0 + ${i32(o)}, 0i, ${i32(c.W - 1)}));`);
    }
  }
  for (let k = 0; k < KH_B; k++) {
    const kh = KH_B === c.kH ? `${u32(k)}` : 'kh0';
    // Rows: ih = oh*sH + kh*dH - pT for every oh of the output: checked unless always inside.
    const khs = KH_B === c.kH ? [k] : Array.from({ length: c.kH }, (_, i) => i);
    const rowSafe = khs.every((kk) => alwaysInside(kk * c.dilationH - c.padTop, c.strideH, out.H, c.H));
    body.push('{');
    body.push(`  let ih = i32(oh * STRIDE_H + ${kh} * DILATION_H) - PAD_TOP;`);
    if (rowSafe) {
      body.push(`  let xr = x_image + u32(ih) * W;`);
    } else {
      body.push(`  let q = ih >= 0i && ih < ${i32(c.H)};`);
      body.push(`  let xr = x_image + u32(clamp(ih, 0i, ${i32(c.H - 1)})) * W;`);
    }
    for (let i = 0; i < CI_B; i++) {
      for (const o of cols) {
        const conds = [...(rowSafe ? [] : ['q']), ...(colSafe.get(o) ? [] : [`k${o}`])];
        const load = `x[xr + ${u32(i * c.H * c.W)} + c${o}]`;
        body.push(`  let v${i}_${o} = ${conds.length ? `select(0.0, ${load}, ${conds.join(' && ')})` : load};`);
      }
      for (let kw = 0; kw < c.kW; kw++) {
        for (let j = 0; j < CO_B; j++) {
          body.push(`  a${j}_${i}_${k}_${kw} += ${Array.from({ length: PX }, (_, p) => `d${j}_${p} * v${i}_${p * SW + kw * DW}`).join(' + ')};`);
        }
      }
    }
    body.push('}');
  }

  const epilogue: string[] = ['let pb = chunk * PARTIAL_STRIDE;'];
  for (let j = 0; j < CO_B; j++) {
    for (let i = 0; i < CI_B; i++) {
      epilogue.push(`{ let wb = pb + ((cb + ${u32(j)}) * CIN_PER_GROUP + cig + ${u32(i)}) * (KH * KW) + kh0 * KW;`);
      for (let k = 0; k < KH_B; k++) {
        epilogue.push('  ' + Array.from({ length: c.kW }, (_, kw) => `partials[wb + ${u32(k * c.kW + kw)}] = a${j}_${i}_${k}_${kw};`).join(' '));
      }
      epilogue.push('}');
    }
  }
  epilogue.push('if (cib == 0u && khb == 0u) {');
  for (let j = 0; j < CO_B; j++) epilogue.push(`  partials[pb + W_SIZE + cb + ${u32(j)}] = sum${j};`);
  epilogue.push('}');

  return {
    constants: {
      CO_B, CI_B, PX, KH_B, CHUNKS: chunks, ROWS_PER_CHUNK: rowsPerChunk(c), CO_BLOCKS: coBlocks, CI_BLOCKS: ciBlocks,
      KH_BLOCKS: khBlocks, INVOCATIONS: invocations, PARTIAL_STRIDE: partialStride(c),
    },
    inserts: { PROLOGUE: indent(prologue, 2), BODY: indent(body, 6), EPILOGUE: indent(epilogue, 2) },
    workgroups: ceilDiv(invocations, BLOCKED_WORKGROUP_SIZE),
  };
}

/** Floats wgrad_reduce moves per load: 4 when a channel's weights and the partial stride come in fours. */
export function reduceQuad(c: ConvBNConfig): 1 | 4 {
  return ((c.Cin / c.groups) * c.kH * c.kW) % 4 === 0 && partialStride(c) % 4 === 0 ? 4 : 1;
}

/** wgrad_reduce: the chunk count and stride its loops need, and the Quad type its weights move as. */
export function expandWgradReduce(_variant: KernelVariant, c: ConvBNConfig): Expansion {
  const quad = reduceQuad(c);
  const lines = quad === 4
    ? [
      'alias Quad = vec4<f32>;',
      'fn quad_sum(v: Quad) -> f32 { return (v.x + v.y) + (v.z + v.w); }',
      'fn partial_float(j: u32) -> f32 { return partials[j / 4u][j % 4u]; }',
    ]
    : [
      'alias Quad = f32;',
      'fn quad_sum(v: Quad) -> f32 { return v; }',
      'fn partial_float(j: u32) -> f32 { return partials[j]; }',
    ];
  return {
    constants: { CHUNKS: wgradChunks(c), PARTIAL_STRIDE: partialStride(c), QUAD: quad },
    inserts: { QUAD: lines.join('\n') },
    workgroups: c.Cout,
  };
}
