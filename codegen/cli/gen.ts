/** `convbn gen`: kernels for layer shapes given by flags, a JSON file, or an ONNX model. */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConvBNInputError } from '../errors.js';
import { writeKernelSet, type LayerSpec } from '../emit.js';
import { LAYER_FLAGS_HELP, LAYER_OPTIONS, layerFromFlags } from './layerFlags.js';

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
  -h, --help           this text

${LAYER_FLAGS_HELP}

Examples:
  convbn gen --N 8 --Cin 64 --Cout 64 --H 56 --W 56 --kernel 3 --padding 1 --out out/a
  convbn gen --N 1 --Cin 32 --Cout 32 --H 112 --W 112 --kernel 3 --padding same --groups 32 --out out/dw
  convbn gen --onnx ../shared/models/mobilenet_v2.onnx --out out/mobilenet`;

async function layersFromFile(file: string): Promise<LayerSpec[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new ConvBNInputError('--layers', file, `must be a readable JSON file (${(e as Error).message})`);
  }
  if (!Array.isArray(json)) throw new ConvBNInputError('--layers', file, 'must hold a JSON array of layers');
  return json.map((entry, i) => {
    if (entry && typeof entry === 'object' && 'config' in entry) {
      return { name: String((entry as { name?: unknown }).name ?? `layer${i}`), config: (entry as { config: never }).config };
    }
    return { name: `layer${i}`, config: entry };
  });
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
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(GEN_HELP);
    return 0;
  }
  const outDir = values.out!;
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
    kernelCount = Object.keys((await writeKernelSet(layers, outDir)).kernels).length;
    await writeFile(path.join(outDir, 'onnx-manifest.json'), JSON.stringify(analysisManifest(analysis), null, 2) + '\n');
    writeParamsFile(analysis, path.join(outDir, 'params.bin'));
    console.log(`${analysis.pairs.length} ConvBN pairs, ${analysis.plainConvs.length} plain convs, ` +
      `${analysis.refused.length} refused (see onnx-manifest.json)`);
  } else {
    layers = values.layers ? await layersFromFile(values.layers) : [{ name: 'layer', config: layerFromFlags(values)! }];
    kernelCount = Object.keys((await writeKernelSet(layers, outDir)).kernels).length;
  }
  console.log(`wrote ${kernelCount} kernels for ${layers.length} layer(s) to ${outDir}/ (manifest.json)`);
  return 0;
}
