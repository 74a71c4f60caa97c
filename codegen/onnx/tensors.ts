/**
 * Initializer and constant tensors: validated when the model is parsed
 * (dims within limits, stored data length matching the dims) and decoded to
 * typed arrays only when a caller needs the values.
 */
import { OnnxModelError } from './errors.js';
import { checkTensorDims, type OnnxLimits } from './limits.js';
import { ONNX_DATA_TYPE as DT, dataTypeName, type TensorProtoMessage } from './schema.js';

export interface OnnxTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: number;
  readonly elementCount: number;
  readonly proto: TensorProtoMessage;
}

const DATA_LOCATION_EXTERNAL = 1;

/** Bytes per element in raw_data; 0.5 for the packed 4-bit types. */
function rawElementBytes(dataType: number): number | undefined {
  switch (dataType) {
    case DT.FLOAT: case DT.INT32: case DT.UINT32: return 4;
    case DT.DOUBLE: case DT.INT64: case DT.UINT64: case DT.COMPLEX64: return 8;
    case DT.COMPLEX128: return 16;
    case DT.FLOAT16: case DT.BFLOAT16: case DT.INT16: case DT.UINT16: return 2;
    case DT.INT8: case DT.UINT8: case DT.BOOL: return 1;
    case 17: case 18: case 19: case 20: return 1; // float8 variants
    case 21: case 22: case 23: return 0.5; // uint4, int4, float4
    default: return undefined;
  }
}

/** The typed field a tensor of this type stores its values in, and values per element. */
function typedField(dataType: number): { field: keyof TensorProtoMessage; perElement: number } | undefined {
  switch (dataType) {
    case DT.FLOAT: return { field: 'float_data', perElement: 1 };
    case DT.COMPLEX64: return { field: 'float_data', perElement: 2 };
    case DT.DOUBLE: return { field: 'double_data', perElement: 1 };
    case DT.COMPLEX128: return { field: 'double_data', perElement: 2 };
    case DT.INT64: return { field: 'int64_data', perElement: 1 };
    case DT.UINT32: case DT.UINT64: return { field: 'uint64_data', perElement: 1 };
    case DT.STRING: return { field: 'string_data', perElement: 1 };
    case DT.INT32: case DT.INT16: case DT.INT8: case DT.UINT16: case DT.UINT8: case DT.BOOL:
    case DT.FLOAT16: case DT.BFLOAT16: case 17: case 18: case 19: case 20:
      return { field: 'int32_data', perElement: 1 };
    default: return undefined;
  }
}

function rawData(proto: TensorProtoMessage): Uint8Array | undefined {
  const raw = proto.raw_data;
  return raw && raw.length > 0 ? raw : undefined;
}

function isExternal(proto: TensorProtoMessage): boolean {
  return proto.data_location === DATA_LOCATION_EXTERNAL;
}

/** Checks dims and stored length; allocates nothing. */
export function tensorFromProto(proto: TensorProtoMessage, subject: string, limits: OnnxLimits): OnnxTensor {
  const dims = proto.dims ?? [];
  const count = checkTensorDims(subject, dims, limits);
  const dataType = proto.data_type ?? 0;
  if (!isExternal(proto)) {
    const raw = rawData(proto);
    if (raw) {
      const per = rawElementBytes(dataType);
      if (per !== undefined && raw.length !== Math.ceil(count * per)) {
        throw new OnnxModelError(subject,
          `raw_data holds ${raw.length} bytes but dims [${dims.join(', ')}] of ${dataTypeName(dataType)} need ` +
          `${Math.ceil(count * per)}`);
      }
    } else {
      const typed = typedField(dataType);
      const stored = typed ? (proto[typed.field] as unknown[] | undefined)?.length ?? 0 : 0;
      const expected = typed ? count * typed.perElement : count;
      // 4-bit types pack two values per int32_data entry; their count is not checked here.
      if (typed && stored !== expected && !(count === 0 && stored === 0)) {
        throw new OnnxModelError(subject,
          `${String(typed.field)} holds ${stored} values but dims [${dims.join(', ')}] need ${expected}`);
      }
      if (!typed && count > 0 && dataType !== 21 && dataType !== 22 && dataType !== 23) {
        throw new OnnxModelError(subject,
          `has dims [${dims.join(', ')}] but no raw_data, and ${dataTypeName(dataType)} has no typed data field`);
      }
    }
  }
  return { name: proto.name ?? '', dims: [...dims], dataType, elementCount: count, proto };
}

function externalError(t: OnnxTensor): OnnxModelError {
  const location = t.proto.external_data?.find((e) => e.key === 'location')?.value;
  return new OnnxModelError(`tensor '${t.name}'`,
    `stores its data in an external file${location ? ` ('${location}')` : ''}; external data is not supported, ` +
    'save the model with its weights inside the .onnx file');
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function bfloat16ToFloat(b: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, (b & 0xffff) << 16);
  return view.getFloat32(0);
}

export function isFloatTensor(t: OnnxTensor): boolean {
  return t.dataType === DT.FLOAT || t.dataType === DT.DOUBLE || t.dataType === DT.FLOAT16 || t.dataType === DT.BFLOAT16;
}

/** Values of a FLOAT, DOUBLE, FLOAT16 or BFLOAT16 tensor as float32 (a fresh copy). */
export function readFloat32(t: OnnxTensor): Float32Array {
  if (isExternal(t.proto)) throw externalError(t);
  const n = t.elementCount;
  const out = new Float32Array(n);
  const raw = rawData(t.proto);
  // raw_data is a view into the file at any offset: DataView reads little-endian without alignment.
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  switch (t.dataType) {
    case DT.FLOAT:
      if (view) for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      else out.set(t.proto.float_data);
      return out;
    case DT.DOUBLE:
      if (view) for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
      else out.set(t.proto.double_data);
      return out;
    case DT.FLOAT16:
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view ? view.getUint16(i * 2, true) : t.proto.int32_data[i]);
      return out;
    case DT.BFLOAT16:
      for (let i = 0; i < n; i++) out[i] = bfloat16ToFloat(view ? view.getUint16(i * 2, true) : t.proto.int32_data[i]);
      return out;
    default:
      throw new OnnxModelError(`tensor '${t.name}'`, `has data type ${dataTypeName(t.dataType)}; expected a float tensor`);
  }
}

/**
 * Values of an INT64 or INT32 tensor (shapes, axes) as numbers. Values beyond
 * 2^53 are refused, or with `clamp` pinned to +-2^53 (Slice bounds use INT64_MAX as "to the end").
 */
export function readIntegers(t: OnnxTensor, options: { clamp?: boolean } = {}): number[] {
  if (isExternal(t.proto)) throw externalError(t);
  const n = t.elementCount;
  const raw = rawData(t.proto);
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  const out: number[] = new Array(n);
  if (t.dataType === DT.INT64) {
    for (let i = 0; i < n; i++) {
      let v = view ? Number(view.getBigInt64(i * 8, true)) : t.proto.int64_data[i];
      if (options.clamp && !Number.isSafeInteger(v) && !Number.isNaN(v)) {
        v = v > 0 ? Number.MAX_SAFE_INTEGER : -Number.MAX_SAFE_INTEGER;
      }
      if (!Number.isSafeInteger(v)) {
        throw new OnnxModelError(`tensor '${t.name}'`, `value ${v} at index ${i} is beyond the safe integer range`);
      }
      out[i] = v;
    }
    return out;
  }
  if (t.dataType === DT.INT32) {
    for (let i = 0; i < n; i++) out[i] = view ? view.getInt32(i * 4, true) : t.proto.int32_data[i];
    return out;
  }
  throw new OnnxModelError(`tensor '${t.name}'`, `has data type ${dataTypeName(t.dataType)}; expected INT64 or INT32`);
}
