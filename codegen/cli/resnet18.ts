/**
 * `convbn resnet18`: generate kernels for ResNet-18's ConvBN layers and run one
 * tune-mode forward + backward per layer on the chosen backend, as a table.
 */
import { parseArgs } from 'node:util';
import { forwardFlops, normalizeConfig, outputShape, tensorSizes, type ConvBNConfig } from '../config.js';
import { ConvBNInputError } from '../errors.js';
import { writeKernelSet } from '../emit.js';
import { resnet18Layers } from '../models/resnet18.js';
import { createEngine } from '../../runtime/engine.js';
import { mulberry32 } from '../../runtime/random.js';
import type { BackendChoice, ConvBNParamsInput } from '../../runtime/types.js';

export const RESNET18_HELP = `convbn resnet18: ResNet-18's ConvBN layers, one tune-mode step each

Usage:
  convbn resnet18 [--backend webgpu|wasm|auto] [--batch N] [--size S] [--out DIR]

Writes the kernels of every ConvBN layer of torchvision's ResNet-18 to DIR, then
runs one tune-mode forward and backward per distinct layer with seeded random
parameters and prints milliseconds, GFLOP/s and the bytes held for backward.

Options:
  --backend B   webgpu, wasm or auto (default auto: WebGPU when an adapter appears)
  --batch N     batch size (default 1)
  --size S      input height and width (default 112)
  --out DIR     kernel output directory (default out/resnet18)
  -h, --help    this text

Example:
  convbn resnet18 --batch 2 --size 224`;

function fill(n: number, rand: () => number, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + rand() * scale;
  return out;
}

function randomParams(c: ConvBNConfig, rand: () => number): ConvBNParamsInput {
  const fanIn = (c.Cin / c.groups) * c.kH * c.kW;
  return {
    weight: fill(tensorSizes(c).weight, rand, 2 * Math.sqrt(3 / fanIn)),
    bias: c.bias ? fill(c.Cout, rand, 0.2) : undefined,
    gamma: fill(c.Cout, rand, 0.5, 1),
    beta: fill(c.Cout, rand, 0.2),
    runningMean: fill(c.Cout, rand, 0.2),
    runningVar: fill(c.Cout, rand, 0.5, 1),
  };
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(2);

export async function runResnet18Command(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'auto' },
      batch: { type: 'string', default: '1' },
      size: { type: 'string', default: '112' },
      out: { type: 'string', default: 'out/resnet18' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(RESNET18_HELP);
    return 0;
  }
  const batch = Number(values.batch);
  const size = Number(values.size);
  if (!Number.isInteger(size) || size < 32) throw new ConvBNInputError('--size', values.size, 'must be an integer >= 32');
  const layers = resnet18Layers(batch, size);
  const manifest = await writeKernelSet(layers, values.out!);
  console.log(`ResNet-18 at ${batch}x3x${size}x${size}: ${layers.length} ConvBN layers, ` +
    `${Object.keys(manifest.kernels).length} kernels written to ${values.out}/`);
  const engine = await createEngine({ backend: values.backend as BackendChoice });
  console.log(`backend: ${engine.backend} (${engine.description})\n`);
  const uniform = mulberry32(2024);
  const rand = () => uniform() - 0.5;
  const header = ['layer', 'Cin->Cout', 'k/s', 'in', 'fwd ms', 'bwd ms', 'fwd GFLOP/s', 'held MiB', 'peak MiB'];
  const rows: string[][] = [];
  const seen = new Map<string, string[]>();
  try {
    for (const { name, config } of layers) {
      const c = normalizeConfig(config);
      const key = JSON.stringify(config);
      const again = seen.get(key);
      if (again) {
        rows.push([name, ...again.slice(1)]);
        continue;
      }
      const layer = engine.createLayer(c, randomParams(c, rand));
      const x = fill(tensorSizes(c).x, rand, 2);
      const gradY = fill(tensorSizes(c).y, rand, 2);
      const t0 = performance.now();
      await layer.forward(x, 'tune');
      const t1 = performance.now();
      await layer.backward(gradY);
      const t2 = performance.now();
      const memory = layer.memory();
      layer.destroy();
      const out = outputShape(c);
      const row = [
        name, `${c.Cin}->${c.Cout}`, `${c.kH}/${c.strideH}`, `${c.H}x${c.W}->${out.H}x${out.W}`,
        (t1 - t0).toFixed(1), (t2 - t1).toFixed(1), (forwardFlops(c) / ((t1 - t0) * 1e6)).toFixed(2),
        mib(memory.lastStepHeldBytes), mib(memory.lastStepPeakBytes),
      ];
      seen.set(key, row);
      rows.push(row);
    }
  } finally {
    engine.destroy();
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 4 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('\n(first run of a shape includes pipeline compilation; repeated shapes reuse the first measurement)');
  return 0;
}
