/**
 * Padding modes other than zeros (PyTorch's Conv2d `padding_mode`: reflect, replicate, circular), on
 * any backend: as PyTorch does, x is padded first and the layer of `prePaddedConfig` (no padding of
 * its own) runs on it. Its input gradient is folded back: each padded position's gradient is added to
 * the input position it copied.
 */
import { prePaddedConfig, tensorSizes, type ConvBNConfig, type Mode, type PaddingMode } from '../codegen/config.js';
import type {
  BackendName, BackwardGrads, BackwardOptions, ConvBNGrads, ConvBNLayer, ConvBNParams, ConvBNParamsInput,
  FoldedParams, ForwardOptions, LayerOptions, MemoryStats,
} from './types.js';
import { checkTensor } from './validate.js';

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

export class PaddingModeLayer implements ConvBNLayer {
  readonly config: ConvBNConfig;
  /** The layer that runs: prePaddedConfig(config), on the padded x. */
  readonly inner: ConvBNLayer;
  private readonly rows: Int32Array;
  private readonly cols: Int32Array;

  /** `create` makes the inner layer for the pre-padded config on the backend of choice. */
  constructor(config: ConvBNConfig, create: (inner: ConvBNConfig) => ConvBNLayer) {
    if (config.paddingMode === 'zeros') throw new Error('PaddingModeLayer: a zeros config needs no pre-padding');
    this.config = config;
    this.rows = paddedSources(config.H, config.padTop, config.padBottom, config.paddingMode);
    this.cols = paddedSources(config.W, config.padLeft, config.padRight, config.paddingMode);
    this.inner = create(prePaddedConfig(config));
  }

  get backend(): BackendName {
    return this.inner.backend;
  }

  get options(): Readonly<Required<LayerOptions>> {
    return this.inner.options;
  }

  setParameters(params: ConvBNParamsInput): void {
    this.inner.setParameters(params);
  }

  updateParameters(params: Partial<ConvBNParamsInput>): void {
    this.inner.updateParameters(params);
  }

  getParameters(): Promise<ConvBNParams> {
    return this.inner.getParameters();
  }

  getFoldedParameters(): Promise<FoldedParams> {
    return this.inner.getFoldedParameters();
  }

  setFoldedParameters(params: FoldedParams): void {
    this.inner.setFoldedParameters(params);
  }

  forward(x: Float32Array, mode: Mode, options?: ForwardOptions): Promise<Float32Array> {
    checkTensor('x', x, tensorSizes(this.config).x);
    return this.inner.forward(this.pad(x), mode, options);
  }

  backward(gradY: Float32Array, options?: { inputGrad?: true }): Promise<ConvBNGrads>;
  backward(gradY: Float32Array, options: BackwardOptions): Promise<BackwardGrads>;
  async backward(gradY: Float32Array, options?: BackwardOptions): Promise<BackwardGrads> {
    const grads = await this.inner.backward(gradY, options as BackwardOptions);
    return grads.gradX ? { ...grads, gradX: this.fold(grads.gradX) } : grads;
  }

  memory(): MemoryStats {
    return this.inner.memory();
  }

  destroy(): void {
    this.inner.destroy();
  }

  /** x padded: every padded position holds the input value it copies. */
  private pad(x: Float32Array): Float32Array {
    const { H, W } = this.config;
    const rows = this.rows;
    const cols = this.cols;
    const Wp = cols.length;
    const planes = this.config.N * this.config.Cin;
    const out = new Float32Array(planes * rows.length * Wp);
    for (let plane = 0, o = 0; plane < planes; plane++) {
      const base = plane * H * W;
      for (let r = 0; r < rows.length; r++) {
        const row = base + rows[r] * W;
        for (let j = 0; j < Wp; j++) out[o++] = x[row + cols[j]];
      }
    }
    return out;
  }

  /** The padded input's gradient summed onto the positions each padded value copied (in float64). */
  private fold(gradPadded: Float32Array): Float32Array {
    const { H, W } = this.config;
    const rows = this.rows;
    const cols = this.cols;
    const Wp = cols.length;
    const planes = this.config.N * this.config.Cin;
    const sum = new Float64Array(H * W);
    const gradX = new Float32Array(planes * H * W);
    for (let plane = 0, i = 0; plane < planes; plane++) {
      sum.fill(0);
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r] * W;
        for (let j = 0; j < Wp; j++) sum[row + cols[j]] += gradPadded[i++];
      }
      gradX.set(sum, plane * H * W);
    }
    return gradX;
  }
}
