/**
 * The shapes analysis starts from: the model's declared input shapes, or the
 * caller's override for the first data input (CLI `--input-shape`).
 */
import { OnnxModelError } from './errors.js';
import type { GraphIndex } from './graph.js';
import type { OnnxLimits } from './limits.js';
import type { InputShape, Shape } from './shapes.js';

export interface ResolvedInputs {
  /** Shape of the first data input: what N, H, W of the first convs come from. */
  readonly modelInputShape: number[];
  readonly inputShapes: ReadonlyMap<string, InputShape>;
}

function checkOverride(override: unknown, limits: OnnxLimits): number[] {
  if (!Array.isArray(override) || override.length === 0 || override.length > limits.maxTensorRank
    || !override.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new OnnxModelError('inputShape', `${JSON.stringify(override)} must be a non-empty list of integers >= 1 (e.g. [1, 3, 224, 224])`);
  }
  return [...override] as number[];
}

function declaredShape(index: GraphIndex, name: string): InputShape {
  const info = index.model.inputs.find((v) => v.name === name);
  const dims = info?.shape;
  if (!dims) return { unknown: `graph input '${name}' declares no shape; pass inputShape (--input-shape)` };
  if (dims.every((d): d is number => typeof d === 'number')) return dims as Shape;
  const shown = dims.map((d) => (d === undefined ? '?' : String(d))).join(', ');
  return { unknown: `graph input '${name}' has shape [${shown}] with symbolic or unset dims; pass inputShape (--input-shape) with concrete sizes` };
}

export function resolveInputShapes(index: GraphIndex, override: number[] | undefined, limits: OnnxLimits): ResolvedInputs {
  const [first, ...others] = index.dataInputs;
  if (first === undefined) throw new OnnxModelError('graph', 'has no data input (every graph input is an initializer)');
  const inputShapes = new Map<string, InputShape>();
  for (const name of others) inputShapes.set(name, declaredShape(index, name));

  let primary: InputShape = declaredShape(index, first);
  if (override !== undefined) {
    const shape = checkOverride(override, limits);
    if (!('unknown' in primary) && primary.length !== shape.length) {
      throw new OnnxModelError('inputShape',
        `[${shape.join(', ')}] has rank ${shape.length} but graph input '${first}' is declared [${primary.join(', ')}]`);
    }
    primary = shape;
  }
  if ('unknown' in primary) throw new OnnxModelError('model input', primary.unknown);
  inputShapes.set(first, primary);
  return { modelInputShape: [...primary], inputShapes };
}
