/**
 * Parameter-block layouts of the AssemblyScript kernels (runtime/wasm/assembly/): the i32 / f32
 * slot of each field. The one copy: `npm run build:wasm` writes them into runtime/wasm/assembly/slots.ts
 * (assemblySlotsSource), which the kernels import, so host and kernels cannot disagree.
 */

/** Exported kernels, in the order the thread pool indexes them (checked against the module's exports as it loads). */
export const KERNELS = [
  'pack_input', 'pack_weights', 'conv_direct4', 'conv_direct1', 'conv_scalar', 'dgrad_scalar',
  'wgrad_scalar', 'wgrad4', 'wgrad1', 'wgrad_nhwc', 'wgrad_nhwc_sum', 'wgrad_nhwc_gather', 'wgrad_nhwc_chan_sums', 'bn_train_fwd', 'bn_train_bwd', 'bn_eval_bwd', 'chan_sum',
  'transpose_images',
] as const;
export type KernelName = (typeof KERNELS)[number];

export const PK = {
  PLANES: 0, SRCH: 1, SRCW: 2, UPH: 3, UPW: 4, PADT: 5, PADL: 6, R: 7, S: 8, PW: 9, SRC: 10, DST: 11, PPT: 12,
} as const;

export const PWT = {
  G: 0, CO: 1, C: 2, KH: 3, KW: 4, SRC: 5, SCALE: 6, DST: 7, LAYOUT: 8, BLK: 9,
  SKH: 10, SKW: 11, KH0: 12, KHS: 13, KW0: 14, KWS: 15,
} as const;

export const CV = {
  N: 0, G: 1, C: 2, CO: 3, R: 4, S: 5, PW: 6, KH: 7, KW: 8, SH: 9, DH: 10, DW: 11, HO: 12, WO: 13,
  X: 14, W: 15, OUT: 16, BIAS: 17, OUT2: 18, M2: 19, S2: 20, B2: 21, RPT: 22, CPT: 23, PLANE: 24, TAB: 25, INNER: 26, FUSE: 27, SRCH: 28, SRCW: 29, UPH: 30, UPW: 31,
  PADT: 32, PADL: 33, SCRATCH: 34, SSTRIDE: 35, UPT: 36, UNITS: 37, OSTEP: 38, OROW: 39, OPLANE: 40,
} as const;

export const SC = {
  N: 0, CIN: 1, COUT: 2, H: 3, W: 4, KH: 5, KW: 6, SH: 7, SW: 8, PT: 9, PL: 10, DH: 11, DW: 12, G: 13,
  HO: 14, WO: 15, A: 16, B: 17, OUT: 18, BIAS: 19, OUT2: 20, M2: 21, S2: 22, B2: 23,
} as const;

export const WG = {
  N: 0, G: 1, C: 2, CO: 3, R: 4, S: 5, PW: 6, KH: 7, KW: 8, SH: 9, DH: 10, DW: 11, HO: 12, WO: 13,
  X: 14, DZ: 15, GW: 16, KPT: 17, PLANE: 18, ACC: 19, BAND: 20,
} as const;

export const WN = {
  N: 0, G: 1, C: 2, CO: 3, CP: 4, CQ: 5, SSTRIDE: 6, WP: 7, KH: 8, KW: 9, SH: 10, SW: 11, DH: 12, DW: 13, HO: 14, WO: 15,
  X: 16, DZ: 17, SCRATCH: 18, PART: 19, OHC: 20, GW: 21, PADT: 22, PADL: 23, H: 24, W: 25, TASKS: 26, OPT: 27,
  SUMS: 28, SUMS_OUT: 29,
} as const;

export const BN = {
  N: 0, C: 1, HW: 2, Z: 3, Y: 4, GAMMA: 5, BETA: 6, RM: 7, RV: 8, MOM: 9, EPS: 10, MEAN: 11, INVSTD: 12,
  UPDATE: 13, DY: 14, DZ: 15, GBETA: 16, GGAMMA: 17, GBIAS: 18,
} as const;

/** transpose_images: rows x cols floats per image, RPT rows per task. */
export const TP = { ROWS: 0, COLS: 1, SRC: 2, DST: 3, RPT: 4 } as const;

/** Scratch bytes per k pair of wgrad4 (accumulators between row bands). */
export const WG_ACC_BYTES = 192;

/** Every parameter-block layout, by the name both sides use (`CV.FUSE` in the host and in the kernels). */
const PARAM_LAYOUTS = { PK, PWT, CV, SC, WG, WN, BN, TP } as const;

/** Slots in one parameter block: room for the largest layout. */
export const PARAM_SLOTS = Math.max(...Object.values(PARAM_LAYOUTS).flatMap((layout) => Object.values(layout))) + 1;

/** AssemblyScript source declaring every layout as a namespace of i32 constants (runtime/wasm/assembly/slots.ts). */
export function assemblySlotsSource(): string {
  const lines = [
    '// Generated from runtime/wasm/layout.ts by `npm run build:wasm` (scripts/wasm-slots.ts): do not edit.',
    '// @ts-nocheck  (AssemblyScript source)',
  ];
  for (const [name, layout] of Object.entries(PARAM_LAYOUTS)) {
    lines.push(`export namespace ${name} {`);
    for (const [field, slot] of Object.entries(layout)) lines.push(`  export const ${field}: i32 = ${slot};`);
    lines.push('}');
  }
  lines.push(`export const WG_ACC_BYTES: i32 = ${WG_ACC_BYTES};`);
  return lines.join('\n') + '\n';
}
