/**
 * tfjs-backend-webgpu as a peer, on the same kind of adapter as ours: its
 * WebGPUBackend is constructed on a device from our own acquireDevice() (in
 * Node: Dawn, OpenGL ES compatibility mode on llvmpipe when there is no GPU),
 * so both libraries run on identical adapters and limits. tfjs works in NHWC;
 * inputs are converted once, outside the timings.
 *
 * Timing: an op (or a whole tf.grads step) is issued, tfjs's pending commands
 * are submitted (backend.submitQueue()) and we wait for
 * queue.onSubmittedWorkDone(): GPU work only, no readback, as for ours.
 */
import type { ConvBNConfig } from '../../codegen/config.js';
import type { ConvBNParamsInput } from '../../runtime/types.js';
import { acquireDevice } from '../../runtime/webgpu/device.js';

type Tf = typeof import('@tensorflow/tfjs-core');
type Tensor = import('@tensorflow/tfjs-core').Tensor;
type Tensor4D = import('@tensorflow/tfjs-core').Tensor4D;

interface WebGPUBackendLike {
  readonly device: GPUDevice;
  readonly commandEncoder: GPUCommandEncoder | null;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export interface TfjsWebGPU {
  readonly tf: Tf;
  readonly backend: WebGPUBackendLike;
  /** The adapter tfjs runs on, as our profile names it. */
  readonly adapter: string;
  readonly version: string;
  /** Uncaptured WebGPU errors on tfjs's device (any means its timings are suspect). */
  readonly errors: string[];
}

let loaded: Promise<TfjsWebGPU> | undefined;

/**
 * tf.grads needs tfjs's gradient functions. @tensorflow/tfjs-core's Node build
 * does not register them (the @tensorflow/tfjs umbrella package does, and it is
 * not a dependency here), and its ESM sources use directory imports Node
 * refuses. esbuild (a dev dependency) bundles register_all_gradients once; the
 * bundle registers into tfjs's global gradient registry (tfjs keeps its engine
 * and registries on globalThis, shared by every copy of the module).
 */
async function registerAllGradients(): Promise<void> {
  if (typeof CONVBN_NODE_BUNDLE !== 'undefined' && CONVBN_NODE_BUNDLE) {
    // scripts/bundle-node.mjs built this file into one bundle, which holds the gradients already (no esbuild there).
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    return;
  }
  const { build } = await import('esbuild');
  const { createRequire } = await import('node:module');
  const { writeFile, unlink } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { pathToFileURL } = await import('node:url');
  const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const result = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'error' });
  const file = path.join(tmpdir(), `convbn-tfjs-gradients-${process.pid}.mjs`);
  await writeFile(file, result.outputFiles[0].contents);
  try {
    await import(pathToFileURL(file).href);
  } finally {
    await unlink(file);
  }
}

/** Registers and selects a 'webgpu' tfjs backend on a fresh device of our adapter. Throws, saying why, if it cannot. */
export function loadTfjsWebGPU(): Promise<TfjsWebGPU> {
  return (loaded ??= (async () => {
    const tf = await import('@tensorflow/tfjs-core');
    await registerAllGradients();
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    const acquired = await acquireDevice();
    const errors: string[] = [];
    acquired.device.addEventListener('uncapturederror', (event) => {
      errors.push((event as GPUUncapturedErrorEvent).error.message);
    });
    // tfjs registers its WebGPU kernels under the backend name 'webgpu'; in a browser the package would
    // already have registered a factory of that name on navigator.gpu's adapter: ours replaces it.
    const name = 'webgpu';
    if (tf.findBackendFactory(name)) tf.removeBackend(name);
    {
      tf.registerBackend(name, () => withNavigatorGpu(() => new WebGPUBackend(acquired.device, acquired.adapter.info)) as never, 1);
    }
    if (!(await tf.setBackend(name))) throw new Error('tfjs could not initialise its WebGPU backend on this adapter');
    await tf.ready();
    const backend = tf.backend() as unknown as WebGPUBackendLike;
    const version = (tf.version_core as string | undefined) ?? '4.x';
    return { tf, backend, adapter: acquired.description, version, errors };
  })());
}

/**
 * WebGPUBackend's constructor refuses to run unless `navigator.gpu` exists
 * (Node 20 has no navigator). It only checks for presence; the device it gets
 * is ours. The stand-in is removed again at once, so nothing else (our
 * acquireDevice looks for navigator.gpu first) takes Node for a browser.
 */
function withNavigatorGpu<T>(make: () => T): T {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu) return make();
  const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu: {} }, configurable: true, writable: true });
  try {
    return make();
  } finally {
    if (had) Object.defineProperty(globalThis, 'navigator', had);
    else delete g.navigator;
  }
}

/** Submits tfjs's pending GPU work and waits for the queue to drain. */
export async function tfjsSync(peer: TfjsWebGPU): Promise<void> {
  const b = peer.backend;
  if (b.commandEncoder) {
    // What tfjs does itself before a read: close the open compute pass, then submit.
    b.endComputePassEncoder();
    b.submitQueue();
  }
  await b.device.queue.onSubmittedWorkDone();
}

/** NCHW -> NHWC */
export function toNHWC(x: Float32Array, N: number, C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
    out[((n * H + h) * W + w) * C + c] = x[((n * C + c) * H + h) * W + w];
  }
  return out;
}

/** OIHW (O, I per group) -> HWIO */
export function toHWIO(wt: Float32Array, O: number, I: number, kH: number, kW: number): Float32Array {
  const out = new Float32Array(wt.length);
  for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) for (let h = 0; h < kH; h++) for (let w = 0; w < kW; w++) {
    out[((h * kW + w) * I + i) * O + o] = wt[((o * I + i) * kH + h) * kW + w];
  }
  return out;
}

export interface TfjsConvWebGPU {
  /** Runs the conv `times` times (default 1), then submits once and waits: GPU work done, outputs disposed. */
  run(times?: number): Promise<void>;
  /** The conv's output, NCHW, for a correctness check. */
  output(): Promise<Float32Array>;
  dispose(): void;
  /** How the conv is expressed in tfjs (groups other than 1 or depthwise are emulated). */
  readonly note: string;
}

interface ConvPieces {
  readonly conv: (x: Tensor4D) => Tensor4D;
  readonly keep: Tensor[];
  readonly note: string;
}

/** The conv of `c` (no bias) in tfjs ops on NHWC tensors; grouped convs as split / conv2d / concat. */
function convPieces(tf: Tf, c: ConvBNConfig, weight: Float32Array): ConvPieces {
  const cig = c.Cin / c.groups;
  const cog = c.Cout / c.groups;
  const pad: [[number, number], [number, number], [number, number], [number, number]] =
    [[0, 0], [c.padTop, c.padBottom], [c.padLeft, c.padRight], [0, 0]];
  const strides: [number, number] = [c.strideH, c.strideW];
  const dilations: [number, number] = [c.dilationH, c.dilationW];
  if (c.groups === 1) {
    const filter = tf.tensor4d(toHWIO(weight, c.Cout, c.Cin, c.kH, c.kW), [c.kH, c.kW, c.Cin, c.Cout]);
    return { conv: (x) => tf.conv2d(x, filter, strides, pad as never, 'NHWC', dilations), keep: [filter], note: 'conv2d' };
  }
  if (cig === 1 && cog === 1) {
    // OIHW [C][1][kH][kW] is the memory of HWIO [kH][kW][1][C] read as [kH, kW, C, 1] after the transpose.
    const filter = tf.tensor4d(toHWIO(weight, c.Cout, 1, c.kH, c.kW), [c.kH, c.kW, c.Cin, 1]);
    return { conv: (x) => tf.depthwiseConv2d(x, filter, strides, pad as never, 'NHWC', dilations), keep: [filter], note: 'depthwiseConv2d' };
  }
  const filters = Array.from({ length: c.groups }, (_, g) => {
    const part = weight.subarray(g * cog * cig * c.kH * c.kW, (g + 1) * cog * cig * c.kH * c.kW);
    return tf.tensor4d(toHWIO(part, cog, cig, c.kH, c.kW), [c.kH, c.kW, cig, cog]);
  });
  return {
    conv: (x) => {
      const parts = tf.split(x, c.groups, 3);
      return tf.concat(parts.map((p, g) => tf.conv2d(p as Tensor4D, filters[g], strides, pad as never, 'NHWC', dilations)), 3) as Tensor4D;
    },
    keep: filters,
    note: `groups = ${c.groups} emulated: split into ${c.groups} conv2d + concat (tfjs has no grouped conv)`,
  };
}

function nchw(tf: Tf, y: Tensor): Promise<Float32Array> {
  return tf.tidy(() => tf.transpose(y, [0, 3, 1, 2])).data() as Promise<Float32Array>;
}

/** conv + bias: the forward a user would write for a deployed ConvBN (BN folded into weight and bias). */
export async function tfjsWebGPUConv(c: ConvBNConfig, x: Float32Array, weight: Float32Array, bias: Float32Array): Promise<TfjsConvWebGPU> {
  const peer = await loadTfjsWebGPU();
  const { tf } = peer;
  const xt = tf.tensor4d(toNHWC(x, c.N, c.Cin, c.H, c.W), [c.N, c.H, c.W, c.Cin]);
  const b = tf.tensor1d(bias);
  const pieces = convPieces(tf, c, weight);
  const forward = (): Tensor => tf.tidy(() => tf.add(pieces.conv(xt), b));
  return {
    note: pieces.note === 'conv2d' ? 'conv2d + add' : `${pieces.note}, + add`,
    async run(times = 1) {
      // Disposing before the submit is safe: tfjs releases a pending tensor's buffer only after its commands are submitted.
      for (let i = 0; i < times; i++) forward().dispose();
      await tfjsSync(peer);
    },
    async output() {
      const y = forward();
      const out = await nchw(tf, y);
      y.dispose();
      return out;
    },
    dispose() {
      xt.dispose();
      b.dispose();
      for (const t of pieces.keep) t.dispose();
    },
  };
}

export interface TfjsTrainStep {
  /** `times` (default 1) forward + backward steps (tf.grads for x, W, bias, gamma, beta), then one submit: GPU work done. */
  run(times?: number): Promise<void>;
  dispose(): void;
  readonly note: string;
}

/**
 * conv2d (+ bias) -> batchNorm with running statistics (eval-mode BN, the
 * function tune mode computes), gradients of sum(y * gradY) with respect to
 * x, W, bias, gamma and beta through tf.grads.
 */
export async function tfjsWebGPUTrainStep(c: ConvBNConfig, x: Float32Array, p: ConvBNParamsInput, gradY: Float32Array,
  outH: number, outW: number): Promise<TfjsTrainStep> {
  const peer = await loadTfjsWebGPU();
  const { tf } = peer;
  const xt = tf.tensor4d(toNHWC(x, c.N, c.Cin, c.H, c.W), [c.N, c.H, c.W, c.Cin]);
  const gy = tf.tensor4d(toNHWC(gradY, c.N, c.Cout, outH, outW), [c.N, outH, outW, c.Cout]);
  const pieces = convPieces(tf, c, p.weight);
  const filter = pieces.keep[0];
  if (c.groups !== 1) throw new Error('the tfjs training-step peer covers groups = 1 only');
  const bias = tf.tensor1d(p.bias ?? new Float32Array(c.Cout));
  const gamma = tf.tensor1d(p.gamma);
  const beta = tf.tensor1d(p.beta);
  const mean = tf.tensor1d(p.runningMean);
  const variance = tf.tensor1d(p.runningVar);
  const strides: [number, number] = [c.strideH, c.strideW];
  const pad = [[0, 0], [c.padTop, c.padBottom], [c.padLeft, c.padRight], [0, 0]];
  const dilations: [number, number] = [c.dilationH, c.dilationW];
  const grads = tf.grads((xi: Tensor, w: Tensor, b: Tensor, g: Tensor, be: Tensor) => {
    const z = tf.add(tf.conv2d(xi as Tensor4D, w as Tensor4D, strides, pad as never, 'NHWC', dilations), b);
    const y = tf.batchNorm(z as Tensor4D, mean, variance, be as never, g as never, c.eps);
    return tf.sum(tf.mul(y, gy));
  });
  return {
    note: 'conv2d + add -> batchNorm (running stats), tf.grads w.r.t. x, W, bias, gamma, beta',
    async run(times = 1) {
      for (let i = 0; i < times; i++) for (const t of grads([xt, filter, bias, gamma, beta])) t.dispose();
      await tfjsSync(peer);
    },
    dispose() {
      for (const t of [xt, gy, bias, gamma, beta, mean, variance, ...pieces.keep]) t.dispose();
    },
  };
}
