/**
 * The non-ConvBN parts of the demo network as plain host-side TypeScript:
 * ReLU, 2x2 max pooling, global average pooling, a linear head and softmax
 * cross-entropy. NCHW, float32.
 */

export interface Shape4 {
  readonly N: number;
  readonly C: number;
  readonly H: number;
  readonly W: number;
}

/** ReLU in place; the result doubles as the mask for backward (> 0). */
export function reluInPlace(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) if (!(a[i] > 0)) a[i] = 0;
  return a;
}

/** grad *= (activation > 0), in place. */
export function reluBackwardInPlace(grad: Float32Array, activation: Float32Array): Float32Array {
  for (let i = 0; i < grad.length; i++) if (!(activation[i] > 0)) grad[i] = 0;
  return grad;
}

/** 2x2 max pooling, stride 2 (H and W even). Returns the output and, per output, the input index that won. */
export function maxPool2(x: Float32Array, s: Shape4): { out: Float32Array; argmax: Int32Array } {
  const Ho = s.H >> 1;
  const Wo = s.W >> 1;
  const out = new Float32Array(s.N * s.C * Ho * Wo);
  const argmax = new Int32Array(out.length);
  let o = 0;
  for (let nc = 0; nc < s.N * s.C; nc++) {
    const base = nc * s.H * s.W;
    for (let y = 0; y < Ho; y++) {
      for (let x0 = 0; x0 < Wo; x0++) {
        let best = base + 2 * y * s.W + 2 * x0;
        for (const idx of [best + 1, best + s.W, best + s.W + 1]) if (x[idx] > x[best]) best = idx;
        out[o] = x[best];
        argmax[o] = best;
        o++;
      }
    }
  }
  return { out, argmax };
}

export function maxPool2Backward(gradOut: Float32Array, argmax: Int32Array, inputLength: number): Float32Array {
  const grad = new Float32Array(inputLength);
  for (let i = 0; i < gradOut.length; i++) grad[argmax[i]] += gradOut[i];
  return grad;
}

/** Mean over H x W: [N, C, H, W] -> [N, C]. */
export function globalAvgPool(x: Float32Array, s: Shape4): Float32Array {
  const plane = s.H * s.W;
  const out = new Float32Array(s.N * s.C);
  for (let nc = 0; nc < s.N * s.C; nc++) {
    let sum = 0;
    for (let i = 0; i < plane; i++) sum += x[nc * plane + i];
    out[nc] = sum / plane;
  }
  return out;
}

export function globalAvgPoolBackward(gradOut: Float32Array, s: Shape4): Float32Array {
  const plane = s.H * s.W;
  const grad = new Float32Array(s.N * s.C * plane);
  for (let nc = 0; nc < s.N * s.C; nc++) grad.fill(gradOut[nc] / plane, nc * plane, (nc + 1) * plane);
  return grad;
}

/** logits[n, k] = sum_c weight[k, c] * x[n, c] + bias[k]. */
export function linear(x: Float32Array, weight: Float32Array, bias: Float32Array, N: number, inF: number, outF: number): Float32Array {
  const out = new Float32Array(N * outF);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < outF; k++) {
      let sum = bias[k];
      for (let c = 0; c < inF; c++) sum += weight[k * inF + c] * x[n * inF + c];
      out[n * outF + k] = sum;
    }
  }
  return out;
}

export function linearBackward(
  gradOut: Float32Array, x: Float32Array, weight: Float32Array, N: number, inF: number, outF: number,
): { gradX: Float32Array; gradWeight: Float32Array; gradBias: Float32Array } {
  const gradX = new Float32Array(N * inF);
  const gradWeight = new Float32Array(outF * inF);
  const gradBias = new Float32Array(outF);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < outF; k++) {
      const g = gradOut[n * outF + k];
      gradBias[k] += g;
      for (let c = 0; c < inF; c++) {
        gradWeight[k * inF + c] += g * x[n * inF + c];
        gradX[n * inF + c] += g * weight[k * inF + c];
      }
    }
  }
  return { gradX, gradWeight, gradBias };
}

/** Mean softmax cross-entropy over the batch, its gradient w.r.t. the logits, and the number of correct argmaxes. */
export function softmaxCrossEntropy(
  logits: Float32Array, labels: Int32Array, classes: number,
): { loss: number; grad: Float32Array; correct: number } {
  const N = labels.length;
  const grad = new Float32Array(logits.length);
  let loss = 0;
  let correct = 0;
  for (let n = 0; n < N; n++) {
    const row = n * classes;
    let max = -Infinity;
    let arg = 0;
    for (let k = 0; k < classes; k++) {
      if (logits[row + k] > max) {
        max = logits[row + k];
        arg = k;
      }
    }
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += Math.exp(logits[row + k] - max);
    const logSum = Math.log(sum) + max;
    loss += logSum - logits[row + labels[n]];
    for (let k = 0; k < classes; k++) {
      grad[row + k] = (Math.exp(logits[row + k] - logSum) - (k === labels[n] ? 1 : 0)) / N;
    }
    if (arg === labels[n]) correct++;
  }
  return { loss: loss / N, grad, correct };
}
