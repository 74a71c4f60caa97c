/**
 * `npm run bench`: every benchmark section in one run, written together to
 * BENCHMARKS.md (figures come from this run only). `--quick` shortens each
 * section for a smoke run; `--only webgpu|wasm` runs one section.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { collectGarbage } from './measure.js';

interface Section {
  title: string;
  markdown: string;
  /** The WebGPU section: its adapter, and whether that is a GPU (not a CPU rasteriser). */
  adapter?: string;
  onGpu?: boolean;
}

const SECTIONS: Record<string, (opts: { quick?: boolean }) => Promise<Section>> = {
  wasm: async (opts) => (await import('./wasm.js')).runWasmBench(opts),
  webgpu: async (opts) => (await import('./webgpu.js')).runWebGPUBench(opts),
};

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: 'BENCHMARKS.md' },
  },
});

const names = values.only ? values.only.split(',') : Object.keys(SECTIONS);
const started = new Date();
const parts: string[] = [];
let webgpu: Section | undefined;
for (const name of names) {
  const run = SECTIONS[name];
  if (!run) throw new Error(`unknown bench section '${name}'; known: ${Object.keys(SECTIONS).join(', ')}`);
  console.error(`bench: ${name} ...`);
  collectGarbage(); // the previous section's garbage is not this one's to collect
  const t0 = performance.now();
  const section = await run({ quick: values.quick });
  console.error(`bench: ${name} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  parts.push(`## ${section.title}\n\n${section.markdown.trim()}\n`);
  if (name === 'webgpu') webgpu = section;
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const header = `# Benchmarks

Written by \`npm run bench\`${values.quick ? ' --quick (shortened runs: smoke figures only)' : ''} on ${started.toISOString().slice(0, 10)}, all figures from this one run.
Machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}.
The host is shared and noisy: tables give medians with min–max, and peers run interleaved with ours in the same process.

${gpuNote(webgpu)}`;

await writeFile(values.out!, `${header}\n${parts.join('\n')}`);
console.error(`bench: wrote ${values.out}`);

/** Where this run's WebGPU figures come from, and where the other adapter's are. */
function gpuNote(section: Section | undefined): string {
  if (!section) return '';
  if (section.onGpu) {
    return `**GPU run:** this file's WebGPU figures are Dawn's default backend (Vulkan on Linux) on ${section.adapter}, with PyTorch/cuDNN on the ` +
      'same GPU beside them. The GPU machine has Node and no package registry: the bench ran as a bundle (scripts/bundle-node.mjs). ' +
      'The llvmpipe figures are in BENCHMARKS.md.\n';
  }
  return `**GPU machine:** this file's WebGPU figures are ${section.adapter} (a CPU rasteriser). Figures from the H100 machine ` +
    "(Dawn's Vulkan backend on the NVIDIA driver, PyTorch/cuDNN beside them) are in BENCHMARKS-GPU.md, written by the same command there.\n";
}
