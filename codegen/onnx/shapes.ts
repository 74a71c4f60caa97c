/**
 * Static shape propagation from the model inputs through the graph. A value
 * whose shape cannot be derived (an unsupported op, a malformed node, a
 * symbolic input dim) is recorded with the reason, and the reason becomes an
 * error only when something (a Conv) asks for that shape: ops after the last
 * conv never need to be understood.
 */
import { OnnxModelError } from './errors.js';
import { describeNode, resolveConstant, type GraphIndex } from './graph.js';
import type { OnnxLimits } from './limits.js';
import { isDefaultDomain, type OnnxNode } from './parse.js';
import { SHAPE_RULES, ShapeFailure, UnknownInputShape, type Shape, type ShapeContext } from './shape-rules.js';
import { ONNX_DATA_TYPE } from './schema.js';
import { readFloat32, readIntegers } from './tensors.js';

export type { Shape } from './shape-rules.js';

/** What a caller knows about one graph input: its shape, or why it has none. */
export type InputShape = Shape | { readonly unknown: string };

export class ShapeTable {
  constructor(
    private readonly known: ReadonlyMap<string, Shape>,
    private readonly unknown: ReadonlyMap<string, string>,
  ) {}

  get(value: string): Shape | undefined {
    return this.known.get(value);
  }

  /** Why a value has no shape (undefined when it has one). */
  reason(value: string): string | undefined {
    if (this.known.has(value)) return undefined;
    return this.unknown.get(value) ?? `no node, initializer or graph input defines '${value}'`;
  }

  /** The shape, or an OnnxModelError naming `neededBy` and the root cause. */
  require(value: string, neededBy: string): Shape {
    const shape = this.known.get(value);
    if (shape) return shape;
    throw new OnnxModelError(neededBy, `needs the shape of '${value}', which cannot be inferred: ${this.reason(value)}`);
  }
}

function checkedShape(shape: Shape, limits: OnnxLimits): Shape {
  if (shape.length > limits.maxTensorRank) {
    throw new ShapeFailure(`produces rank ${shape.length}, over the limit of ${limits.maxTensorRank}`);
  }
  const bad = shape.find((d) => !Number.isSafeInteger(d) || d < 0);
  if (bad !== undefined) throw new ShapeFailure(`produces an invalid dim ${bad} in [${shape.join(', ')}]`);
  return shape;
}

/** Integer values tracked at analysis time stay small: they are shapes, axes and pads. */
const MAX_VALUE_ELEMENTS = 1024;

interface Tables {
  known: Map<string, Shape>;
  unknown: Map<string, string>;
  values: Map<string, readonly number[]>;
}

function contextFor(node: OnnxNode, index: GraphIndex, { known, unknown, values }: Tables): ShapeContext {
  const constant = (i: number, what: string) => {
    const name = node.inputs[i];
    const tensor = name ? resolveConstant(index, name) : undefined;
    if (!tensor) throw new ShapeFailure(`its ${what} (input ${i}${name ? ` '${name}'` : ''}) is not a constant`);
    return tensor;
  };
  const value = (i: number): readonly number[] | undefined => {
    const name = node.inputs[i];
    if (!name) return undefined;
    const computed = values.get(name);
    if (computed) return computed;
    const tensor = resolveConstant(index, name);
    const isInt = tensor && (tensor.dataType === ONNX_DATA_TYPE.INT64 || tensor.dataType === ONNX_DATA_TYPE.INT32);
    if (!tensor || !isInt || tensor.elementCount > MAX_VALUE_ELEMENTS) return undefined;
    return readIntegers(tensor, { clamp: true });
  };
  return {
    node,
    index,
    hasInput: (i) => Boolean(node.inputs[i]),
    input(i) {
      const name = node.inputs[i];
      if (!name) throw new ShapeFailure(`input ${i} is missing`);
      const shape = known.get(name);
      if (shape) return shape;
      throw new UnknownInputShape(unknown.get(name) ?? `no node, initializer or graph input defines '${name}'`);
    },
    value,
    setValue(output, v) {
      const name = node.outputs[output];
      if (name && v.length <= MAX_VALUE_ELEMENTS && v.every(Number.isSafeInteger)) values.set(name, [...v]);
    },
    constInts(i, what) {
      const v = value(i);
      if (v) return [...v];
      constant(i, what); // throws "not a constant" when it is not one
      throw new ShapeFailure(`its ${what} (input ${i} '${node.inputs[i]}') is not a small INT64/INT32 tensor`);
    },
    constFloats: (i, what) => Array.from(readFloat32(constant(i, what))),
    fail(problem): never {
      throw new ShapeFailure(problem);
    },
  };
}

function applyRule(node: OnnxNode, ctx: ShapeContext): Shape[] {
  const rule = isDefaultDomain(node) ? SHAPE_RULES.get(node.opType) : undefined;
  if (!rule) {
    const op = isDefaultDomain(node) ? node.opType : `${node.domain}::${node.opType}`;
    throw new ShapeFailure(`op type '${op}' is not supported by shape inference`);
  }
  return rule(ctx);
}

export function inferShapes(index: GraphIndex, inputShapes: ReadonlyMap<string, InputShape>, limits: OnnxLimits): ShapeTable {
  const known = new Map<string, Shape>();
  const unknown = new Map<string, string>();
  const tables: Tables = { known, unknown, values: new Map() };
  for (const [name, tensor] of index.constants) known.set(name, tensor.dims);
  for (const name of index.dataInputs) {
    const given = inputShapes.get(name);
    if (given && 'unknown' in given) unknown.set(name, given.unknown);
    else if (given) known.set(name, given as Shape);
    else unknown.set(name, `graph input '${name}' has no known shape`);
  }

  for (const node of index.order) {
    let outputs: Shape[] = [];
    let failure: string | undefined;
    if (node.opType === 'Constant' && isDefaultDomain(node)) {
      if (index.constants.has(node.outputs[0])) continue; // numeric: its dims are already known
      failure = `${describeNode(node)}: holds a string or sparse value, not a numeric tensor`;
    } else {
      try {
        outputs = applyRule(node, contextFor(node, index, tables)).map((s) => checkedShape(s, limits));
      } catch (err) {
        // An unknown input passes its root cause on unchanged; anything else is this node's problem.
        if (err instanceof UnknownInputShape) failure = err.reason;
        else if (err instanceof ShapeFailure) failure = `${describeNode(node)}: ${err.message}`;
        else if (err instanceof OnnxModelError) failure = err.message; // already names the node
        else throw err;
      }
    }
    node.outputs.forEach((out, i) => {
      if (!out) return;
      const shape = failure === undefined ? outputs[i] : undefined;
      if (shape) known.set(out, shape);
      else {
        unknown.set(out, failure ?? `${describeNode(node)}: shape inference gives no shape for output ${i}`);
        tables.values.delete(out); // a value without a shape is not trustworthy
      }
    });
  }
  return new ShapeTable(known, unknown);
}
