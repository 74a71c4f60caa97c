/**
 * Writes a layer set's kernels: one .wgsl file per distinct kernel and a
 * manifest.json describing each kernel (config, entry point, bindings with
 * sizes, workgroup size, dispatch) and each layer's per-mode kernel order.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { configKey, kernelConfig, normalizeConfig, outputShape, toInput, MODES, type ConvBNConfigInput } from './config.js';
import { generateKernel, kernelKey, type GeneratedKernel } from './generate.js';
import { allVariants, planFor } from './plans.js';
import type { KernelTarget } from './tuning/select.js';

export interface LayerSpec {
  readonly name: string;
  readonly config: ConvBNConfigInput;
}

export interface KernelManifestEntry {
  readonly file: string;
  readonly kind: string;
  readonly flags: Readonly<Record<string, boolean>>;
  /** Tile parameters of blocked kernels (absent for the others). */
  readonly params?: Readonly<Record<string, number>>;
  readonly key: string;
  readonly config: ReturnType<typeof toInput>;
  readonly entryPoint: string;
  readonly workgroupSize: readonly number[];
  readonly dispatch: readonly number[];
  readonly bindings: GeneratedKernel['bindings'];
}

export interface Manifest {
  readonly generator: string;
  readonly layers: {
    name: string;
    config: ReturnType<typeof toInput>;
    configKey: string;
    outputShape: [number, number, number, number];
    /** Kernel ids in execution order, per mode (train also with recompute). */
    plans: Record<string, { forward: string[]; backward: string[] }>;
    /** With NHWC or a padding mode other than zeros: the config the kernels run, on x transposed to NCHW and padded by that mode beforehand. */
    kernelConfig?: ReturnType<typeof toInput>;
  }[];
  readonly kernels: Record<string, KernelManifestEntry>;
}

/** `target`: the adapter (and tuning cache) to pick kernels for; default: a CPU rasteriser's heuristics. */
export async function writeKernelSet(layers: readonly LayerSpec[], outDir: string, target?: KernelTarget): Promise<Manifest> {
  await mkdir(outDir, { recursive: true });
  const kernels = new Map<string, GeneratedKernel>();
  const manifestLayers: Manifest['layers'] = [];
  for (const layer of layers) {
    const layerConfig = normalizeConfig(layer.config);
    // NHWC transposes and a padding mode other than zeros pads x first (runtime/channels-last.ts,
    // runtime/padding-mode.ts): the kernels are those of the NCHW, pre-padded config.
    const c = kernelConfig(layerConfig);
    const idOf = new Map<string, string>();
    for (const variant of allVariants(c, { target })) {
      const key = kernelKey(variant, c);
      if (!kernels.has(key)) kernels.set(key, generateKernel(variant, c));
      idOf.set(key, kernels.get(key)!.id);
    }
    const plans: Manifest['layers'][number]['plans'] = {};
    for (const mode of MODES) {
      for (const recompute of mode === 'train' ? [false, true] : [false]) {
        const plan = planFor(mode, c, { recompute, target });
        const ids = (steps: typeof plan.forward) => steps.map((s) => idOf.get(kernelKey(s.variant, c))!);
        plans[recompute ? `${mode}+recompute` : mode] = { forward: ids(plan.forward), backward: ids(plan.backward) };
      }
    }
    const out = outputShape(c);
    manifestLayers.push({
      name: layer.name, config: toInput(layerConfig), configKey: configKey(layerConfig), outputShape: [out.N, out.C, out.H, out.W], plans,
      ...(c !== layerConfig ? { kernelConfig: toInput(c) } : {}),
    });
  }
  const entries: Record<string, KernelManifestEntry> = {};
  for (const k of kernels.values()) {
    const file = `${k.id}.wgsl`;
    await writeFile(path.join(outDir, file), k.code);
    entries[k.id] = {
      file, kind: k.variant.kind, flags: k.variant.flags, ...(k.variant.params ? { params: k.variant.params } : {}), key: k.key, config: toInput(k.config), entryPoint: k.entryPoint,
      workgroupSize: k.workgroupSize, dispatch: k.dispatch, bindings: k.bindings,
    };
  }
  const manifest: Manifest = { generator: 'convbn', layers: manifestLayers, kernels: entries };
  await writeFile(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
