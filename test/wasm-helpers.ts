/**
 * Shared by the wasm tests: run one ConvBN case (forward + backward) on a
 * wasm layer and name every output as the case files do.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConvBNConfig, Mode } from '../codegen/config.js';
import type { ConvBNLayer, ConvBNParamsInput } from '../runtime/types.js';
import type { WasmLayerOptions } from '../runtime/wasm/engine.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const vectorsDir = process.env.CONVBN_VECTORS ?? path.resolve(repoRoot, '../shared/vectors');

export interface CaseData extends ConvBNParamsInput {
  x: Float32Array;
  gradY: Float32Array;
}

export interface WasmEngineLike {
  createLayer(config: ConvBNConfig, params?: ConvBNParamsInput, options?: WasmLayerOptions): ConvBNLayer;
}

/** Forward then backward in `mode`; outputs keyed like the vector files (snake_case). */
export async function runCase(
  engine: WasmEngineLike, config: ConvBNConfig, data: CaseData, mode: Mode, options: WasmLayerOptions = {},
): Promise<Record<string, Float32Array>> {
  const layer = engine.createLayer(config, data, options);
  try {
    const out: Record<string, Float32Array> = {};
    if (mode === 'deploy') {
      const folded = await layer.getFoldedParameters();
      out.folded_weight = folded.weight;
      out.folded_bias = folded.bias;
    }
    out.y = await layer.forward(data.x, mode);
    const g = await layer.backward(data.gradY);
    out.grad_x = g.gradX;
    const named: [string, Float32Array | undefined][] = [
      ['grad_weight', g.gradWeight], ['grad_bias', g.gradBias], ['grad_gamma', g.gradGamma], ['grad_beta', g.gradBeta],
      ['grad_folded_weight', g.gradFoldedWeight], ['grad_folded_bias', g.gradFoldedBias],
    ];
    for (const [k, v] of named) if (v) out[k] = v;
    if (mode === 'train') {
      const p = await layer.getParameters();
      out.running_mean = p.runningMean;
      out.running_var = p.runningVar;
    }
    return out;
  } finally {
    layer.destroy();
  }
}

/** Bitwise equality of two float32 tensors (NaN payloads included). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}
