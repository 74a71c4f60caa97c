/**
 * Acquiring a GPUDevice: `navigator.gpu` in browsers; in Node the `webgpu`
 * package (Dawn). With no GPU, Dawn's OpenGL ES backend in compatibility mode
 * on Mesa llvmpipe (EGL_PLATFORM=surfaceless) is what works: see README.
 */
import { importNode } from '../nodeImport.js';

export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  /** e.g. "llvmpipe (OpenGL ES 3.2 Mesa 22.3.6), compatibility". */
  readonly description: string;
  /** A software rasteriser on the CPU: prefers no workgroup memory, few barriers. */
  readonly isCpu: boolean;
}

export class NoWebGPUError extends Error {
  constructor(detail: string) {
    super(`No WebGPU adapter: ${detail}`);
    this.name = 'NoWebGPUError';
  }
}

/** Limits worth raising above the defaults when the adapter allows more. */
const WANTED_LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupsPerDimension',
] as const;

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Promise<DawnModule> | undefined;
/**
 * dawn.node tears the instance down when its GPU object is garbage-collected,
 * killing devices made from it (the process aborts): keep every instance alive.
 */
const liveInstances = new Set<GPU>();
const noAdapterFrom = new Set<string>();
async function loadDawn(): Promise<DawnModule> {
  dawn ??= importNode<DawnModule>('webgpu');
  const mod = await dawn;
  // Dawn's flags and enums (GPUBufferUsage, ...) are globals in browsers; mirror that.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return mod;
}

function describe(adapter: GPUAdapter, backend: string): { description: string; isCpu: boolean } {
  const info = adapter.info;
  const parts = [info.device, info.description, info.vendor, info.architecture].filter((s) => s && s.length > 0);
  const text = parts.join(' / ') || 'unknown adapter';
  const isCpu = /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(text) || (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const level = (adapter as { featureLevel?: string }).featureLevel;
  return { description: `${text} [${backend}${level ? `, ${level}` : ''}]`, isCpu };
}

async function requestDeviceFrom(adapter: GPUAdapter): Promise<GPUDevice> {
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) {
    // Adapter limits are not spreadable in dawn.node: read them one by one.
    const value = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof value === 'number') requiredLimits[name] = value;
  }
  return adapter.requestDevice({ requiredLimits });
}

export interface AcquireOptions {
  /** Node only: Dawn backend flags to try, in order (default: the platform's GPU, then OpenGL ES). */
  nodeBackends?: readonly string[];
}

/** Node: try the default (Vulkan/Metal/D3D on a real GPU), then OpenGL ES compatibility (llvmpipe). */
const NODE_ATTEMPTS: readonly { flags: string[]; featureLevel?: 'compatibility'; name: string }[] = [
  { flags: [], name: 'dawn default' },
  { flags: ['backend=opengles'], featureLevel: 'compatibility', name: 'dawn opengles' },
];

export async function acquireDevice(options: AcquireOptions = {}): Promise<AcquiredDevice> {
  const browserGpu = (globalThis as { navigator?: Navigator }).navigator?.gpu;
  if (browserGpu) {
    const adapter = await browserGpu.requestAdapter({ powerPreference: 'high-performance' })
      ?? await browserGpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
    if (!adapter) throw new NoWebGPUError('navigator.gpu.requestAdapter() returned null');
    const device = await requestDeviceFrom(adapter);
    return { device, adapter, ...describe(adapter, 'browser') };
  }
  if (typeof process === 'undefined') throw new NoWebGPUError('neither navigator.gpu nor Node.js is present');
  process.env.EGL_PLATFORM ??= 'surfaceless';
  if (!process.env.XDG_RUNTIME_DIR) {
    const { tmpdir } = await importNode<typeof import('node:os')>('node:os');
    process.env.XDG_RUNTIME_DIR = tmpdir();
  }
  let mod: DawnModule;
  try {
    mod = await loadDawn();
  } catch (e) {
    throw new NoWebGPUError(`the 'webgpu' package could not be loaded (${(e as Error).message})`);
  }
  const forced = options.nodeBackends ?? process.env.CONVBN_DAWN_BACKEND?.split(',').filter(Boolean);
  const attempts = forced
    ? forced.map((b) => ({ flags: [`backend=${b}`], featureLevel: 'compatibility' as const, name: `dawn ${b}` }))
    : NODE_ATTEMPTS;
  const tried: string[] = [];
  for (const attempt of attempts) {
    // Each failed probe prints Dawn warnings; a backend that gave nothing once is not asked again.
    if (noAdapterFrom.has(attempt.name)) {
      tried.push(attempt.name);
      continue;
    }
    let adapter: GPUAdapter | null;
    try {
      const gpu = mod.create(attempt.flags);
      liveInstances.add(gpu);
      adapter = await gpu.requestAdapter(attempt.featureLevel ? { featureLevel: attempt.featureLevel } as GPURequestAdapterOptions : undefined);
    } catch (e) {
      // e.g. a backend name this Dawn build does not know (CONVBN_DAWN_BACKEND): no adapter from it.
      noAdapterFrom.add(attempt.name);
      tried.push(`${attempt.name} (${(e as Error).message.split('\n')[0]})`);
      continue;
    }
    if (!adapter) {
      noAdapterFrom.add(attempt.name);
      tried.push(attempt.name);
      continue;
    }
    const device = await requestDeviceFrom(adapter);
    return { device, adapter, ...describe(adapter, attempt.name) };
  }
  throw new NoWebGPUError(
    `tried ${tried.join(', ')}. On Debian: apt-get install mesa-vulkan-drivers libvulkan1 libegl1 libgles2 ` +
    '(Dawn then runs on Mesa llvmpipe through OpenGL ES)');
}
