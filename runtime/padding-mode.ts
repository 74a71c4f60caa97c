/**
 * Padding modes other than zeros (PyTorch's Conv2d `padding_mode`: reflect, replicate, circular), on
 * any backend and in either layout: as PyTorch does, x is padded first and the layer of `prePaddedConfig`
 * (no padding of its own, the same layout) runs on it. Its input gradient is folded back: each padded
 * position's gradient is added to the input position it copied.
 */
import { prePaddedConfig, type ConvBNConfig, type PaddingMode } from '../codegen/config.js';
import type { ConvBNLayer } from './types.js';
import { WrappedLayer } from './wrapped-layer.js';

/** Which position of an axis of `size` each of its `before + size + after` padded positions copies. */
export function paddedSources(size: number, before: number, after: number, mode: Exclude<PaddingMode, 'zeros'>): Int32Array {
  const sources = new Int32Array(before + size + after);
  for (let p = 0; p < sources.length; p++) {
    const i = p - before;
    if (i >= 0 && i < size) sources[p] = i;
    else if (mode === 'replicate') sources[p] = i < 0 ? 0 : size - 1;
    else if (mode === 'circular') sources[p] = ((i % size) + size) % size;
    // reflect: about the edge values, which are not repeated (-1 -> 1, size -> size - 2).
    else sources[p] = i < 0 ? -i : 2 * (size - 1) - i;
  }
  return sources;
}

export class PaddingModeLayer extends WrappedLayer {
  private readonly rows: Int32Array;
  private readonly cols: Int32Array;

  /** `create` makes the inner layer, for prePaddedConfig(config), on the backend of choice. */
  constructor(config: ConvBNConfig, create: (inner: ConvBNConfig) => ConvBNLayer) {
    if (config.paddingMode === 'zeros') throw new Error('PaddingModeLayer: a zeros config needs no pre-padding');
    super(config, create(prePaddedConfig(config)));
    this.rows = paddedSources(config.H, config.padTop, config.padBottom, config.paddingMode);
    this.cols = paddedSources(config.W, config.padLeft, config.padRight, config.paddingMode);
  }

  /**
   * The tensor as planes of H x W positions of `inner` values each: NCHW, N * Cin planes of single
   * values; NHWC, N planes of Cin values per position. Padding copies and folds whole positions.
   */
  private planes(): { planes: number; inner: number } {
    const { N, Cin, layout } = this.config;
    return layout === 'NHWC' ? { planes: N, inner: Cin } : { planes: N * Cin, inner: 1 };
  }

  /** x padded: every padded position holds the input values it copies. */
  protected xToInner(x: Float32Array): Float32Array {
    const { H, W } = this.config;
    const { planes, inner } = this.planes();
    const rows = this.rows;
    const cols = this.cols;
    const Wp = cols.length;
    const out = new Float32Array(planes * rows.length * Wp * inner);
    for (let plane = 0, o = 0; plane < planes; plane++) {
      const base = plane * H * W;
      for (let r = 0; r < rows.length; r++) {
        const row = base + rows[r] * W;
        for (let j = 0; j < Wp; j++, o += inner) {
          const from = (row + cols[j]) * inner;
          for (let k = 0; k < inner; k++) out[o + k] = x[from + k];
        }
      }
    }
    return out;
  }

  /** The padded input's gradient summed onto the positions each padded value copied (in float64). */
  protected gradXFromInner(gradPadded: Float32Array): Float32Array {
    const { H, W } = this.config;
    const { planes, inner } = this.planes();
    const rows = this.rows;
    const cols = this.cols;
    const Wp = cols.length;
    const size = H * W * inner;
    const sum = new Float64Array(size);
    const gradX = new Float32Array(planes * size);
    for (let plane = 0, i = 0; plane < planes; plane++) {
      sum.fill(0);
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r] * W;
        for (let j = 0; j < Wp; j++, i += inner) {
          const to = (row + cols[j]) * inner;
          for (let k = 0; k < inner; k++) sum[to + k] += gradPadded[i + k];
        }
      }
      gradX.set(sum, plane * size);
    }
    return gradX;
  }
}
