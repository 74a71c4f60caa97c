/**
 * tfjs-backend-wasm as a peer: the same conv (+ bias) in NHWC, one thread (as
 * the backend runs in Node). Groups other than 1 and depthwise are emulated
 * with split / conv2d / concat, as a tfjs user would have to.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ConvBNConfig } from '../../codegen/config.js';

type Tf = typeof import('@tensorflow/tfjs-core');

let tfReady: Promise<Tf> | undefined;

export function loadTfjsWasm(): Promise<Tf> {
  return (tfReady ??= (async () => {
    const tf = await import('@tensorflow/tfjs-core');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    wasm.setWasmPaths(`${dir}/`);
    await tf.setBackend('wasm');
    await tf.ready();
    return tf;
  })());
}

/** NCHW -> NHWC */
function toNHWC(x: Float32Array, N: number, C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
    out[((n * H + h) * W + w) * C + c] = x[((n * C + c) * H + h) * W + w];
  }
  return out;
}

/** OIHW -> HWIO (per group: [kH, kW, Cin/groups, Cout]) */
function toHWIO(wt: Float32Array, O: number, I: number, kH: number, kW: number): Float32Array {
  const out = new Float32Array(wt.length);
  for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) for (let h = 0; h < kH; h++) for (let w = 0; w < kW; w++) {
    out[((h * kW + w) * I + i) * O + o] = wt[((o * I + i) * kH + h) * kW + w];
  }
  return out;
}

export interface TfjsConv {
  run(): Promise<Float32Array>;
  dispose(): void;
  /** How the conv is expressed in tfjs. */
  note: string;
}

/** A tfjs conv equal to ours (NCHW in, bias added); returns NHWC output. */
export async function tfjsConv(c: ConvBNConfig, x: Float32Array, weight: Float32Array, bias: Float32Array): Promise<TfjsConv> {
  const tf = await loadTfjsWasm();
  const Cig = c.Cin / c.groups, Cog = c.Cout / c.groups;
  const xt = tf.tensor4d(toNHWC(x, c.N, c.Cin, c.H, c.W), [c.N, c.H, c.W, c.Cin]);
  const pad: [[number, number], [number, number], [number, number], [number, number]] =
    [[0, 0], [c.padTop, c.padBottom], [c.padLeft, c.padRight], [0, 0]];
  const strides: [number, number] = [c.strideH, c.strideW];
  const dilations: [number, number] = [c.dilationH, c.dilationW];
  const keep: { dispose(): void }[] = [xt];
  let f: () => import('@tensorflow/tfjs-core').Tensor;
  let note: string;
  if (c.groups === 1) {
    const filter = tf.tensor4d(toHWIO(weight, c.Cout, c.Cin, c.kH, c.kW), [c.kH, c.kW, c.Cin, c.Cout]);
    const b = tf.tensor1d(bias);
    keep.push(filter, b);
    f = () => tf.fused.conv2d({ x: xt, filter, strides, pad: pad as never, dilations, bias: b });
    note = 'fused.conv2d';
  } else if (Cig === 1 && Cog === 1) {
    // depthwise: filter [kH, kW, Cin, 1]
    // OIHW [Cin][1][kH][kW] -> HWIO [kH][kW][1][Cin]: the same memory as [kH, kW, Cin, 1].
    const filter = tf.tensor4d(toHWIO(weight, c.Cout, 1, c.kH, c.kW), [c.kH, c.kW, c.Cin, 1]);
    const b = tf.tensor1d(bias);
    keep.push(filter, b);
    f = () => tf.fused.depthwiseConv2d({ x: xt, filter, strides, pad: pad as never, dilations, bias: b });
    note = 'fused.depthwiseConv2d';
  } else {
    const filters = Array.from({ length: c.groups }, (_, g) =>
      tf.tensor4d(toHWIO(weight.subarray(g * Cog * Cig * c.kH * c.kW, (g + 1) * Cog * Cig * c.kH * c.kW), Cog, Cig, c.kH, c.kW),
        [c.kH, c.kW, Cig, Cog]));
    const b = tf.tensor1d(bias);
    keep.push(...filters, b);
    f = () => tf.tidy(() => {
      const parts = tf.split(xt, c.groups, 3);
      const ys = parts.map((p, g) => tf.conv2d(p as import('@tensorflow/tfjs-core').Tensor4D, filters[g], strides, pad, 'NHWC', dilations));
      return tf.add(tf.concat(ys, 3), b);
    });
    note = `groups emulated (split, ${c.groups} conv2d, concat)`;
  }
  return {
    async run() {
      const y = f();
      const data = (await y.data()) as Float32Array;
      y.dispose();
      return data;
    },
    dispose() {
      for (const t of keep) t.dispose();
    },
    note,
  };
}
