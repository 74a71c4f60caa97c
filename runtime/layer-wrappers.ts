/**
 * Configs the kernels do not read as they are (NHWC tensors, padding modes other than zeros) run as a
 * wrapper around a layer of the config they do read: one place decides, for every backend.
 */
import type { ConvBNConfig } from '../codegen/config.js';
import { ChannelsLastLayer } from './channels-last.js';
import { PaddingModeLayer } from './padding-mode.js';
import type { ConvBNLayer } from './types.js';

/** The wrapper for `c`, its inner layer made by `create`; undefined when the kernels read `c` directly. */
export function wrapperFor(c: ConvBNConfig, create: (inner: ConvBNConfig) => ConvBNLayer): ConvBNLayer | undefined {
  // Outermost first: the layout's transposes, then the padding mode's pad of the NCHW x.
  if (c.layout !== 'NCHW') return new ChannelsLastLayer(c, create);
  if (c.paddingMode !== 'zeros') return new PaddingModeLayer(c, create);
  return undefined;
}
