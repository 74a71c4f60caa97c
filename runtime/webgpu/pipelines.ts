/**
 * Compute pipelines keyed by the kernel's key (built from variant + config).
 * Bind group layouts come from the bindings wgsl_reflect found in the WGSL.
 * The cache also carries the kernel target of its device (adapter profile,
 * tuning cache, forced choices) that layers hand to planFor.
 */
import { generateKernel, type GeneratedKernel } from '../../codegen/generate.js';
import type { ConvBNConfig } from '../../codegen/config.js';
import { kernelKey } from '../../codegen/generate.js';
import type { KernelVariant } from '../../codegen/kernels.js';
import { tuningCacheFromEnv, type TuningCache } from '../../codegen/tuning/cache.js';
import { profileOfDevice, type AdapterProfile } from '../../codegen/tuning/profile.js';
import type { KernelTarget } from '../../codegen/tuning/select.js';
import { ALGORITHMS, PASSES, type Algorithm } from '../../codegen/tuning/choice.js';
import { ShaderStage } from './flags.js';

export interface CompiledKernel {
  readonly kernel: GeneratedKernel;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** How kernels are chosen on an engine's device (WebGPU engine option `kernels`). */
export interface KernelOptions {
  /** Measured winners from `convbn tune` (default: the file named by CONVBN_TUNING_CACHE, in Node). */
  readonly cache?: TuningCache;
  /** Per pass, an algorithm ('direct' | 'reg' | 'wg') or a full choice: overrides the cache and the heuristics. */
  readonly force?: KernelTarget['force'];
  /** Override the adapter profile read from the device (tests). */
  readonly profile?: AdapterProfile;
}

/**
 * CONVBN_KERNELS (Node), e.g. "forward=direct,wgrad=wg" or "all=reg": force
 * algorithms without code changes (A/B runs, bisecting a wrong result).
 */
function forceFromEnv(): KernelTarget['force'] {
  const text = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.CONVBN_KERNELS;
  if (!text) return undefined;
  const force: Record<string, Algorithm> = {};
  for (const part of text.split(',')) {
    const [pass, algo] = part.split('=').map((s) => s.trim());
    if (!(ALGORITHMS as readonly string[]).includes(algo) || !(pass === 'all' || (PASSES as readonly string[]).includes(pass))) {
      throw new Error(`CONVBN_KERNELS: '${part}' is not <pass>=<algorithm> with pass in ${PASSES.join(', ')}, all and algorithm in ${ALGORITHMS.join(', ')}`);
    }
    for (const p of pass === 'all' ? PASSES : [pass]) force[p] = algo as Algorithm;
  }
  return force;
}

export class PipelineCache {
  private readonly entries = new Map<string, CompiledKernel>();
  /** What planFor needs to pick this device's kernels. */
  readonly target: KernelTarget;

  constructor(private readonly device: GPUDevice, options: KernelOptions = {}) {
    this.target = {
      profile: options.profile ?? profileOfDevice(device),
      cache: options.cache ?? tuningCacheFromEnv(),
      force: options.force ?? forceFromEnv(),
    };
  }

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
