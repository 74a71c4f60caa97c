/**
 * The demo network: ConvBN blocks from the convbn runtime (3x3, padding 1),
 * each followed by ReLU and 2x2 max pooling (global average pooling after
 * the last), then a linear head. Only the ConvBN blocks run in the runtime;
 * the rest is host-side TypeScript (./ops.ts).
 */
import type {
  BackwardGrads, ConvBNConfigInput, ConvBNLayer, ConvBNParams, Engine, MemoryStats, Mode,
} from '../../runtime/index.js';
import {
  globalAvgPool, globalAvgPoolBackward, linear, linearBackward, maxPool2, maxPool2Backward,
  reluBackwardInPlace, reluInPlace, type Shape4,
} from './ops.js';
import { normal, type Rng } from './rng.js';

export interface ModelSpec {
  /** Batch size (every ConvBN layer is built for this N). */
  readonly batch: number;
  /** Input height and width. */
  readonly size: number;
  readonly inChannels: number;
  /** Output channels of each ConvBN block. */
  readonly channels: readonly number[];
}

export interface HeadParams {
  weight: Float32Array;
  bias: Float32Array;
}

/** Everything a model is made from: ConvBN parameters (with running stats) and the head. */
export interface ModelState {
  layers: ConvBNParams[];
  head: HeadParams;
}

/** The ConvBN config of each block. */
export function blockConfigs(spec: ModelSpec): ConvBNConfigInput[] {
  let cin = spec.inChannels;
  let size = spec.size;
  return spec.channels.map((cout, i) => {
    const config: ConvBNConfigInput = {
      N: spec.batch, Cin: cin, Cout: cout, H: size, W: size, kernel: 3, padding: 1, bias: false,
    };
    cin = cout;
    if (i < spec.channels.length - 1) size >>= 1;
    return config;
  });
}

/** He-normal conv weights, gamma 1, beta 0, running stats 0 / 1; a head for `classes` classes. */
export function initState(spec: ModelSpec, classes: number, rng: Rng): ModelState {
  const layers = blockConfigs(spec).map((c): ConvBNParams => {
    const fanIn = c.Cin * 9;
    const std = Math.sqrt(2 / fanIn);
    return {
      weight: Float32Array.from({ length: c.Cout * fanIn }, () => std * normal(rng)),
      gamma: new Float32Array(c.Cout).fill(1),
      beta: new Float32Array(c.Cout),
      runningMean: new Float32Array(c.Cout),
      runningVar: new Float32Array(c.Cout).fill(1),
    };
  });
  return { layers, head: initHead(spec.channels[spec.channels.length - 1], classes, rng) };
}

export function initHead(inFeatures: number, classes: number, rng: Rng): HeadParams {
  const std = 1 / Math.sqrt(inFeatures);
  return {
    weight: Float32Array.from({ length: classes * inFeatures }, () => std * normal(rng)),
    bias: new Float32Array(classes),
  };
}

export function cloneState(s: ModelState): ModelState {
  return {
    layers: s.layers.map((p) => ({
      weight: p.weight.slice(), bias: p.bias?.slice(), gamma: p.gamma.slice(), beta: p.beta.slice(),
      runningMean: p.runningMean.slice(), runningVar: p.runningVar.slice(),
    })),
    head: { weight: s.head.weight.slice(), bias: s.head.bias.slice() },
  };
}

export interface NetGrads {
  readonly layers: BackwardGrads[];
  readonly head: { gradWeight: Float32Array; gradBias: Float32Array };
}

interface BlockCache {
  /** ReLU output (also the mask). */
  readonly activation: Float32Array;
  readonly shape: Shape4;
  readonly argmax?: Int32Array;
}

export class ConvNet {
  readonly layers: ConvBNLayer[];
  readonly spec: ModelSpec;
  head: HeadParams;
  /** Milliseconds spent awaiting the runtime's forward and backward calls since the last reset. */
  convbnMs = 0;
  private caches: BlockCache[] = [];
  private features: Float32Array | undefined;

  constructor(engine: Engine, spec: ModelSpec, state: ModelState) {
    this.spec = spec;
    const configs = blockConfigs(spec);
    this.layers = configs.map((c, i) => engine.createLayer(c, state.layers[i]));
    this.head = { weight: state.head.weight.slice(), bias: state.head.bias.slice() };
  }

  get featureCount(): number {
    return this.spec.channels[this.spec.channels.length - 1];
  }

  /** Outputs of the head (the task's classes). */
  get classes(): number {
    return this.head.bias.length;
  }

  async forward(x: Float32Array, mode: Mode, requiresGrad: boolean): Promise<Float32Array> {
    this.caches = [];
    let h = x;
    const last = this.layers.length - 1;
    for (let i = 0; i <= last; i++) {
      const layer = this.layers[i];
      const c = layer.config;
      const t0 = performance.now();
      const y = await layer.forward(h, mode, { requiresGrad });
      this.convbnMs += performance.now() - t0;
      const activation = reluInPlace(y);
      const shape: Shape4 = { N: c.N, C: c.Cout, H: c.H, W: c.W };
      if (i < last) {
        const pooled = maxPool2(activation, shape);
        this.caches.push({ activation, shape, argmax: pooled.argmax });
        h = pooled.out;
      } else {
        this.caches.push({ activation, shape });
        h = globalAvgPool(activation, shape);
      }
    }
    this.features = h;
    return linear(h, this.head.weight, this.head.bias, this.spec.batch, this.featureCount, this.classes);
  }

  async backward(gradLogits: Float32Array): Promise<NetGrads> {
    if (!this.features) throw new Error('backward needs a forward first');
    const head = linearBackward(gradLogits, this.features, this.head.weight, this.spec.batch, this.featureCount, this.classes);
    const grads: BackwardGrads[] = new Array(this.layers.length);
    let g = head.gradX;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const cache = this.caches[i];
      const gradAct = cache.argmax
        ? maxPool2Backward(g, cache.argmax, cache.activation.length)
        : globalAvgPoolBackward(g, cache.shape);
      reluBackwardInPlace(gradAct, cache.activation);
      const t0 = performance.now();
      // The first layer's input is the images: nothing needs its gradient, so its dgrad does not run.
      grads[i] = await this.layers[i].backward(gradAct, { inputGrad: i > 0 });
      this.convbnMs += performance.now() - t0;
      g = grads[i].gradX!;
    }
    this.caches = [];
    this.features = undefined;
    return { layers: grads, head: { gradWeight: head.gradWeight, gradBias: head.gradBias } };
  }

  /** The runtime's memory counters summed over the ConvBN layers. */
  memory(): MemoryStats {
    const total: MemoryStats = { parameterBytes: 0, heldForBackwardBytes: 0, lastStepHeldBytes: 0, lastStepPeakBytes: 0 };
    for (const layer of this.layers) {
      const m = layer.memory();
      total.parameterBytes += m.parameterBytes;
      total.heldForBackwardBytes += m.heldForBackwardBytes;
      total.lastStepHeldBytes += m.lastStepHeldBytes;
      total.lastStepPeakBytes += m.lastStepPeakBytes;
    }
    return total;
  }

  async state(): Promise<ModelState> {
    const layers = await Promise.all(this.layers.map((l) => l.getParameters()));
    return { layers, head: { weight: this.head.weight.slice(), bias: this.head.bias.slice() } };
  }

  destroy(): void {
    for (const layer of this.layers) layer.destroy();
  }
}
