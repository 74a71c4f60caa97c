/**
 * Configs a backend's layers do not take as they are (padding modes other than zeros; NHWC tensors on
 * WebGPU) run as a wrapper around a layer of a config they do take: one place decides, for every backend.
 */
import type { ConvBNConfig, Layout } from '../codegen/config.js';
import { ChannelsLastLayer } from './channels-last.js';
import { PaddingModeLayer } from './padding-mode.js';
import type { ConvBNLayer } from './types.js';

/** What a backend's own layers take beyond NCHW with zero padding. */
export interface NativeSupport {
  /** Layouts the backend's layer transposes itself (WASM: NHWC, by a kernel job in its heap). */
  layouts?: readonly Layout[];
}

/**
 * The wrapper for `c`, its inner layer made by `create`; undefined when the backend's layer takes `c` as it is.
 * Outermost first: the padding mode's pad (in either layout), then, for a layout the backend does not take
 * itself, the host transposes.
 */
export function wrapperFor(c: ConvBNConfig, create: (inner: ConvBNConfig) => ConvBNLayer, native: NativeSupport = {}): ConvBNLayer | undefined {
  if (c.paddingMode !== 'zeros') return new PaddingModeLayer(c, create);
  if (c.layout !== 'NCHW' && !(native.layouts ?? []).includes(c.layout)) return new ChannelsLastLayer(c, create);
  return undefined;
}
