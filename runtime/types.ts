/**
 * The runtime's public contract, shared by every backend (WebGPU, WASM).
 * A backend implements ConvBNLayer; apps only see these types.
 */
import type { ConvBNConfig, ConvBNConfigInput, Mode } from '../codegen/config.js';

export type { Mode } from '../codegen/config.js';
export type BackendName = 'webgpu' | 'wasm';
export type BackendChoice = BackendName | 'auto';

/** Parameters as the caller hands them over (NCHW / OIHW, row-major float32). */
export interface ConvBNParamsInput {
  weight: Float32Array;
  /** Required when config.bias is true, refused when false. */
  bias?: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
}

/** Current parameters, running statistics included (they change in train mode). */
export interface ConvBNParams extends ConvBNParamsInput {}

/** The stored W', b' of deploy mode: BN folded into the conv once. */
export interface FoldedParams {
  weight: Float32Array;
  bias: Float32Array;
}

/**
 * Gradients of one backward call. train/eval/tune fill gradWeight, gradGamma,
 * gradBeta (and gradBias when the conv has one); deploy fills the gradients of
 * the folded parameters instead.
 */
export interface ConvBNGrads {
  gradX: Float32Array;
  gradWeight?: Float32Array;
  gradBias?: Float32Array;
  gradGamma?: Float32Array;
  gradBeta?: Float32Array;
  gradFoldedWeight?: Float32Array;
  gradFoldedBias?: Float32Array;
}

/** The gradients without gradX: what `backward(gradY, { inputGrad: false })` returns. */
export type ParamGrads = Omit<ConvBNGrads, 'gradX'>;
/** backward's result for either inputGrad: gradX present exactly when it was asked for. */
export type BackwardGrads = ParamGrads & { gradX?: Float32Array };

export interface BackwardOptions {
  /**
   * Compute gradX (default true). False where nothing upstream needs it (a network's first layer,
   * an input that is not trained): the backward leaves out its input-gradient convolution, a third
   * of its work, and gradX's buffer; the result has no gradX.
   */
  inputGrad?: boolean;
}

export interface ForwardOptions {
  /** Keep what backward needs (default true). False: inference, nothing held. */
  requiresGrad?: boolean;
  /** train mode only: keep only x and recompute the conv in backward. Defaults to the layer's option. */
  recompute?: boolean;
}

export interface LayerOptions {
  /** train mode: keep only x, recompute the conv in backward (default false). */
  recompute?: boolean;
}

/** Byte counts of buffers the runtime allocated; parameters are counted apart. */
export interface MemoryStats {
  /** Weights, bias, BN parameters and running stats (and W', b' once folded). */
  parameterBytes: number;
  /** Bytes held right now between a forward and its backward. */
  heldForBackwardBytes: number;
  /** Held between forward and backward in the last completed training step (forward + backward). */
  lastStepHeldBytes: number;
  /**
   * Peak bytes of step buffers (inputs, outputs, saved tensors, scratch) alive at once during the last
   * completed training step. A forward with requiresGrad: false leaves both figures unchanged.
   */
  lastStepPeakBytes: number;
}

export interface ConvBNLayer {
  readonly config: ConvBNConfig;
  readonly backend: BackendName;
  readonly options: Readonly<Required<LayerOptions>>;
  /** Validates lengths and values (finite, var + eps > 0) before anything is uploaded. */
  setParameters(params: ConvBNParamsInput): void;
  /**
   * Replaces the named tensors and keeps the rest, e.g. after an optimizer step:
   * `updateParameters({ weight, gamma, beta })` leaves the running stats train mode updated.
   * Call it between steps (after the backward it follows has resolved).
   */
  updateParameters(params: Partial<ConvBNParamsInput>): void;
  getParameters(): Promise<ConvBNParams>;
  /** Deploy mode's W', b' (folded from the current parameters on first use). */
  getFoldedParameters(): Promise<FoldedParams>;
  /** Replace W', b' (deploy-mode training updates these). */
  setFoldedParameters(params: FoldedParams): void;
  forward(x: Float32Array, mode: Mode, options?: ForwardOptions): Promise<Float32Array>;
  /** Gradients of the last forward (which must have had requiresGrad). */
  backward(gradY: Float32Array, options?: { inputGrad?: true }): Promise<ConvBNGrads>;
  /** With `inputGrad: false`, every gradient but gradX. */
  backward(gradY: Float32Array, options: BackwardOptions): Promise<BackwardGrads>;
  memory(): MemoryStats;
  destroy(): void;
}

export interface Engine {
  readonly backend: BackendName;
  /** Human-readable: which adapter or CPU path runs the kernels. */
  readonly description: string;
  createLayer(config: ConvBNConfigInput | ConvBNConfig, params?: ConvBNParamsInput, options?: LayerOptions): ConvBNLayer;
  destroy(): void;
}

export interface EngineOptions {
  backend?: BackendChoice;
  /** WASM: worker threads (default: available cores). */
  threads?: number;
  /** WebGPU: use this device instead of acquiring one. */
  device?: GPUDevice;
}
