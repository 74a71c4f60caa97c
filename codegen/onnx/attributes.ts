/**
 * Typed attribute reads. A present attribute of the wrong type is a
 * malformed model (OnnxModelError naming node and attribute); an absent one
 * gives the caller's default.
 */
import { OnnxModelError } from './errors.js';
import type { OnnxNode } from './parse.js';
import { int64, ONNX_ATTRIBUTE_TYPE as AT, type AttributeProtoMessage, type TensorProtoMessage } from './schema.js';

const TYPE_NAMES = Object.fromEntries(Object.entries(AT).map(([k, v]) => [v, k])) as Record<number, string>;

function nodeSubject(node: OnnxNode, attr: string): string {
  return `node '${node.label}' (${node.opType}) attribute '${attr}'`;
}

/** The attribute's declared type; IR v1 files omit it, so fall back to which field is set. */
function attributeType(a: AttributeProtoMessage): number {
  if (a.type) return a.type;
  if (a.ints?.length) return AT.INTS;
  if (a.floats?.length) return AT.FLOATS;
  if (a.strings?.length) return AT.STRINGS;
  if (a.tensors?.length) return AT.TENSORS;
  if (a.t) return AT.TENSOR;
  if (a.s && a.s.length) return AT.STRING;
  if (a.f) return AT.FLOAT;
  return AT.INT;
}

function expectType(node: OnnxNode, a: AttributeProtoMessage, wanted: number): void {
  if (a.ref_attr_name) {
    throw new OnnxModelError(nodeSubject(node, a.name), `refers to a function attribute ('${a.ref_attr_name}'), which has no value here`);
  }
  const actual = attributeType(a);
  if (actual !== wanted) {
    throw new OnnxModelError(nodeSubject(node, a.name),
      `must be ${TYPE_NAMES[wanted]}, but the model stores ${TYPE_NAMES[actual] ?? `attribute type ${actual}`}`);
  }
}

export function attrInt(node: OnnxNode, name: string, fallback: number): number {
  const a = node.attributes.get(name);
  if (!a) return fallback;
  expectType(node, a, AT.INT);
  const v = int64(a.i);
  if (!Number.isSafeInteger(v)) throw new OnnxModelError(nodeSubject(node, name), `value ${v} is not a safe integer`);
  return v;
}

export function attrInts(node: OnnxNode, name: string): number[] | undefined {
  const a = node.attributes.get(name);
  if (!a) return undefined;
  expectType(node, a, AT.INTS);
  const values = a.ints ?? [];
  const bad = values.find((v) => !Number.isSafeInteger(v));
  if (bad !== undefined) throw new OnnxModelError(nodeSubject(node, name), `value ${bad} is not a safe integer`);
  return [...values];
}

export function attrFloat(node: OnnxNode, name: string, fallback: number): number {
  const a = node.attributes.get(name);
  if (!a) return fallback;
  expectType(node, a, AT.FLOAT);
  return a.f ?? 0;
}

export function attrFloats(node: OnnxNode, name: string): number[] | undefined {
  const a = node.attributes.get(name);
  if (!a) return undefined;
  expectType(node, a, AT.FLOATS);
  return [...(a.floats ?? [])];
}

export function attrString(node: OnnxNode, name: string, fallback: string): string {
  const a = node.attributes.get(name);
  if (!a) return fallback;
  expectType(node, a, AT.STRING);
  return new TextDecoder().decode(a.s ?? new Uint8Array(0));
}

export function attrTensor(node: OnnxNode, name: string): TensorProtoMessage | undefined {
  const a = node.attributes.get(name);
  if (!a) return undefined;
  expectType(node, a, AT.TENSOR);
  if (!a.t) throw new OnnxModelError(nodeSubject(node, name), 'has type TENSOR but holds no tensor');
  return a.t;
}

/**
 * A float stored as float32 (ONNX attributes are float32), printed as the
 * shortest decimal that round-trips: 1e-5 instead of 0.000009999999747378752.
 */
export function shortestFloat32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(v.toPrecision(digits));
    if (Math.fround(candidate) === Math.fround(v)) return candidate;
  }
  return v;
}
