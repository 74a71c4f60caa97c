/**
 * Bytes -> a plain model description: protobufjs decodes the wire format
 * (schema.ts), then every structural rule the later steps rely on is checked
 * once here: a graph exists, initializers are named, unique and sized within
 * limits, attributes are unique per node.
 */
import protobuf from 'protobufjs';
import { OnnxModelError } from './errors.js';
import { checkFileSize, resolveLimits, type OnnxLimits } from './limits.js';
import {
  int64, onnxSchema, type AttributeProtoMessage, type Int64, type ModelProtoMessage, type NodeProtoMessage, type ValueInfoProtoMessage,
} from './schema.js';
import { tensorFromProto, type OnnxTensor } from './tensors.js';

export interface OnnxNode {
  readonly index: number;
  /** As stored; may be empty. */
  readonly name: string;
  /** The name, or `OpType#index` for unnamed nodes (and `name#index` for repeated names): unique, shown in messages and reports. */
  readonly label: string;
  readonly opType: string;
  readonly domain: string;
  /** Optional inputs left out are empty strings, as in ONNX. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: ReadonlyMap<string, AttributeProtoMessage>;
}

/** A declared graph input or output; a dim is a number, a symbolic name, or undefined when unset. */
export interface OnnxValueInfo {
  readonly name: string;
  readonly elemType: number;
  readonly shape?: readonly (number | string | undefined)[];
}

export interface OnnxModel {
  readonly irVersion: number;
  /** Version of the default (ai.onnx) operator set, when declared. */
  readonly opsetVersion?: number;
  readonly producer: string;
  readonly graphName: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers: ReadonlyMap<string, OnnxTensor>;
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
}

/**
 * protobufjs yields int64 as Long objects; numbers keep memory per value small
 * for packed int64 arrays and are what every caller wants. Overridden on this
 * reader instance only, so other protobufjs users in the process are untouched.
 */
function numberLongReader(bytes: Uint8Array): protobuf.Reader {
  const reader = protobuf.Reader.create(bytes);
  const readInt64 = reader.int64;
  const readUint64 = reader.uint64;
  // The Long-typed signatures are what protobufjs declares; the decoder accepts numbers too.
  reader.int64 = function (this: protobuf.Reader) { return int64(readInt64.call(this) as unknown as Int64); } as unknown as typeof reader.int64;
  reader.uint64 = function (this: protobuf.Reader) { return int64(readUint64.call(this) as unknown as Int64); } as unknown as typeof reader.uint64;
  (reader as unknown as { discardUnknown: boolean }).discardUnknown = true;
  return reader;
}

function decodeModel(bytes: Uint8Array): ModelProtoMessage {
  try {
    return onnxSchema().ModelProto.decode(numberLongReader(bytes)) as unknown as ModelProtoMessage;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new OnnxModelError('model file', `is not a valid ONNX protobuf (truncated or corrupt): ${why}`, { cause: err });
  }
}

const DEFAULT_DOMAINS = new Set(['', 'ai.onnx']);

function convertNode(proto: NodeProtoMessage, index: number, usedLabels: Set<string>): OnnxNode {
  const opType = proto.op_type ?? '';
  const name = proto.name ?? '';
  let label = name || `${opType || 'node'}#${index}`;
  if (usedLabels.has(label)) label = `${label}#${index}`;
  usedLabels.add(label);
  if (!opType) throw new OnnxModelError(`node '${label}'`, 'has no op_type');
  const attributes = new Map<string, AttributeProtoMessage>();
  for (const attr of proto.attribute ?? []) {
    if (!attr.name) throw new OnnxModelError(`node '${label}' (${opType})`, 'has an attribute without a name');
    if (attributes.has(attr.name)) {
      throw new OnnxModelError(`node '${label}' (${opType})`, `has attribute '${attr.name}' twice`);
    }
    attributes.set(attr.name, attr);
  }
  return {
    index, name, label, opType,
    domain: proto.domain ?? '',
    inputs: [...(proto.input ?? [])],
    outputs: [...(proto.output ?? [])],
    attributes,
  };
}

function convertValueInfo(v: ValueInfoProtoMessage, where: string): OnnxValueInfo {
  if (!v.name) throw new OnnxModelError(`graph ${where}`, 'has an entry without a name');
  const tensorType = v.type?.tensor_type;
  const dims = tensorType?.shape?.dim;
  // `value` names the oneof member that is set; an unset dim is unknown, not 0.
  const shape = dims?.map((d, i) => {
    if (d.value === 'dim_value') {
      const size = int64(d.dim_value);
      if (!Number.isSafeInteger(size) || size < 0) {
        throw new OnnxModelError(`graph ${where} '${v.name}'`, `dim ${i} = ${size} is not an integer >= 0`);
      }
      return size;
    }
    return d.value === 'dim_param' && d.dim_param ? d.dim_param : undefined;
  });
  return { name: v.name, elemType: tensorType?.elem_type ?? 0, shape };
}

export interface ParseOptions {
  limits?: Partial<OnnxLimits>;
}

export function parseOnnxModel(bytes: Uint8Array, options: ParseOptions = {}): OnnxModel {
  if (!(bytes instanceof Uint8Array)) {
    throw new OnnxModelError('model file', 'must be given as a Uint8Array of the .onnx file bytes');
  }
  const limits = resolveLimits(options.limits);
  checkFileSize(bytes.byteLength, limits);
  const model = decodeModel(bytes);
  const graph = model.graph;
  if (!graph) throw new OnnxModelError('model file', 'has no graph (not an ONNX ModelProto?)');
  const nodeProtos = graph.node ?? [];
  if (nodeProtos.length > limits.maxNodes) {
    throw new OnnxModelError('graph', `has ${nodeProtos.length} nodes, over the limit of ${limits.maxNodes} (limits.maxNodes)`);
  }
  const usedLabels = new Set<string>();
  const nodes = nodeProtos.map((proto, i) => convertNode(proto, i, usedLabels));

  const initializers = new Map<string, OnnxTensor>();
  (graph.initializer ?? []).forEach((proto, i) => {
    const name = proto.name ?? '';
    if (!name) throw new OnnxModelError(`initializer #${i}`, 'has no name');
    if (initializers.has(name)) throw new OnnxModelError(`initializer '${name}'`, 'is defined twice');
    initializers.set(name, tensorFromProto(proto, `initializer '${name}'`, limits));
  });

  const opset = (model.opset_import ?? []).find((o) => DEFAULT_DOMAINS.has(o.domain ?? ''));
  return {
    irVersion: int64(model.ir_version),
    opsetVersion: opset ? int64(opset.version) : undefined,
    producer: [model.producer_name, model.producer_version].filter(Boolean).join(' '),
    graphName: graph.name ?? '',
    nodes,
    initializers,
    inputs: (graph.input ?? []).map((v) => convertValueInfo(v, 'input')),
    outputs: (graph.output ?? []).map((v) => convertValueInfo(v, 'output')),
  };
}

export function isDefaultDomain(node: OnnxNode): boolean {
  return DEFAULT_DOMAINS.has(node.domain);
}
