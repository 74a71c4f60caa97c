/**
 * A config's fit to a device, checked before any GPU work: a too-large layer
 * is split along the batch (see split.ts) or gets an error naming the limit,
 * never a WebGPU validation error.
 */
import type { ConvBNConfig } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import { roleElements, STEP_ROLES, PERSISTENT_ROLES, type ModePlan, type Role, type StepRole } from '../../codegen/plans.js';
import { KERNELS } from '../../codegen/kernels.js';

/** The two limits that bound one buffer; tests lower them to exercise splitting on a small device. */
export interface BufferLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
}

export type BufferLimitOverrides = Partial<BufferLimits>;

/**
 * The device's buffer limits, lowered by `overrides` (never raised: a value
 * above the device's would only turn into validation errors).
 */
export function bufferLimits(device: GPUSupportedLimits, overrides: BufferLimitOverrides | undefined): BufferLimits {
  if (overrides !== undefined && (overrides === null || typeof overrides !== 'object')) {
    throw new ConvBNInputError('limits', overrides, 'must be an object { maxStorageBufferBindingSize?, maxBufferSize? }');
  }
  const pick = (name: keyof BufferLimits): number => {
    const value: unknown = overrides?.[name];
    if (value === undefined) return device[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 16 || value % 4 !== 0) {
      throw new ConvBNInputError(`limits.${name}`, value, 'must be an integer >= 16 and a multiple of 4');
    }
    return Math.min(value, device[name]);
  };
  return { maxStorageBufferBindingSize: pick('maxStorageBufferBindingSize'), maxBufferSize: pick('maxBufferSize') };
}

/** Bytes one storage buffer may hold (it is both created and bound), and the limit that sets it. */
export function largestBinding(limits: BufferLimits): { bytes: number; limit: keyof BufferLimits } {
  return limits.maxStorageBufferBindingSize <= limits.maxBufferSize
    ? { bytes: limits.maxStorageBufferBindingSize, limit: 'maxStorageBufferBindingSize' }
    : { bytes: limits.maxBufferSize, limit: 'maxBufferSize' };
}

/** The first role of `c` whose buffer is over the binding limit, or undefined when all fit. */
export function oversizedRole(c: ConvBNConfig, limits: BufferLimits, roles: readonly Role[] = [...STEP_ROLES, ...PERSISTENT_ROLES]):
  { role: Role; bytes: number } | undefined {
  const { bytes: max } = largestBinding(limits);
  for (const role of roles) {
    const bytes = roleElements(role, c) * 4;
    if (bytes > max) return { role, bytes };
  }
  return undefined;
}

/** The step buffers a plan binds (its scratch included: kernel choices decide which exist and how large). */
export function planStepRoles(plan: ModePlan): StepRole[] {
  const roles = new Set<Role>();
  for (const s of [...plan.forward, ...plan.backward]) for (const role of Object.values(s.bind)) roles.add(role);
  return STEP_ROLES.filter((r) => roles.has(r));
}

/** Tensors every mode exchanges with the caller: createLayer checks these for one image up front. */
export const CALLER_ROLES: readonly StepRole[] = ['x', 'y', 'gradX', 'gradY'];

/** Throws if a step buffer of one image (`perImage`: the config with N = 1) is over the limit: the batch split cannot help. */
export function checkImageFits(perImage: ConvBNConfig, limits: BufferLimits, roles: readonly StepRole[]): void {
  const image = oversizedRole(perImage, limits, roles);
  if (!image) return;
  const { bytes: max, limit } = largestBinding(limits);
  throw new ConvBNInputError(`${image.role} bytes of one image`, image.bytes,
    `must be <= the device's ${limit} = ${max} (the runtime splits along the batch, and along output channels or groups when a split fits, but x of one image must fit when groups == 1; use a smaller image or fewer channels)`);
}

/**
 * What cannot be split: the kernels' workgroup and binding counts, the
 * parameters, and the caller's tensors of one image (`perImage`: c with
 * N = 1). The batch itself is split by split.ts, so N never fails here; a
 * mode's scratch buffers are checked when it runs (layer.ts).
 */
export function checkDeviceLimits(c: ConvBNConfig, perImage: ConvBNConfig, device: GPUSupportedLimits, limits: BufferLimits): void {
  const largestWorkgroup = Math.max(...Object.values(KERNELS).map((k) => k.workgroupSize));
  if (largestWorkgroup > device.maxComputeInvocationsPerWorkgroup) {
    throw new ConvBNInputError('device maxComputeInvocationsPerWorkgroup', device.maxComputeInvocationsPerWorkgroup,
      `must be >= ${largestWorkgroup}`);
  }
  if (device.maxStorageBuffersPerShaderStage < 6) {
    throw new ConvBNInputError('device maxStorageBuffersPerShaderStage', device.maxStorageBuffersPerShaderStage, 'must be >= 6');
  }
  const { bytes: max, limit } = largestBinding(limits);
  const parameter = oversizedRole(c, limits, PERSISTENT_ROLES);
  if (parameter) {
    throw new ConvBNInputError(`${parameter.role} bytes`, parameter.bytes,
      `must be <= the device's ${limit} = ${max} (parameters are not split; use fewer channels or a smaller kernel)`);
  }
  checkImageFits(perImage, limits, CALLER_ROLES);
}
