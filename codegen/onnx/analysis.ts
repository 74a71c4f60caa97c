/**
 * analyzeOnnx: bytes in, ConvBN pairs (with configs and parameters), plain
 * convs and refused convs out. Each step lives in its own module:
 * parse -> graph index -> input shapes -> shape inference -> pairing.
 */
import { OnnxModelError } from './errors.js';
import { buildGraphIndex } from './graph.js';
import { resolveInputShapes } from './inputs.js';
import { resolveLimits, type OnnxLimits } from './limits.js';
import { findConvBNPairs, type ConvBNPair, type PlainConv, type RefusedConv } from './pairs.js';
import { parseOnnxModel } from './parse.js';
import { inferShapes } from './shapes.js';

export interface AnalyzeOnnxOptions {
  /** Overrides the first data input's shape (e.g. another batch size or resolution). */
  inputShape?: number[];
  limits?: Partial<OnnxLimits>;
}

export interface OnnxConvBNAnalysis {
  modelInputShape: number[];
  pairs: ConvBNPair[];
  plainConvs: PlainConv[];
  refused: RefusedConv[];
}

/** Throws OnnxModelError for anything it cannot read or follow. */
export function analyzeOnnx(bytes: Uint8Array, options: AnalyzeOnnxOptions = {}): OnnxConvBNAnalysis {
  try {
    return analyzeChecked(bytes, options);
  } catch (err) {
    if (err instanceof OnnxModelError) throw err;
    // A hostile file must never surface as a bare TypeError; the cause keeps the original for debugging.
    const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new OnnxModelError('model', `could not be analysed (malformed?): ${why}`, { cause: err });
  }
}

function analyzeChecked(bytes: Uint8Array, options: AnalyzeOnnxOptions): OnnxConvBNAnalysis {
  const limits = resolveLimits(options.limits);
  const model = parseOnnxModel(bytes, { limits });
  const index = buildGraphIndex(model, limits);
  const { modelInputShape, inputShapes } = resolveInputShapes(index, options.inputShape, limits);
  const shapes = inferShapes(index, inputShapes, limits);
  return { modelInputShape, ...findConvBNPairs(index, shapes) };
}
