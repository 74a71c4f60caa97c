/**
 * Conv -> BatchNormalization pairing. A pair needs the conv's single output
 * to feed exactly one node, a BatchNormalization (as its X), and every
 * parameter (weight, bias, scale, B, mean, var) to be a constant. Other convs
 * are reported as plain convs, or as refused with a reason a user can act on.
 */
import { normalizeConfig, type ConvBNConfigInput } from '../config.js';
import { ConvBNInputError } from '../errors.js';
import type { ConvBNParamsInput } from '../../runtime/types.js';
import { attrFloat, attrInt, shortestFloat32 } from './attributes.js';
import { OnnxModelError } from './errors.js';
import { describeNode, resolveConstant, type GraphIndex } from './graph.js';
import { isDefaultDomain, type OnnxNode } from './parse.js';
import { dataTypeName } from './schema.js';
import type { ShapeTable } from './shapes.js';
import { isFloatTensor, readFloat32, type OnnxTensor } from './tensors.js';
import { convKernel, readGroup, windowGeometry } from './window.js';

export interface ConvBNPair {
  convNode: string;
  bnNode: string;
  config: ConvBNConfigInput;
  params: ConvBNParamsInput;
}

/** A conv with no BatchNormalization after it; config has no eps/momentum. */
export interface PlainConv {
  node: string;
  config: ConvBNConfigInput;
}

export interface RefusedConv {
  convNode: string;
  bnNode?: string;
  reason: string;
}

export interface ConvFindings {
  pairs: ConvBNPair[];
  plainConvs: PlainConv[];
  refused: RefusedConv[];
}

/** A refusal travels as an exception inside this module only. */
class Refusal extends Error {}

const refuse = (reason: string): never => {
  throw new Refusal(reason);
};

const isOp = (node: OnnxNode, opType: string) => node.opType === opType && isDefaultDomain(node);

type BNLookup = { kind: 'plain' } | { kind: 'bn'; bn: OnnxNode } | { kind: 'refused'; bn: OnnxNode; reason: string };

/** Does the conv output go to exactly one BatchNormalization and nowhere else? */
function followingBN(index: GraphIndex, conv: OnnxNode): BNLookup {
  const out = conv.outputs[0];
  const uses = index.consumers.get(out) ?? [];
  const bnUse = uses.find((u) => isOp(u.node, 'BatchNormalization'));
  if (!bnUse) return { kind: 'plain' };
  const bn = bnUse.node;
  if (index.graphOutputs.has(out)) return { kind: 'refused', bn, reason: 'conv output is also a graph output' };
  if (uses.length > 1) {
    const shown = uses.slice(0, 8).map((u) => u.node.label).join(', ');
    const names = uses.length > 8 ? `${shown} and ${uses.length - 8} more` : shown;
    return { kind: 'refused', bn, reason: `conv output has ${uses.length} consumers: ${names}` };
  }
  if (bnUse.slot !== 0) {
    return { kind: 'refused', bn, reason: `conv output feeds BatchNormalization input ${bnUse.slot}, not its data input X` };
  }
  return { kind: 'bn', bn };
}

interface ConvGeometry {
  config: ConvBNConfigInput;
  hasBias: boolean;
}

/** The conv's config from its input shape, weight shape and attributes. */
function convGeometry(shapes: ShapeTable, conv: OnnxNode): ConvGeometry {
  const who = describeNode(conv);
  if (conv.inputs.length < 2 || conv.inputs.length > 3 || !conv.inputs[0] || !conv.inputs[1]) {
    throw new OnnxModelError(who, `needs inputs (X, W[, B]); has ${JSON.stringify(conv.inputs)}`);
  }
  if (conv.outputs.length !== 1 || !conv.outputs[0]) throw new OnnxModelError(who, 'must have exactly one output');
  const x = shapes.require(conv.inputs[0], who);
  const w = shapes.require(conv.inputs[1], who);
  if (x.length < 3) throw new OnnxModelError(who, `input shape [${x.join(', ')}] needs rank >= 3 (N, C, spatial...)`);
  if (x.length !== 4) refuse(`Conv is ${x.length - 2}-D (input rank ${x.length}); only 2-D convs map to ConvBN layers`);
  if (w.length !== 4) throw new OnnxModelError(who, `weight dims [${w.join(', ')}] must have rank 4 for a 2-D conv`);
  const groups = readGroup(conv);
  if (x[1] !== w[1] * groups) {
    throw new OnnxModelError(who, `input has ${x[1]} channels but weight [${w.join(', ')}] with group ${groups} expects ${w[1] * groups}`);
  }
  const g = windowGeometry(conv, x.slice(2), convKernel(conv, w));
  const hasBias = Boolean(conv.inputs[2]);
  const config: ConvBNConfigInput = {
    N: x[0], Cin: x[1], Cout: w[0], H: x[2], W: x[3],
    kernel: [g.kernel[0], g.kernel[1]],
    stride: [g.strides[0], g.strides[1]],
    // ONNX pads are [top, left, bottom, right]; ours are [top, bottom, left, right].
    padding: [g.padsBegin[0], g.padsEnd[0], g.padsBegin[1], g.padsEnd[1]],
    dilation: [g.dilations[0], g.dilations[1]],
    groups,
    bias: hasBias,
  };
  return { config, hasBias };
}

function checkedConfig(config: ConvBNConfigInput): ConvBNConfigInput {
  try {
    normalizeConfig(config);
  } catch (err) {
    if (err instanceof ConvBNInputError) refuse(`config not supported by ConvBN layers: ${err.message}`);
    throw err;
  }
  return config;
}

/** A parameter that must be a float constant of `count` elements. */
function constantParam(index: GraphIndex, node: OnnxNode, slot: number, what: string, count: number): Float32Array {
  const value = node.inputs[slot];
  const tensor: OnnxTensor | undefined = value ? resolveConstant(index, value) : undefined;
  if (!tensor) return refuse(`${what} is not a constant (value '${value}')`);
  if (!isFloatTensor(tensor)) return refuse(`${what} has data type ${dataTypeName(tensor.dataType)}; only float tensors fuse`);
  if (tensor.elementCount !== count) {
    throw new OnnxModelError(describeNode(node),
      `${what} '${value}' has ${tensor.elementCount} elements (dims [${tensor.dims.join(', ')}]); expected ${count}`);
  }
  const data = readFloat32(tensor);
  if (!data.every(Number.isFinite)) refuse(`${what} '${value}' holds non-finite values`);
  return data;
}

function bnOutputsUnused(index: GraphIndex, bn: OnnxNode): void {
  if (!bn.outputs[0]) throw new OnnxModelError(describeNode(bn), 'has no output Y');
  bn.outputs.slice(1).forEach((out, i) => {
    const uses = out ? index.consumers.get(out) ?? [] : [];
    if (uses.length > 0) refuse(`BatchNormalization output ${i + 1} ('${out}') is used by ${uses.map((u) => `'${u.node.label}'`).join(', ')}`);
  });
}

function buildPair(index: GraphIndex, conv: OnnxNode, bn: OnnxNode, geometry: ConvGeometry): ConvBNPair {
  if (bn.inputs.length !== 5) {
    throw new OnnxModelError(describeNode(bn), `needs 5 inputs (X, scale, B, mean, var); has ${bn.inputs.length}`);
  }
  if (bn.attributes.has('spatial') && attrInt(bn, 'spatial', 1) === 0) {
    refuse('BatchNormalization spatial=0 (per-activation statistics) has no ConvBN equivalent');
  }
  bnOutputsUnused(index, bn);
  const eps = shortestFloat32(attrFloat(bn, 'epsilon', 1e-5));
  // ONNX momentum weighs the old running value; PyTorch's weighs the new batch statistic.
  const onnxMomentum = shortestFloat32(attrFloat(bn, 'momentum', 0.9));
  const momentum = Number((1 - onnxMomentum).toPrecision(9));
  const config = checkedConfig({ ...geometry.config, eps, momentum });
  const { Cout, Cin, groups = 1, kernel } = config;
  const [kH, kW] = Array.isArray(kernel) ? kernel : [kernel, kernel];
  const weight = constantParam(index, conv, 1, 'Conv weight', Cout * (Cin / groups) * kH * kW);
  const bias = geometry.hasBias ? constantParam(index, conv, 2, 'Conv bias', Cout) : undefined;
  const gamma = constantParam(index, bn, 1, 'BatchNormalization scale', Cout);
  const beta = constantParam(index, bn, 2, 'BatchNormalization B', Cout);
  const runningMean = constantParam(index, bn, 3, 'BatchNormalization mean', Cout);
  const runningVar = constantParam(index, bn, 4, 'BatchNormalization var', Cout);
  const badVar = runningVar.findIndex((v) => !(v + eps > 0));
  if (badVar >= 0) refuse(`BatchNormalization var[${badVar}] + epsilon = ${runningVar[badVar] + eps} is not > 0`);
  const params: ConvBNParamsInput = { weight, gamma, beta, runningMean, runningVar };
  if (bias) params.bias = bias;
  return { convNode: conv.label, bnNode: bn.label, config, params };
}

export function findConvBNPairs(index: GraphIndex, shapes: ShapeTable): ConvFindings {
  const findings: ConvFindings = { pairs: [], plainConvs: [], refused: [] };
  for (const conv of index.model.nodes) {
    if (!isOp(conv, 'Conv')) continue;
    const lookup = followingBN(index, conv);
    const bnNode = lookup.kind === 'plain' ? undefined : lookup.bn.label;
    try {
      const geometry = convGeometry(shapes, conv);
      if (lookup.kind === 'refused') refuse(lookup.reason);
      if (lookup.kind === 'bn') findings.pairs.push(buildPair(index, conv, lookup.bn, geometry));
      else findings.plainConvs.push({ node: conv.label, config: checkedConfig(geometry.config) });
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      findings.refused.push(bnNode ? { convNode: conv.label, bnNode, reason: err.message } : { convNode: conv.label, reason: err.message });
    }
  }
  return findings;
}
