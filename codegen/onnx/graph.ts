/**
 * The graph as a dataflow index: who produces and who consumes each value,
 * a dependency order (which proves there is no cycle and every input is
 * defined), and constant lookup through Identity chains and Constant nodes.
 */
import { attrFloat, attrFloats, attrInt, attrInts, attrTensor } from './attributes.js';
import { OnnxModelError } from './errors.js';
import type { OnnxLimits } from './limits.js';
import { isDefaultDomain, type OnnxModel, type OnnxNode } from './parse.js';
import { ONNX_DATA_TYPE as DT, type TensorProtoMessage } from './schema.js';
import { tensorFromProto, type OnnxTensor } from './tensors.js';

export interface ValueUse {
  readonly node: OnnxNode;
  readonly slot: number;
}

export interface GraphIndex {
  readonly model: OnnxModel;
  /** Every node, producers before consumers. */
  readonly order: readonly OnnxNode[];
  readonly producer: ReadonlyMap<string, OnnxNode>;
  /** Every use of a value by a node input, in node order. */
  readonly consumers: ReadonlyMap<string, readonly ValueUse[]>;
  readonly graphOutputs: ReadonlySet<string>;
  /** Graph inputs that are not initializers: what the caller feeds. */
  readonly dataInputs: readonly string[];
  /** Initializers and Constant-node outputs. */
  readonly constants: ReadonlyMap<string, OnnxTensor>;
  /** resolveConstant's memo: null means "computed at run time". */
  readonly resolved: Map<string, OnnxTensor | null>;
}

function describe(node: OnnxNode): string {
  return `node '${node.label}' (${node.opType})`;
}

function syntheticTensor(name: string, dims: number[], dataType: number, values: number[]): TensorProtoMessage {
  return {
    name, dims, data_type: dataType,
    float_data: dataType === DT.FLOAT ? values : [],
    int64_data: dataType === DT.INT64 ? values : [],
    int32_data: [], string_data: [], double_data: [], uint64_data: [], external_data: [],
    raw_data: undefined, data_location: 0,
  };
}

/** The tensor a Constant node holds, or undefined for kinds we never need (strings, sparse). */
function constantNodeTensor(node: OnnxNode, limits: OnnxLimits): OnnxTensor | undefined {
  const output = node.outputs[0] ?? '';
  const subject = `${describe(node)} value`;
  let proto: TensorProtoMessage | undefined;
  if (node.attributes.has('value')) proto = attrTensor(node, 'value');
  else if (node.attributes.has('value_float')) proto = syntheticTensor(output, [], DT.FLOAT, [attrFloat(node, 'value_float', 0)]);
  else if (node.attributes.has('value_floats')) {
    const v = attrFloats(node, 'value_floats') ?? [];
    proto = syntheticTensor(output, [v.length], DT.FLOAT, v);
  } else if (node.attributes.has('value_int')) proto = syntheticTensor(output, [], DT.INT64, [attrInt(node, 'value_int', 0)]);
  else if (node.attributes.has('value_ints')) {
    const v = attrInts(node, 'value_ints') ?? [];
    proto = syntheticTensor(output, [v.length], DT.INT64, v);
  }
  if (!proto) return undefined;
  const tensor = tensorFromProto(proto, subject, limits);
  return { ...tensor, name: output };
}

/** Kahn's algorithm: a node is ready once every input's producer is placed. */
function dependencyOrder(nodes: readonly OnnxNode[], producer: ReadonlyMap<string, OnnxNode>): OnnxNode[] {
  const waiting = new Map<OnnxNode, number>();
  const dependents = new Map<OnnxNode, OnnxNode[]>();
  for (const node of nodes) {
    const deps = new Set<OnnxNode>();
    for (const input of node.inputs) {
      const p = input ? producer.get(input) : undefined;
      if (p) deps.add(p);
    }
    waiting.set(node, deps.size);
    for (const d of deps) {
      const list = dependents.get(d);
      if (list) list.push(node);
      else dependents.set(d, [node]);
    }
  }
  const ready = nodes.filter((n) => waiting.get(n) === 0);
  const order: OnnxNode[] = [];
  for (let i = 0; i < ready.length; i++) {
    const node = ready[i];
    order.push(node);
    for (const next of dependents.get(node) ?? []) {
      const left = (waiting.get(next) ?? 0) - 1;
      waiting.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  if (order.length !== nodes.length) {
    const stuck = nodes.filter((n) => (waiting.get(n) ?? 0) > 0);
    const shown = stuck.slice(0, 6).map((n) => `'${n.label}' (${n.opType})`).join(', ');
    throw new OnnxModelError('graph',
      `has a cycle: ${stuck.length} node(s) depend on each other's outputs, among them ${shown}`);
  }
  return order;
}

export function buildGraphIndex(model: OnnxModel, limits: OnnxLimits): GraphIndex {
  const producer = new Map<string, OnnxNode>();
  const declaredInputs = new Set(model.inputs.map((v) => v.name));
  for (const node of model.nodes) {
    for (const output of node.outputs) {
      if (!output) continue;
      const other = producer.get(output);
      if (other) throw new OnnxModelError(describe(node), `output '${output}' is also produced by ${describe(other)}`);
      if (model.initializers.has(output)) throw new OnnxModelError(describe(node), `output '${output}' is also an initializer`);
      if (declaredInputs.has(output)) throw new OnnxModelError(describe(node), `output '${output}' is also a graph input`);
      producer.set(output, node);
    }
  }

  const consumers = new Map<string, ValueUse[]>();
  for (const node of model.nodes) {
    node.inputs.forEach((input, slot) => {
      if (!input) return; // an optional input left out
      if (!producer.has(input) && !model.initializers.has(input) && !declaredInputs.has(input)) {
        throw new OnnxModelError(describe(node),
          `input ${slot} '${input}' is not produced by any node, initializer or graph input (missing initializer?)`);
      }
      const uses = consumers.get(input);
      if (uses) uses.push({ node, slot });
      else consumers.set(input, [{ node, slot }]);
    });
  }
  for (const out of model.outputs) {
    if (!producer.has(out.name) && !model.initializers.has(out.name) && !declaredInputs.has(out.name)) {
      throw new OnnxModelError(`graph output '${out.name}'`, 'is not produced by any node, initializer or graph input');
    }
  }

  const order = dependencyOrder(model.nodes, producer);

  const constants = new Map<string, OnnxTensor>(model.initializers);
  for (const node of model.nodes) {
    if (node.opType !== 'Constant' || !isDefaultDomain(node)) continue;
    if (node.outputs.length !== 1 || !node.outputs[0]) throw new OnnxModelError(describe(node), 'must have exactly one output');
    const tensor = constantNodeTensor(node, limits);
    if (tensor) constants.set(node.outputs[0], tensor);
  }

  return {
    model, order, producer, consumers, constants, resolved: new Map(),
    graphOutputs: new Set(model.outputs.map((v) => v.name)),
    dataInputs: model.inputs.map((v) => v.name).filter((name) => !model.initializers.has(name)),
  };
}

/**
 * The constant a value holds, following Identity nodes back to an
 * initializer or Constant node (PyTorch routes shared and renamed
 * parameters this way); undefined when it is computed at run time.
 */
export function resolveConstant(index: GraphIndex, value: string): OnnxTensor | undefined {
  // Memoised along the whole walk, so many lookups through one long chain stay linear.
  const walked: string[] = [];
  let name = value;
  let found: OnnxTensor | null;
  // The dependency order proved the graph acyclic, so this walk ends.
  for (;;) {
    const memo = index.resolved.get(name);
    if (memo !== undefined) {
      found = memo;
      break;
    }
    walked.push(name);
    const tensor = index.constants.get(name);
    if (tensor) {
      found = tensor;
      break;
    }
    const p = index.producer.get(name);
    if (!p || p.opType !== 'Identity' || !isDefaultDomain(p) || !p.inputs[0]) {
      found = null;
      break;
    }
    name = p.inputs[0];
  }
  for (const w of walked) index.resolved.set(w, found);
  return found ?? undefined;
}

export function describeNode(node: OnnxNode): string {
  return describe(node);
}
