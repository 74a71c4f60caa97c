/**
 * Caps applied before anything is decoded or allocated, so a hostile model
 * fails fast with OnnxModelError instead of exhausting memory.
 */
import { OnnxModelError } from './errors.js';

export interface OnnxLimits {
  /** Largest model file accepted, in bytes (default 1 GiB). */
  maxFileBytes: number;
  /** Largest element count of any one tensor (default 2^28). */
  maxTensorElements: number;
  /** Largest tensor rank (default 8). */
  maxTensorRank: number;
  /** Most nodes in the main graph (default 1,000,000). */
  maxNodes: number;
}

export const DEFAULT_ONNX_LIMITS: Readonly<OnnxLimits> = Object.freeze({
  maxFileBytes: 1024 ** 3,
  maxTensorElements: 2 ** 28,
  maxTensorRank: 8,
  maxNodes: 1_000_000,
});

export function resolveLimits(partial?: Partial<OnnxLimits>): OnnxLimits {
  const limits = { ...DEFAULT_ONNX_LIMITS, ...(partial ?? {}) };
  for (const [key, value] of Object.entries(limits)) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new OnnxModelError(`limits.${key}`, `must be a positive integer, got ${String(value)}`);
    }
  }
  return limits;
}

export function checkFileSize(byteLength: number, limits: OnnxLimits): void {
  if (byteLength > limits.maxFileBytes) {
    throw new OnnxModelError('model file',
      `${byteLength} bytes exceeds the limit of ${limits.maxFileBytes} bytes (limits.maxFileBytes)`);
  }
  if (byteLength === 0) throw new OnnxModelError('model file', 'is empty');
}

/**
 * Validates a tensor's dims and returns its element count. Runs before any
 * buffer for the tensor exists; the running product is checked per dim so it
 * never leaves the safe-integer range.
 */
export function checkTensorDims(subject: string, dims: readonly number[], limits: OnnxLimits): number {
  if (dims.length > limits.maxTensorRank) {
    throw new OnnxModelError(subject, `rank ${dims.length} exceeds the limit of ${limits.maxTensorRank}`);
  }
  let count = 1;
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i];
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new OnnxModelError(subject, `dims[${i}] = ${d} is invalid: dims must be integers >= 0 (dims [${dims.join(', ')}])`);
    }
    // Per dim too: a zero elsewhere must not let a 2^40 dim through to shape arithmetic.
    if (d > limits.maxTensorElements) {
      throw new OnnxModelError(subject,
        `dims[${i}] = ${d} exceeds the limit of ${limits.maxTensorElements} elements (limits.maxTensorElements)`);
    }
    count *= d;
    if (count > limits.maxTensorElements) {
      throw new OnnxModelError(subject,
        `dims [${dims.join(', ')}] hold more than ${limits.maxTensorElements} elements (limits.maxTensorElements)`);
    }
  }
  return count;
}
