/**
 * onnxruntime-web (WASM execution provider) as a peer: a one-node Conv model
 * with BN folded into W', b' (the deploy/tune forward), same thread count as
 * ours. In Node, onnxruntime-web runs its threaded build on worker_threads.
 */
import type { ConvBNConfig } from '../../codegen/config.js';
import { convModelBytes } from './onnx-model.js';

type Ort = typeof import('onnxruntime-web');

let ortModule: Promise<Ort> | undefined;
let ortThreads: number | undefined;

export async function loadOrt(threads: number): Promise<Ort> {
  const ort = await (ortModule ??= import('onnxruntime-web'));
  if (ortThreads === undefined) {
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.simd = true;
    ortThreads = threads;
  } else if (ortThreads !== threads) {
    throw new Error(`onnxruntime-web was initialised with ${ortThreads} threads; it cannot change in one process`);
  }
  return ort;
}

export interface OrtConv {
  run(): Promise<Float32Array>;
  release(): Promise<void>;
}

export async function ortConv(
  c: ConvBNConfig, x: Float32Array, foldedWeight: Float32Array, foldedBias: Float32Array, threads: number,
): Promise<OrtConv> {
  const ort = await loadOrt(threads);
  const session = await ort.InferenceSession.create(convModelBytes(c, foldedWeight, foldedBias), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  const input = new ort.Tensor('float32', x, [c.N, c.Cin, c.H, c.W]);
  return {
    async run() {
      const out = await session.run({ x: input });
      return out.y.data as Float32Array;
    },
    release: () => session.release(),
  };
}
