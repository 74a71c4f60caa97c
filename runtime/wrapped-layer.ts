/**
 * A layer that runs an inner layer of another config on transformed tensors (runtime/padding-mode.ts,
 * runtime/channels-last.ts): parameters, memory and destroy pass through; a subclass maps x (and y) on
 * the way in and out, and gradY and gradX on the way back.
 */
import { tensorSizes, type ConvBNConfig, type Mode } from '../codegen/config.js';
import type {
  BackendName, BackwardGrads, BackwardOptions, ConvBNGrads, ConvBNLayer, ConvBNParams, ConvBNParamsInput,
  FoldedParams, ForwardOptions, LayerOptions, MemoryStats,
} from './types.js';
import { checkTensor } from './validate.js';

export abstract class WrappedLayer implements ConvBNLayer {
  readonly config: ConvBNConfig;
  /** The layer that runs. */
  readonly inner: ConvBNLayer;

  protected constructor(config: ConvBNConfig, inner: ConvBNLayer) {
    this.config = config;
    this.inner = inner;
  }

  /** x as the inner layer takes it. */
  protected abstract xToInner(x: Float32Array): Float32Array;
  /** The inner layer's input gradient as this layer's. */
  protected abstract gradXFromInner(gradX: Float32Array): Float32Array;
  /** The inner layer's y as this layer's (the same by default). */
  protected yFromInner(y: Float32Array): Float32Array {
    return y;
  }
  /** gradY as the inner layer takes it (the same by default). */
  protected gradYToInner(gradY: Float32Array): Float32Array {
    return gradY;
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
    // Checked here: a wrong length must be named as this layer's x, not fail inside a transform.
    checkTensor('x', x, tensorSizes(this.config).x);
    return this.inner.forward(this.xToInner(x), mode, options).then((y) => this.yFromInner(y));
  }

  backward(gradY: Float32Array, options?: { inputGrad?: true }): Promise<ConvBNGrads>;
  backward(gradY: Float32Array, options: BackwardOptions): Promise<BackwardGrads>;
  backward(gradY: Float32Array, options?: BackwardOptions): Promise<BackwardGrads> {
    checkTensor('gradY', gradY, tensorSizes(this.config).y);
    return this.inner.backward(this.gradYToInner(gradY), options as BackwardOptions)
      .then((grads) => (grads.gradX ? { ...grads, gradX: this.gradXFromInner(grads.gradX) } : grads));
  }

  memory(): MemoryStats {
    return this.inner.memory();
  }

  destroy(): void {
    this.inner.destroy();
  }
}
