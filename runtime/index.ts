/** convbn's public API. */
export { createEngine } from './engine.js';
export type * from './types.js';
export {
  normalizeConfig, outputShape, tensorSizes, configKey, forwardFlops, MODES, LAYOUTS, PADDING_MODES,
  type ConvBNConfig, type ConvBNConfigInput, type Layout, type Mode, type OutputShape, type PaddingInput, type PaddingMode,
} from '../codegen/config.js';
export { ConvBNInputError } from '../codegen/errors.js';
export { NoWebGPUError } from './webgpu/device.js';
export { DeviceLostError } from './webgpu/lost.js';
export { foldParams } from './validate.js';
