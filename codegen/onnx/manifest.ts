/**
 * The JSON-able summary of an analysis (no tensors): what `convbn gen --onnx`
 * writes next to the kernels so users see which blocks were fused and why
 * the others were not.
 */
import { configKey, normalizeConfig, shortId, type ConvBNConfigInput } from '../config.js';
import type { OnnxConvBNAnalysis } from './analysis.js';

export interface OnnxAnalysisManifest {
  modelInputShape: number[];
  counts: { pairs: number; plainConvs: number; refused: number; distinctPairConfigs: number };
  /** configId: the short id of the normalised config, shared by pairs that can share a kernel. */
  pairs: { convNode: string; bnNode: string; configId: string; config: ConvBNConfigInput }[];
  plainConvs: { node: string; config: ConvBNConfigInput }[];
  refused: { convNode: string; bnNode?: string; reason: string }[];
}

export function analysisManifest(analysis: OnnxConvBNAnalysis): OnnxAnalysisManifest {
  const pairs = analysis.pairs.map((p) => ({
    convNode: p.convNode,
    bnNode: p.bnNode,
    configId: shortId(configKey(normalizeConfig(p.config))),
    config: structuredClone(p.config),
  }));
  return {
    modelInputShape: [...analysis.modelInputShape],
    counts: {
      pairs: pairs.length,
      plainConvs: analysis.plainConvs.length,
      refused: analysis.refused.length,
      distinctPairConfigs: new Set(pairs.map((p) => p.configId)).size,
    },
    pairs,
    plainConvs: analysis.plainConvs.map((c) => ({ node: c.node, config: structuredClone(c.config) })),
    refused: analysis.refused.map((r) => ({ ...r })),
  };
}
