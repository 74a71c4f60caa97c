/**
 * Float64 reference implementation of ConvBN, every mode, forward and
 * backward: the oracle for configs beyond the PyTorch vectors.
 *
 * Deliberately plain: direct loops over (n, c, h, w) / OIHW indices, one formula
 * per line, no fusion. Speed does not matter; being obviously right does.
 * Activations sit where the config's layout puts them (NCHW or NHWC), read
 * through activationIndex, not transposed.
 */
import { outputShape, tensorSizes, type ConvBNConfig, type Mode } from '../../codegen/config.js';

export type Tensors = Record<string, Float64Array>;

/** Inputs named as in the case files (snake_case). */
export interface CaseInputs {
  x: ArrayLike<number>;
  weight: ArrayLike<number>;
  bias?: ArrayLike<number>;
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  running_mean: ArrayLike<number>;
  running_var: ArrayLike<number>;
  grad_y: ArrayLike<number>;
}

/** The camelCase inputs of a loaded case (runtime/check/cases.ts) as CaseInputs. */
export function toCaseInputs(inputs: {
  x: ArrayLike<number>; weight: ArrayLike<number>; bias?: ArrayLike<number>;
  gamma: ArrayLike<number>; beta: ArrayLike<number>;
  runningMean: ArrayLike<number>; runningVar: ArrayLike<number>; gradY: ArrayLike<number>;
}): CaseInputs {
  return {
    x: inputs.x, weight: inputs.weight, bias: inputs.bias, gamma: inputs.gamma, beta: inputs.beta,
    running_mean: inputs.runningMean, running_var: inputs.runningVar, grad_y: inputs.gradY,
  };
}

// ---------------------------------------------------------------------------
// Convolution and its two gradients. All three walk the same index space
// (n, o, oh, ow, ci, kh, kw), so their agreement is easy to read off.

/**
 * The input index a conv tap at position i (-pad .. size + pad - 1) of an axis reads, as PyTorch's
 * padding modes define it, or -1 for a zero (zeros mode outside the image).
 */
function readIndex(i: number, size: number, mode: ConvBNConfig['paddingMode']): number {
  if (i >= 0 && i < size) return i;
  switch (mode) {
    case 'zeros': return -1;
    case 'replicate': return Math.min(Math.max(i, 0), size - 1);
    case 'circular': return i < 0 ? i + size : i - size;
    case 'reflect': return i < 0 ? -i : 2 * size - 2 - i;
  }
}

/** Flat index of element (n, ch, h, w) of an activation with `C` channels and `H` x `W` pixels, in the config's layout. */
function activationIndex(c: ConvBNConfig, C: number, H: number, W: number, n: number, ch: number, h: number, w: number): number {
  return c.layout === 'NHWC' ? ((n * H + h) * W + w) * C + ch : ((n * C + ch) * H + h) * W + w;
}

/** Calls visit(xIndex, wIndex, yIndex) for every multiply-add of the forward conv (zero-padding taps skipped). */
function forEachTap(c: ConvBNConfig, visit: (xi: number, wi: number, yi: number) => void): void {
  const out = outputShape(c);
  const cinPerGroup = c.Cin / c.groups;
  const coutPerGroup = c.Cout / c.groups;
  for (let n = 0; n < c.N; n++) {
    for (let o = 0; o < c.Cout; o++) {
      const group = Math.floor(o / coutPerGroup);
      for (let oh = 0; oh < out.H; oh++) {
        for (let ow = 0; ow < out.W; ow++) {
          const yi = activationIndex(c, c.Cout, out.H, out.W, n, o, oh, ow);
          for (let ci = 0; ci < cinPerGroup; ci++) {
            const ic = group * cinPerGroup + ci;
            for (let kh = 0; kh < c.kH; kh++) {
              const ih = readIndex(oh * c.strideH - c.padTop + kh * c.dilationH, c.H, c.paddingMode);
              if (ih < 0) continue;
              for (let kw = 0; kw < c.kW; kw++) {
                const iw = readIndex(ow * c.strideW - c.padLeft + kw * c.dilationW, c.W, c.paddingMode);
                if (iw < 0) continue;
                const xi = activationIndex(c, c.Cin, c.H, c.W, n, ic, ih, iw);
                const wi = ((o * cinPerGroup + ci) * c.kH + kh) * c.kW + kw;
                visit(xi, wi, yi);
              }
            }
          }
        }
      }
    }
  }
}

function checkLength(name: string, a: ArrayLike<number>, n: number): void {
  if (a.length !== n) throw new RangeError(`reference: ${name} has ${a.length} elements, expected ${n}`);
}

/** y = conv(x, weight) + bias (bias per output channel, optional). */
export function conv2d(
  c: ConvBNConfig, x: ArrayLike<number>, weight: ArrayLike<number>, bias?: ArrayLike<number>,
): Float64Array {
  const sizes = tensorSizes(c);
  checkLength('x', x, sizes.x);
  checkLength('weight', weight, sizes.weight);
  const y = new Float64Array(sizes.y);
  forEachTap(c, (xi, wi, yi) => { y[yi] += x[xi] * weight[wi]; });
  if (bias) {
    checkLength('bias', bias, c.Cout);
    const channelOf = channelIndexer(c);
    for (let i = 0; i < sizes.y; i++) y[i] += bias[channelOf(i)];
  }
  return y;
}

/** dL/dx given dL/dy: every tap's contribution sent back to the input it read. */
export function conv2dBackwardInput(c: ConvBNConfig, gradY: ArrayLike<number>, weight: ArrayLike<number>): Float64Array {
  const sizes = tensorSizes(c);
  checkLength('grad_y', gradY, sizes.y);
  checkLength('weight', weight, sizes.weight);
  const gx = new Float64Array(sizes.x);
  forEachTap(c, (xi, wi, yi) => { gx[xi] += gradY[yi] * weight[wi]; });
  return gx;
}

/** dL/dweight given dL/dy and the forward input x. */
export function conv2dBackwardWeight(c: ConvBNConfig, x: ArrayLike<number>, gradY: ArrayLike<number>): Float64Array {
  const sizes = tensorSizes(c);
  checkLength('x', x, sizes.x);
  checkLength('grad_y', gradY, sizes.y);
  const gw = new Float64Array(sizes.weight);
  forEachTap(c, (xi, wi, yi) => { gw[wi] += gradY[yi] * x[xi]; });
  return gw;
}

// ---------------------------------------------------------------------------
// Per-channel helpers over the output activations (N, Cout, Hout, Wout).

/** Maps a flat index of the output (in the config's layout) to its channel. */
function channelIndexer(c: ConvBNConfig): (i: number) => number {
  if (c.layout === 'NHWC') return (i) => i % c.Cout;
  const out = outputShape(c);
  const plane = out.H * out.W;
  return (i) => Math.floor(i / plane) % c.Cout;
}

/** sum over (n, h, w) of f(i, channel) for each output channel. */
function channelSums(c: ConvBNConfig, f: (i: number, channel: number) => number): Float64Array {
  const channelOf = channelIndexer(c);
  const sums = new Float64Array(c.Cout);
  const n = tensorSizes(c).y;
  for (let i = 0; i < n; i++) {
    const o = channelOf(i);
    sums[o] += f(i, o);
  }
  return sums;
}

function mapY(c: ConvBNConfig, f: (i: number, channel: number) => number): Float64Array {
  const channelOf = channelIndexer(c);
  const y = new Float64Array(tensorSizes(c).y);
  for (let i = 0; i < y.length; i++) y[i] = f(i, channelOf(i));
  return y;
}

/** Multiplies each output channel's weights (OIHW) by s[o]. */
function scaleWeight(c: ConvBNConfig, weight: ArrayLike<number>, s: ArrayLike<number>): Float64Array {
  const perOut = tensorSizes(c).weight / c.Cout;
  const out = new Float64Array(weight.length);
  for (let i = 0; i < weight.length; i++) out[i] = weight[i] * s[Math.floor(i / perOut)];
  return out;
}

function perChannel(c: ConvBNConfig, f: (o: number) => number): Float64Array {
  const out = new Float64Array(c.Cout);
  for (let o = 0; o < c.Cout; o++) out[o] = f(o);
  return out;
}

function checkInputs(c: ConvBNConfig, p: CaseInputs): void {
  const sizes = tensorSizes(c);
  checkLength('x', p.x, sizes.x);
  checkLength('weight', p.weight, sizes.weight);
  checkLength('grad_y', p.grad_y, sizes.y);
  for (const name of ['gamma', 'beta', 'running_mean', 'running_var'] as const) checkLength(name, p[name], c.Cout);
  if (c.bias) {
    if (!p.bias) throw new RangeError('reference: config.bias is true but no bias was given');
    checkLength('bias', p.bias, c.Cout);
  } else if (p.bias) {
    throw new RangeError('reference: config.bias is false but a bias was given');
  }
}

const zeroBias = (c: ConvBNConfig, p: CaseInputs): ArrayLike<number> => p.bias ?? new Float64Array(c.Cout);

// ---------------------------------------------------------------------------
// The four modes. Each returns the keys of the case files, in their order.

/** y = (z - rm) / sqrt(rv + eps) * gamma + beta with z = conv(x, W) + b. */
function evalMode(c: ConvBNConfig, p: CaseInputs): Tensors {
  const b = zeroBias(c, p);
  const z = conv2d(c, p.x, p.weight, b);
  const invStd = perChannel(c, (o) => 1 / Math.sqrt(p.running_var[o] + c.eps));
  const y = mapY(c, (i, o) => (z[i] - p.running_mean[o]) * invStd[o] * p.gamma[o] + p.beta[o]);
  const gradZ = mapY(c, (i, o) => p.grad_y[i] * p.gamma[o] * invStd[o]);
  const result: Tensors = {
    y,
    grad_x: conv2dBackwardInput(c, gradZ, p.weight),
    grad_weight: conv2dBackwardWeight(c, p.x, gradZ),
  };
  if (c.bias) result.grad_bias = channelSums(c, (i) => gradZ[i]);
  result.grad_gamma = channelSums(c, (i, o) => p.grad_y[i] * (z[i] - p.running_mean[o]) * invStd[o]);
  result.grad_beta = channelSums(c, (i) => p.grad_y[i]);
  return result;
}

/** Same function as eval, computed through the on-the-fly folded weight W' = W s. */
function tuneMode(c: ConvBNConfig, p: CaseInputs): Tensors {
  const b = zeroBias(c, p);
  const invStd = perChannel(c, (o) => 1 / Math.sqrt(p.running_var[o] + c.eps));
  const s = perChannel(c, (o) => p.gamma[o] * invStd[o]);
  const foldedWeight = scaleWeight(c, p.weight, s);
  const foldedBias = perChannel(c, (o) => (b[o] - p.running_mean[o]) * s[o] + p.beta[o]);
  const y = conv2d(c, p.x, foldedWeight, foldedBias);
  const gradFoldedWeight = conv2dBackwardWeight(c, p.x, p.grad_y);
  const gradFoldedBias = channelSums(c, (i) => p.grad_y[i]);
  // d/dgamma of W' and b': both scale with s = gamma * invStd.
  const perOut = tensorSizes(c).weight / c.Cout;
  const gradGamma = perChannel(c, (o) => {
    let dot = 0;
    for (let k = 0; k < perOut; k++) dot += p.weight[o * perOut + k] * gradFoldedWeight[o * perOut + k];
    return (dot + (b[o] - p.running_mean[o]) * gradFoldedBias[o]) * invStd[o];
  });
  const result: Tensors = {
    y,
    grad_x: conv2dBackwardInput(c, p.grad_y, foldedWeight),
    grad_weight: scaleWeight(c, gradFoldedWeight, s),
  };
  if (c.bias) result.grad_bias = perChannel(c, (o) => s[o] * gradFoldedBias[o]);
  result.grad_gamma = gradGamma;
  result.grad_beta = gradFoldedBias;
  return result;
}

/**
 * Batch statistics over (N, Hout, Wout) per channel, biased variance for the
 * normalisation, unbiased for the running update (PyTorch BatchNorm2d).
 */
function trainMode(c: ConvBNConfig, p: CaseInputs): Tensors {
  const count = tensorSizes(c).y / c.Cout;
  if (count < 2) {
    // PyTorch refuses too: the unbiased variance of one value is undefined.
    throw new RangeError('reference: train mode needs N * Hout * Wout >= 2 values per channel');
  }
  const b = zeroBias(c, p);
  const z = conv2d(c, p.x, p.weight, b);
  const mean = channelSums(c, (i) => z[i]).map((sum) => sum / count);
  const variance = channelSums(c, (i, o) => (z[i] - mean[o]) ** 2).map((sum) => sum / count);
  const invStd = perChannel(c, (o) => 1 / Math.sqrt(variance[o] + c.eps));
  const xHat = mapY(c, (i, o) => (z[i] - mean[o]) * invStd[o]);
  const y = mapY(c, (i, o) => xHat[i] * p.gamma[o] + p.beta[o]);

  // Backward through the batch statistics:
  // dz = invStd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma.
  const gradXHat = mapY(c, (i, o) => p.grad_y[i] * p.gamma[o]);
  const meanGradXHat = channelSums(c, (i) => gradXHat[i]).map((sum) => sum / count);
  const meanGradXHatXHat = channelSums(c, (i) => gradXHat[i] * xHat[i]).map((sum) => sum / count);
  const gradZ = mapY(c, (i, o) => invStd[o] * (gradXHat[i] - meanGradXHat[o] - xHat[i] * meanGradXHatXHat[o]));

  const m = c.momentum;
  const result: Tensors = {
    y,
    grad_x: conv2dBackwardInput(c, gradZ, p.weight),
    grad_weight: conv2dBackwardWeight(c, p.x, gradZ),
  };
  // Analytically zero (the batch mean absorbs b); kept as the computed sum, i.e. rounding noise.
  if (c.bias) result.grad_bias = channelSums(c, (i) => gradZ[i]);
  result.grad_gamma = channelSums(c, (i) => p.grad_y[i] * xHat[i]);
  result.grad_beta = channelSums(c, (i) => p.grad_y[i]);
  result.running_mean = perChannel(c, (o) => (1 - m) * p.running_mean[o] + m * mean[o]);
  result.running_var = perChannel(c, (o) => (1 - m) * p.running_var[o] + m * variance[o] * count / (count - 1));
  return result;
}

/**
 * BN folded once into W', b'; gradients are with respect to W' and b'.
 * W' and b' are stored parameters, so they are float32 (as the runtime's
 * foldParams makes them and as the PyTorch vectors hold them): folded in
 * float64, rounded once, and y and grad_x use the rounded values.
 */
function deployMode(c: ConvBNConfig, p: CaseInputs): Tensors {
  const b = zeroBias(c, p);
  const s = perChannel(c, (o) => p.gamma[o] / Math.sqrt(p.running_var[o] + c.eps));
  const foldedWeight = scaleWeight(c, p.weight, s).map(Math.fround);
  const foldedBias = perChannel(c, (o) => (b[o] - p.running_mean[o]) * s[o] + p.beta[o]).map(Math.fround);
  return {
    folded_weight: foldedWeight,
    folded_bias: foldedBias,
    y: conv2d(c, p.x, foldedWeight, foldedBias),
    grad_x: conv2dBackwardInput(c, p.grad_y, foldedWeight),
    grad_folded_weight: conv2dBackwardWeight(c, p.x, p.grad_y),
    grad_folded_bias: channelSums(c, (i) => p.grad_y[i]),
  };
}

/** Every tensor a case file holds for `mode`, computed in float64. */
export function referenceCase(config: ConvBNConfig, inputs: CaseInputs, mode: Mode): Tensors {
  checkInputs(config, inputs);
  switch (mode) {
    case 'train': return trainMode(config, inputs);
    case 'eval': return evalMode(config, inputs);
    case 'tune': return tuneMode(config, inputs);
    case 'deploy': return deployMode(config, inputs);
    default: throw new RangeError(`reference: unknown mode ${String(mode)}`);
  }
}
