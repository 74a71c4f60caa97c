/**
 * Configs the kernels do not read as they are (NHWC tensors, padding modes other than zeros) run as a
 * wrapper around a layer of the config they do read: one place decides, for every backend.
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
 * Outermost first: the layout's host transposes, then the padding mode's pad of the NCHW x (a native layout
 * is only taken with zero padding, since the pad reads NCHW).
 */
export function wrapperFor(c: ConvBNConfig, create: (inner: ConvBNConfig) => ConvBNLayer, native: NativeSupport = {}): ConvBNLayer | undefined {
  const nativeLayout = c.layout === 'NCHW' || (c.paddingMode === 'zeros' && (native.layouts ?? []).includes(c.layout));
  if (!nativeLayout) return new ChannelsLastLayer(c, create);
  if (c.paddingMode !== 'zeros') return new PaddingModeLayer(c, create);
  return undefined;
}
