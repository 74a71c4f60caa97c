/**
 * The ConvBN params file: every pair's parameters in one binary blob the
 * runtime can load to build layers without the ONNX model. Pure bytes in and
 * out (no file system), so browsers can use it with fetch().
 *
 * Format version 1, all integers and floats little-endian:
 *   offset 0   4 bytes   magic "CBNP"
 *   offset 4   u32       format version (1)
 *   offset 8   u32       header length H in bytes
 *   offset 12  H bytes   UTF-8 JSON header (ParamsFileHeader below)
 *   then       0-3 zero bytes, so the data starts at a multiple of 4 (offset D)
 *   offset D   float32 data, dataElements values: the tensors back to back
 * Each tensor in the header is [offset, length] in float32 elements from D.
 * Per pair: weight (OIHW), bias (only when config.bias), gamma, beta,
 * runningMean, runningVar, each Cout long except weight.
 */
import { normalizeConfig, tensorSizes, type ConvBNConfigInput } from '../config.js';
import type { ConvBNParamsInput } from '../../runtime/types.js';

export const PARAMS_FILE_MAGIC = 'CBNP';
export const PARAMS_FILE_VERSION = 1;

const TENSOR_NAMES = ['weight', 'bias', 'gamma', 'beta', 'runningMean', 'runningVar'] as const;
type TensorName = (typeof TENSOR_NAMES)[number];

export interface ParamsFileHeader {
  format: 'convbn-params';
  version: number;
  modelInputShape: number[];
  dataElements: number;
  pairs: {
    convNode: string;
    bnNode: string;
    config: ConvBNConfigInput;
    tensors: Partial<Record<TensorName, [offset: number, length: number]>>;
  }[];
}

export interface ParamsFilePair {
  convNode: string;
  bnNode: string;
  config: ConvBNConfigInput;
  params: ConvBNParamsInput;
}

export interface ParamsFileContents {
  modelInputShape: number[];
  pairs: ParamsFilePair[];
}

export class ParamsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParamsFileError';
  }
}

export function encodeParamsFile(contents: ParamsFileContents): Uint8Array {
  let cursor = 0;
  const chunks: Float32Array[] = [];
  const pairs = contents.pairs.map((pair) => {
    const tensors: ParamsFileHeader['pairs'][number]['tensors'] = {};
    for (const name of TENSOR_NAMES) {
      const data = pair.params[name];
      if (!data) continue;
      tensors[name] = [cursor, data.length];
      chunks.push(data);
      cursor += data.length;
    }
    return { convNode: pair.convNode, bnNode: pair.bnNode, config: pair.config, tensors };
  });
  const header: ParamsFileHeader = {
    format: 'convbn-params', version: PARAMS_FILE_VERSION,
    modelInputShape: [...contents.modelInputShape], dataElements: cursor, pairs,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = Math.ceil((12 + json.length) / 4) * 4;
  const bytes = new Uint8Array(dataStart + cursor * 4);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(PARAMS_FILE_MAGIC), 0);
  view.setUint32(4, PARAMS_FILE_VERSION, true);
  view.setUint32(8, json.length, true);
  bytes.set(json, 12);
  let at = dataStart;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++, at += 4) view.setFloat32(at, chunk[i], true);
  }
  return bytes;
}

function fail(problem: string): never {
  throw new ParamsFileError(`params file: ${problem}`);
}

function parseHeader(bytes: Uint8Array): { header: ParamsFileHeader; dataStart: number } {
  if (bytes.length < 12) fail(`${bytes.length} bytes is too short for the 12-byte preamble`);
  if (new TextDecoder().decode(bytes.subarray(0, 4)) !== PARAMS_FILE_MAGIC) fail(`does not start with "${PARAMS_FILE_MAGIC}"`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== PARAMS_FILE_VERSION) fail(`format version ${version} is not supported (expected ${PARAMS_FILE_VERSION})`);
  const headerLength = view.getUint32(8, true);
  if (12 + headerLength > bytes.length) fail(`header length ${headerLength} runs past the end of the ${bytes.length}-byte file`);
  let header: ParamsFileHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + headerLength)));
  } catch (err) {
    fail(`header is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!header || header.format !== 'convbn-params' || !Array.isArray(header.pairs) || !Array.isArray(header.modelInputShape)
    || !Number.isSafeInteger(header.dataElements) || header.dataElements < 0) {
    fail('header lacks format "convbn-params", modelInputShape, dataElements or pairs');
  }
  return { header, dataStart: Math.ceil((12 + headerLength) / 4) * 4 };
}

/** Validates every offset and length against the header and each pair's config before copying. */
export function decodeParamsFile(bytes: Uint8Array): ParamsFileContents {
  const { header, dataStart } = parseHeader(bytes);
  const expectedBytes = dataStart + header.dataElements * 4;
  if (bytes.length !== expectedBytes) {
    fail(`is ${bytes.length} bytes; the header describes ${expectedBytes} (${header.dataElements} float32 values)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pairs = header.pairs.map((entry, p) => {
    const where = `pair ${p} (${entry?.convNode} -> ${entry?.bnNode})`;
    if (!entry || typeof entry.convNode !== 'string' || typeof entry.bnNode !== 'string' || !entry.tensors) {
      fail(`${where} lacks convNode, bnNode or tensors`);
    }
    let sizes;
    try {
      sizes = tensorSizes(normalizeConfig(entry.config));
    } catch (err) {
      fail(`${where} has an invalid config: ${err instanceof Error ? err.message : String(err)}`);
    }
    const hasBias = entry.config.bias ?? true;
    const read = (name: TensorName, expected: number): Float32Array => {
      const range = entry.tensors[name];
      if (!Array.isArray(range) || range.length !== 2 || !range.every((v) => Number.isSafeInteger(v) && v >= 0)) {
        fail(`${where} tensor ${name} has no valid [offset, length]`);
      }
      const [offset, length] = range;
      if (length !== expected) fail(`${where} tensor ${name} has ${length} values; its config needs ${expected}`);
      if (offset + length > header.dataElements) fail(`${where} tensor ${name} [${offset}, ${length}] runs past the data`);
      const out = new Float32Array(length);
      for (let i = 0; i < length; i++) out[i] = view.getFloat32(dataStart + (offset + i) * 4, true);
      return out;
    };
    if (!hasBias && entry.tensors.bias) fail(`${where} stores a bias but its config says bias: false`);
    const params: ConvBNParamsInput = {
      weight: read('weight', sizes.weight),
      gamma: read('gamma', sizes.channels),
      beta: read('beta', sizes.channels),
      runningMean: read('runningMean', sizes.channels),
      runningVar: read('runningVar', sizes.channels),
    };
    if (hasBias) params.bias = read('bias', sizes.channels);
    return { convNode: entry.convNode, bnNode: entry.bnNode, config: entry.config, params };
  });
  return { modelInputShape: [...header.modelInputShape], pairs };
}
