// @ts-nocheck  (AssemblyScript source: compiled by asc, not by tsc)
/**
 * convbn WebAssembly kernels (AssemblyScript, 128-bit SIMD).
 *
 * Every export has the signature (params: usize, task: i32): the host writes
 * an i32/f32 parameter block into wasm memory and runs tasks 0..n-1 spread over
 * threads. A task always does the same arithmetic whichever thread runs it, and
 * every reduction is split in a fixed way (per task, then in task order), so
 * results do not depend on the thread count.
 *
 * No allocation happens here (--runtime stub): the host owns the memory.
 * Parameter slots (PK.PLANES, CV.FUSE, ...) come from runtime/wasm/layout.ts, generated into ./slots.
 * This entry file only exports the kernels; each module holds one family of them.
 */
export { pack_input, pack_weights } from './pack';
export { conv_direct4, conv_direct1 } from './direct';
export { conv_scalar, dgrad_scalar, wgrad_scalar } from './scalar';
export { wgrad4, wgrad1 } from './wgrad';
export { wgrad_nhwc, wgrad_nhwc_sum, wgrad_nhwc_gather, wgrad_nhwc_chan_sums } from './wgrad-nhwc';
export { bn_train_fwd, bn_train_bwd, bn_eval_bwd, chan_sum } from './bn';
export { transpose_images } from './transpose';
