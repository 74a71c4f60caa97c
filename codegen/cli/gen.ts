/** `convbn gen`: kernels for layer shapes given by flags, a JSON file, or an ONNX model. */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConvBNInputError } from '../errors.js';
import { writeKernelSet, type LayerSpec } from '../emit.js';
import { LAYER_FLAGS_HELP, LAYER_OPTIONS, layerFromFlags, layersFromFile } from './layerFlags.js';
import { readTuningCache } from '../tuning/cache.js';
import { GENERIC_CPU, GENERIC_GPU, profileFromKey } from '../tuning/profile.js';
import type { KernelTarget } from '../tuning/select.js';

export const GEN_HELP = `convbn gen: write specialised WGSL kernels and a manifest.json

Usage:
  convbn gen [layer flags] --out DIR
  convbn gen --layers LAYERS.json --out DIR
  convbn gen --onnx MODEL.onnx [--input-shape N,C,H,W] --out DIR

Options:
  --out DIR            where to write <kernel-id>.wgsl files and manifest.json (default: ./kernels)
  --layers FILE        JSON: an array of configs, or of { "name": ..., "config": {...} }
  --onnx FILE          find every Conv -> BatchNormalization pair in an ONNX model; also writes
                       onnx-manifest.json (pairs, plain convs, refused pairs with reasons) and
                       params.bin (the pairs' weights, bias, gamma, beta, running stats)
  --input-shape LIST   ONNX only: override the model input shape, e.g. 8,3,224,224
  --adapter KIND       kernels for: cpu (CPU rasterisers such as llvmpipe: register-blocked, the default),
                       gpu (workgroup-memory tiling), or an adapter key of the --tuning cache
  --tuning FILE        a cache written by \`convbn tune\`: its measured winners replace the heuristics
                       (for --adapter's entries; with one adapter in the file, that one)
  -h, --help           this text

${LAYER_FLAGS_HELP}

Examples:
  convbn gen --N 8 --Cin 64 --Cout 64 --H 56 --W 56 --kernel 3 --padding 1 --out out/a
  convbn gen --N 1 --Cin 32 --Cout 32 --H 112 --W 112 --kernel 3 --padding same --groups 32 --out out/dw
  convbn gen --onnx ../shared/models/mobilenet_v2.onnx --out out/mobilenet`;

/** --adapter / --tuning: which adapter's kernels to generate, and its measured winners. */
async function genTarget(adapter: string | undefined, tuning: string | undefined): Promise<KernelTarget> {
  const cache = tuning ? await readTuningCache(tuning) : undefined;
  if (tuning && !cache) throw new ConvBNInputError('--tuning', tuning, 'must be a tuning cache written by convbn tune');
  const keys = Object.keys(cache?.data.adapters ?? {});
  if (adapter === undefined || adapter === 'cpu' || adapter === 'gpu') {
    const base = adapter === 'gpu' ? GENERIC_GPU : GENERIC_CPU;
    // One adapter in the cache and none named: that one (its kind decides the fallback heuristics).
    if (adapter === undefined && keys.length === 1) return { profile: profileFromKey(keys[0]), cache };
    return { profile: base, cache };
  }
  const key = keys.find((k) => k === adapter) ?? keys.find((k) => k.includes(adapter));
  if (!key) {
    throw new ConvBNInputError('--adapter', adapter, `must be cpu, gpu, or an adapter of the --tuning cache (${keys.join('; ') || 'none'})`);
  }
  return { profile: profileFromKey(key), cache };
}

export async function runGenCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...LAYER_OPTIONS,
      out: { type: 'string', default: 'kernels' },
      layers: { type: 'string' },
      onnx: { type: 'string' },
      'input-shape': { type: 'string' },
      adapter: { type: 'string' },
      tuning: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(GEN_HELP);
    return 0;
  }
  const outDir = values.out!;
  const target = await genTarget(values.adapter, values.tuning);
  const sources = [values.layers, values.onnx, layerFromFlags(values)].filter((s) => s !== undefined);
  if (sources.length !== 1) {
    throw new ConvBNInputError('layers', sources.length, 'give exactly one of: layer flags, --layers FILE, --onnx FILE (see convbn gen --help)');
  }
  let layers: LayerSpec[];
  let kernelCount: number;
  if (values.onnx) {
    const { analyzeOnnx, analysisManifest, writeParamsFile } = await import('../onnx/index.js');
    const inputShape = values['input-shape']?.split(',').map(Number);
    const analysis = analyzeOnnx(new Uint8Array(await readFile(values.onnx)), { inputShape });
    layers = analysis.pairs.map((p) => ({ name: `${p.convNode} -> ${p.bnNode}`, config: p.config }));
    kernelCount = Object.keys((await writeKernelSet(layers, outDir, target)).kernels).length;
    await writeFile(path.join(outDir, 'onnx-manifest.json'), JSON.stringify(analysisManifest(analysis), null, 2) + '\n');
    writeParamsFile(analysis, path.join(outDir, 'params.bin'));
    console.log(`${analysis.pairs.length} ConvBN pairs, ${analysis.plainConvs.length} plain convs, ` +
      `${analysis.refused.length} refused (see onnx-manifest.json)`);
  } else {
    layers = values.layers ? await layersFromFile(values.layers) : [{ name: 'layer', config: layerFromFlags(values)! }];
    kernelCount = Object.keys((await writeKernelSet(layers, outDir, target)).kernels).length;
  }
  console.log(`wrote ${kernelCount} kernels for ${layers.length} layer(s) to ${outDir}/ (manifest.json)`);
  return 0;
}
