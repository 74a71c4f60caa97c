/**
 * NHWC (channels-last) layers on the host, for a backend whose layers take NCHW only (WebGPU; WASM's
 * own layers transpose in their heap): the kernels read NCHW, so x and gradY are transposed on the way
 * in and y and gradX on the way out, around the layer of nchwConfig(config). Transposes move values
 * without arithmetic: results are those of the NCHW layer, bit for bit.
 */
import { nchwConfig, outputShape, type ConvBNConfig } from '../codegen/config.js';
import type { ConvBNLayer } from './types.js';
import { WrappedLayer } from './wrapped-layer.js';

/** Pixels and channels per tile: a tile's rows of both orders stay in L1 while it is copied. */
const TILE = 32;

/**
 * `images` images of `rows` x `cols` values each, transposed to `cols` x `rows`:
 * NHWC to NCHW with rows = H*W pixels and cols = C channels, and back with the two swapped.
 */
function transposeImages(src: Float32Array, images: number, rows: number, cols: number): Float32Array {
  const dst = new Float32Array(src.length);
  const size = rows * cols;
  for (let n = 0; n < images; n++) {
    const base = n * size;
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = Math.min(rows, r0 + TILE);
      for (let c0 = 0; c0 < cols; c0 += TILE) {
        const c1 = Math.min(cols, c0 + TILE);
        for (let r = r0; r < r1; r++) {
          const from = base + r * cols;
          for (let c = c0; c < c1; c++) dst[base + c * rows + r] = src[from + c];
        }
      }
    }
  }
  return dst;
}

/** [N][H*W][C] to [N][C][H*W]. */
export function toChannelsFirst(t: Float32Array, N: number, C: number, HW: number): Float32Array {
  return transposeImages(t, N, HW, C);
}

/** [N][C][H*W] to [N][H*W][C]. */
export function toChannelsLast(t: Float32Array, N: number, C: number, HW: number): Float32Array {
  return transposeImages(t, N, C, HW);
}

export class ChannelsLastLayer extends WrappedLayer {
  /** `create` makes the inner layer, for nchwConfig(config), on the backend of choice. */
  constructor(config: ConvBNConfig, create: (inner: ConvBNConfig) => ConvBNLayer) {
    if (config.layout !== 'NHWC') throw new Error('ChannelsLastLayer: needs an NHWC config');
    super(config, create(nchwConfig(config)));
  }

  protected xToInner(x: Float32Array): Float32Array {
    const { N, Cin, H, W } = this.config;
    return toChannelsFirst(x, N, Cin, H * W);
  }

  protected gradXFromInner(gradX: Float32Array): Float32Array {
    const { N, Cin, H, W } = this.config;
    return toChannelsLast(gradX, N, Cin, H * W);
  }

  protected yFromInner(y: Float32Array): Float32Array {
    const out = outputShape(this.config);
    return toChannelsLast(y, out.N, out.C, out.H * out.W);
  }

  protected gradYToInner(gradY: Float32Array): Float32Array {
    const out = outputShape(this.config);
    return toChannelsFirst(gradY, out.N, out.C, out.H * out.W);
  }
}
