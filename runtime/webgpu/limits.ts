/**
 * A config's fit to a device, checked before any GPU work: a too-large layer
 * gets an error naming the limit, never a WebGPU validation error.
 */
import type { ConvBNConfig } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';
import { roleElements, STEP_ROLES, PERSISTENT_ROLES } from '../../codegen/plans.js';
import { KERNELS } from '../../codegen/kernels.js';

export function checkDeviceLimits(c: ConvBNConfig, limits: GPUSupportedLimits): void {
  const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  for (const role of [...STEP_ROLES, ...PERSISTENT_ROLES]) {
    const bytes = roleElements(role, c) * 4;
    if (bytes > maxBinding) {
      const limit = limits.maxStorageBufferBindingSize <= limits.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
      throw new ConvBNInputError(`${role} bytes`, bytes,
        `must be <= the device's ${limit} = ${maxBinding}; use a smaller batch N or image`);
    }
  }
  const largestWorkgroup = Math.max(...Object.values(KERNELS).map((k) => k.workgroupSize));
  if (largestWorkgroup > limits.maxComputeInvocationsPerWorkgroup) {
    throw new ConvBNInputError('device maxComputeInvocationsPerWorkgroup', limits.maxComputeInvocationsPerWorkgroup,
      `must be >= ${largestWorkgroup}`);
  }
  if (limits.maxStorageBuffersPerShaderStage < 6) {
    throw new ConvBNInputError('device maxStorageBuffersPerShaderStage', limits.maxStorageBuffersPerShaderStage, 'must be >= 6');
  }
}
