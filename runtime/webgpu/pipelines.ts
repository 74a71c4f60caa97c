/**
 * Compute pipelines keyed by the kernel's key (built from variant + config).
 * Bind group layouts come from the bindings wgsl_reflect found in the WGSL.
 */
import { generateKernel, type GeneratedKernel } from '../../codegen/generate.js';
import type { ConvBNConfig } from '../../codegen/config.js';
import { kernelKey } from '../../codegen/generate.js';
import type { KernelVariant } from '../../codegen/kernels.js';
import { ShaderStage } from './flags.js';

export interface CompiledKernel {
  readonly kernel: GeneratedKernel;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

export class PipelineCache {
  private readonly entries = new Map<string, CompiledKernel>();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.entries.size;
  }

  get(variant: KernelVariant, config: ConvBNConfig): CompiledKernel {
    const key = kernelKey(variant, config);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = this.compile(generateKernel(variant, config));
      this.entries.set(key, entry);
    }
    return entry;
  }

  private compile(kernel: GeneratedKernel): CompiledKernel {
    const layout = this.device.createBindGroupLayout({
      label: kernel.id,
      entries: kernel.bindings.map((b) => ({
        binding: b.binding,
        visibility: ShaderStage.COMPUTE,
        buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    const module = this.device.createShaderModule({ label: kernel.id, code: kernel.code });
    const pipeline = this.device.createComputePipeline({
      label: kernel.id,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: kernel.entryPoint },
    });
    return { kernel, pipeline, layout };
  }

  clear(): void {
    this.entries.clear();
  }
}
