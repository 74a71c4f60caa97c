/**
 * What kernel selection needs to know about an adapter: a stable key (the
 * tuning cache is keyed by it) and whether it is a CPU rasteriser, where
 * per-lane loads are dear and barriers dearer than on a GPU.
 */
export interface AdapterProfile {
  /** Stable description, e.g. "llvmpipe-llvm-15-0-6-256-bits- / OpenGL version OpenGL ES 3.2 Mesa 22.3.6". */
  readonly key: string;
  /** A software rasteriser on the CPU (llvmpipe, lavapipe, SwiftShader, WARP). */
  readonly isCpu: boolean;
}

/** The adapter fields WebGPU gives (GPUAdapterInfo), all optional here. */
export interface AdapterInfoLike {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
  readonly isFallbackAdapter?: boolean;
}

const CPU_PATTERN = /llvmpipe|lavapipe|swiftshader|softpipe|warp|software|\bcpu\b/i;

export function profileFromInfo(info: AdapterInfoLike | undefined): AdapterProfile {
  const parts = [info?.device, info?.description, info?.vendor, info?.architecture].filter((s): s is string => !!s && s.length > 0);
  const key = parts.join(' / ') || 'unknown adapter';
  return { key, isCpu: CPU_PATTERN.test(key) || info?.isFallbackAdapter === true };
}

/** A profile from a stored adapter key (tuning cache entries). */
export function profileFromKey(key: string): AdapterProfile {
  return { key, isCpu: CPU_PATTERN.test(key) };
}

/** The profile of the adapter behind a device (GPUDevice.adapterInfo; older implementations lack it). */
export function profileOfDevice(device: GPUDevice): AdapterProfile {
  return profileFromInfo((device as { adapterInfo?: AdapterInfoLike }).adapterInfo);
}

/** No adapter at hand (`convbn gen` without a device): generic GPU kernels. */
export const GENERIC_GPU: AdapterProfile = { key: 'generic GPU', isCpu: false };
/** A CPU rasteriser such as llvmpipe, when no adapter is at hand. */
export const GENERIC_CPU: AdapterProfile = { key: 'generic CPU rasteriser', isCpu: true };
