/**
 * Sliding-window geometry shared by Conv and the pooling ops: strides,
 * dilations, pads and auto_pad turned into explicit begin/end padding and
 * output extents, for any number of spatial axes.
 */
import { attrInt, attrInts, attrString } from './attributes.js';
import { OnnxModelError } from './errors.js';
import type { OnnxNode } from './parse.js';

export type AutoPad = 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
const AUTO_PADS: readonly AutoPad[] = ['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'];

export interface WindowGeometry {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** Resolved padding per spatial axis (auto_pad applied). */
  readonly padsBegin: readonly number[];
  readonly padsEnd: readonly number[];
  readonly autoPad: AutoPad;
  /** The explicit `pads` attribute as stored, when present (ONNX order: all begins, then all ends). */
  readonly padsAttribute?: readonly number[];
  readonly outSpatial: readonly number[];
}

function subject(node: OnnxNode): string {
  return `node '${node.label}' (${node.opType})`;
}

/** A per-spatial-axis int attribute (strides, dilations, output_padding), checked for length and minimum. */
export function perAxis(node: OnnxNode, name: string, rank: number, fallback: number, min: number): number[] {
  const values = attrInts(node, name);
  if (values === undefined) return new Array<number>(rank).fill(fallback);
  if (values.length !== rank) {
    throw new OnnxModelError(subject(node), `${name} has ${values.length} values; the ${rank}-D window needs ${rank}`);
  }
  const bad = values.findIndex((v) => v < min);
  if (bad >= 0) throw new OnnxModelError(subject(node), `${name}[${bad}] = ${values[bad]} must be >= ${min}`);
  return values;
}

export function readAutoPad(node: OnnxNode): AutoPad {
  const value = attrString(node, 'auto_pad', 'NOTSET');
  if (!(AUTO_PADS as readonly string[]).includes(value)) {
    throw new OnnxModelError(subject(node), `auto_pad '${value}' is not one of ${AUTO_PADS.join(', ')}`);
  }
  return value as AutoPad;
}

export interface WindowOptions {
  /** Pooling's ceil_mode: round the output extent up (the last window may start in the padding's end). */
  ceilMode?: boolean;
}

/**
 * `kernel` comes from kernel_shape or the weight; `spatialIn` is the input
 * extent per spatial axis. Throws OnnxModelError naming the node when the
 * attributes are malformed or the output would be empty.
 */
export function windowGeometry(
  node: OnnxNode, spatialIn: readonly number[], kernel: readonly number[], options: WindowOptions = {},
): WindowGeometry {
  const rank = spatialIn.length;
  if (kernel.length !== rank) {
    throw new OnnxModelError(subject(node), `kernel has ${kernel.length} axes but the input has ${rank} spatial axes`);
  }
  const badK = kernel.findIndex((k) => !Number.isSafeInteger(k) || k < 1);
  if (badK >= 0) throw new OnnxModelError(subject(node), `kernel extent ${kernel[badK]} on axis ${badK} must be >= 1`);
  const strides = perAxis(node, 'strides', rank, 1, 1);
  const dilations = perAxis(node, 'dilations', rank, 1, 1);
  const autoPad = readAutoPad(node);
  const padsAttribute = attrInts(node, 'pads');
  if (padsAttribute !== undefined) {
    if (padsAttribute.length !== 2 * rank) {
      throw new OnnxModelError(subject(node),
        `pads has ${padsAttribute.length} values; a ${rank}-D window needs ${2 * rank} (all begins, then all ends)`);
    }
    const bad = padsAttribute.findIndex((p) => p < 0);
    if (bad >= 0) throw new OnnxModelError(subject(node), `pads[${bad}] = ${padsAttribute[bad]} must be >= 0`);
  }
  const ceilMode = options.ceilMode ?? false;
  const padsBegin: number[] = [];
  const padsEnd: number[] = [];
  const outSpatial: number[] = [];
  for (let i = 0; i < rank; i++) {
    const size = spatialIn[i];
    const span = dilations[i] * (kernel[i] - 1) + 1;
    let begin = 0;
    let end = 0;
    let out: number;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      // Output ceil(in / stride); the odd pixel of padding goes to the end (UPPER) or the start (LOWER).
      out = Math.ceil(size / strides[i]);
      const total = Math.max((out - 1) * strides[i] + span - size, 0);
      begin = autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      end = total - begin;
    } else {
      // ONNX: explicit pads are used only with NOTSET; VALID means none.
      if (autoPad === 'NOTSET' && padsAttribute) {
        begin = padsAttribute[i];
        end = padsAttribute[i + rank];
      }
      const room = size + begin + end - span;
      out = (ceilMode ? Math.ceil(room / strides[i]) : Math.floor(room / strides[i])) + 1;
      // As PyTorch and onnxruntime: a last window starting inside the end padding is dropped.
      if (ceilMode && (out - 1) * strides[i] >= size + begin) out -= 1;
    }
    if (!(out >= 1)) {
      throw new OnnxModelError(subject(node),
        `spatial axis ${i}: input extent ${size}, padding ${begin}+${end}, kernel ${kernel[i]}, dilation ${dilations[i]}, ` +
        `stride ${strides[i]} leave an output extent of ${out} (< 1)`);
    }
    padsBegin.push(begin);
    padsEnd.push(end);
    outSpatial.push(out);
  }
  return { kernel: [...kernel], strides, dilations, padsBegin, padsEnd, autoPad, padsAttribute, outSpatial };
}

/** kernel_shape when present (checked against the weight's trailing dims), else the weight's. */
export function convKernel(node: OnnxNode, weightDims: readonly number[]): number[] {
  const fromWeight = weightDims.slice(2);
  const declared = attrInts(node, 'kernel_shape');
  if (declared && (declared.length !== fromWeight.length || declared.some((k, i) => k !== fromWeight[i]))) {
    throw new OnnxModelError(subject(node),
      `kernel_shape [${declared.join(', ')}] does not match the weight's dims [${weightDims.join(', ')}]`);
  }
  return fromWeight;
}

export function readGroup(node: OnnxNode): number {
  const group = attrInt(node, 'group', 1);
  if (group < 1) throw new OnnxModelError(subject(node), `group = ${group} must be >= 1`);
  return group;
}
