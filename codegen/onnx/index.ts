/**
 * Finding ConvBN blocks in ONNX models: the public surface of codegen/onnx.
 */
export { analyzeOnnx, type AnalyzeOnnxOptions, type OnnxConvBNAnalysis } from './analysis.js';
export type { ConvBNPair, PlainConv, RefusedConv } from './pairs.js';
export { analysisManifest, type OnnxAnalysisManifest } from './manifest.js';
export { OnnxModelError } from './errors.js';
export { DEFAULT_ONNX_LIMITS, type OnnxLimits } from './limits.js';
export { writeParamsFile, readParamsFile } from './params-file.js';
export {
  encodeParamsFile, decodeParamsFile, ParamsFileError, PARAMS_FILE_MAGIC, PARAMS_FILE_VERSION,
  type ParamsFileContents, type ParamsFilePair, type ParamsFileHeader,
} from './params-format.js';
