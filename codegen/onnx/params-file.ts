/**
 * Node file-system wrappers around params-format.ts (format documented there).
 * Kept apart so browser bundles of the format never pull in node:fs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { OnnxConvBNAnalysis } from './analysis.js';
import { decodeParamsFile, encodeParamsFile, type ParamsFileContents } from './params-format.js';

/** Writes every pair's parameters (plain and refused convs have none to write). */
export function writeParamsFile(analysis: OnnxConvBNAnalysis, path: string): void {
  writeFileSync(path, encodeParamsFile({ modelInputShape: analysis.modelInputShape, pairs: analysis.pairs }));
}

export function readParamsFile(path: string): ParamsFileContents {
  return decodeParamsFile(readFileSync(path));
}
