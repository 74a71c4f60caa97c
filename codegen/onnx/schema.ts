/**
 * The subset of onnx.proto (proto2, package onnx) that ConvBN analysis reads,
 * as a protobufjs JSON descriptor so it bundles without reading .proto files.
 * Field names and numbers follow onnx.proto exactly; fields left out
 * (subgraphs, sparse tensors, training info, functions) are skipped by the
 * decoder as unknown fields, which also keeps hostile nesting out of reach.
 * Enum-typed fields are declared int32 (wire-compatible) so an unknown enum
 * value reaches our own checks instead of vanishing.
 */
import protobuf from 'protobufjs';

const repeated = (type: string, id: number, packed = false) =>
  packed ? { rule: 'repeated', type, id, options: { packed: true } } : { rule: 'repeated', type, id };

export const ONNX_SCHEMA_JSON = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            ir_version: { type: 'int64', id: 1 },
            opset_import: repeated('OperatorSetIdProto', 8),
            producer_name: { type: 'string', id: 2 },
            producer_version: { type: 'string', id: 3 },
            domain: { type: 'string', id: 4 },
            model_version: { type: 'int64', id: 5 },
            doc_string: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
          },
        },
        OperatorSetIdProto: {
          fields: {
            domain: { type: 'string', id: 1 },
            version: { type: 'int64', id: 2 },
          },
        },
        GraphProto: {
          fields: {
            node: repeated('NodeProto', 1),
            name: { type: 'string', id: 2 },
            initializer: repeated('TensorProto', 5),
            doc_string: { type: 'string', id: 10 },
            input: repeated('ValueInfoProto', 11),
            output: repeated('ValueInfoProto', 12),
            value_info: repeated('ValueInfoProto', 13),
          },
        },
        NodeProto: {
          fields: {
            input: repeated('string', 1),
            output: repeated('string', 2),
            name: { type: 'string', id: 3 },
            op_type: { type: 'string', id: 4 },
            domain: { type: 'string', id: 7 },
            attribute: repeated('AttributeProto', 5),
            doc_string: { type: 'string', id: 6 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            ref_attr_name: { type: 'string', id: 21 },
            doc_string: { type: 'string', id: 13 },
            type: { type: 'int32', id: 20 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            t: { type: 'TensorProto', id: 5 },
            floats: repeated('float', 7),
            ints: repeated('int64', 8),
            strings: repeated('bytes', 9),
            tensors: repeated('TensorProto', 10),
          },
        },
        TensorProto: {
          fields: {
            dims: repeated('int64', 1),
            data_type: { type: 'int32', id: 2 },
            float_data: repeated('float', 4, true),
            int32_data: repeated('int32', 5, true),
            string_data: repeated('bytes', 6),
            int64_data: repeated('int64', 7, true),
            name: { type: 'string', id: 8 },
            doc_string: { type: 'string', id: 12 },
            raw_data: { type: 'bytes', id: 9 },
            external_data: repeated('StringStringEntryProto', 13),
            data_location: { type: 'int32', id: 14 },
            double_data: repeated('double', 10, true),
            uint64_data: repeated('uint64', 11, true),
          },
        },
        StringStringEntryProto: {
          fields: {
            key: { type: 'string', id: 1 },
            value: { type: 'string', id: 2 },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: 'string', id: 1 },
            type: { type: 'TypeProto', id: 2 },
            doc_string: { type: 'string', id: 3 },
          },
        },
        TypeProto: {
          fields: {
            tensor_type: { type: 'TypeProtoTensor', id: 1 },
            denotation: { type: 'string', id: 6 },
          },
        },
        // TypeProto.Tensor, flattened to a top-level name (same wire format).
        TypeProtoTensor: {
          fields: {
            elem_type: { type: 'int32', id: 1 },
            shape: { type: 'TensorShapeProto', id: 2 },
          },
        },
        TensorShapeProto: {
          fields: {
            dim: repeated('TensorShapeDimension', 1),
          },
        },
        TensorShapeDimension: {
          oneofs: { value: { oneof: ['dim_value', 'dim_param'] } },
          fields: {
            dim_value: { type: 'int64', id: 1 },
            dim_param: { type: 'string', id: 2 },
            denotation: { type: 'string', id: 3 },
          },
        },
      },
    },
  },
} as const;

/** ONNX TensorProto.DataType values we name in messages or read. */
export const ONNX_DATA_TYPE = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
} as const;

export function dataTypeName(code: number): string {
  const hit = Object.entries(ONNX_DATA_TYPE).find(([, v]) => v === code);
  return hit ? hit[0] : `data_type ${code}`;
}

/** AttributeProto.AttributeType values. */
export const ONNX_ATTRIBUTE_TYPE = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

/**
 * Decoded int64 fields: numbers (parse.ts tells the reader so), except an
 * unset scalar, which reads as protobufjs's prototype default, a Long zero.
 */
export type Int64 = number | { toNumber(): number };

/** A decoded int64 scalar as a number (Long defaults included). */
export function int64(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** Repeated int64 fields always arrive as numbers (the reader decodes them). */
export interface TensorProtoMessage {
  dims: number[];
  data_type: number;
  float_data: number[];
  int32_data: number[];
  string_data: Uint8Array[];
  int64_data: number[];
  name: string;
  raw_data: Uint8Array | null | undefined;
  external_data: { key: string; value: string }[];
  data_location: number;
  double_data: number[];
  uint64_data: number[];
}

export interface AttributeProtoMessage {
  name: string;
  ref_attr_name: string;
  type: number;
  f: number;
  i: Int64;
  s: Uint8Array | null | undefined;
  t: TensorProtoMessage | null | undefined;
  floats: number[];
  ints: number[];
  strings: Uint8Array[];
  tensors: TensorProtoMessage[];
}

export interface NodeProtoMessage {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain: string;
  attribute: AttributeProtoMessage[];
}

export interface TensorShapeDimensionMessage {
  dim_value?: Int64 | null;
  dim_param?: string | null;
  value?: 'dim_value' | 'dim_param';
}

export interface ValueInfoProtoMessage {
  name: string;
  type: { tensor_type?: { elem_type: number; shape?: { dim: TensorShapeDimensionMessage[] } | null } | null } | null;
}

export interface GraphProtoMessage {
  node: NodeProtoMessage[];
  name: string;
  initializer: TensorProtoMessage[];
  input: ValueInfoProtoMessage[];
  output: ValueInfoProtoMessage[];
  value_info: ValueInfoProtoMessage[];
}

export interface ModelProtoMessage {
  ir_version: Int64;
  opset_import: { domain: string; version: Int64 }[];
  producer_name: string;
  producer_version: string;
  graph: GraphProtoMessage | null | undefined;
}

export interface OnnxSchemaTypes {
  root: protobuf.Root;
  ModelProto: protobuf.Type;
  GraphProto: protobuf.Type;
  NodeProto: protobuf.Type;
  AttributeProto: protobuf.Type;
  TensorProto: protobuf.Type;
  ValueInfoProto: protobuf.Type;
}

let cached: OnnxSchemaTypes | undefined;

/** Built once per process; also what tests use to encode handmade models. */
export function onnxSchema(): OnnxSchemaTypes {
  if (!cached) {
    const root = protobuf.Root.fromJSON(ONNX_SCHEMA_JSON as unknown as protobuf.INamespace);
    const t = (name: string) => root.lookupType(`onnx.${name}`);
    cached = {
      root,
      ModelProto: t('ModelProto'),
      GraphProto: t('GraphProto'),
      NodeProto: t('NodeProto'),
      AttributeProto: t('AttributeProto'),
      TensorProto: t('TensorProto'),
      ValueInfoProto: t('ValueInfoProto'),
    };
  }
  return cached;
}
