/**
 * codegen/onnx: ConvBN pairs found in real exported models, parameters equal
 * to the initializers (read independently), ONNX-side Conv+BN numerics equal
 * to the reference run on the extracted params, hostile files refused
 * quickly with OnnxModelError, and the params file round trip.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { normalizeConfig, outputShape, tensorSizes } from '../codegen/config.js';
import {
  analysisManifest, analyzeOnnx, decodeParamsFile, encodeParamsFile, OnnxModelError, ParamsFileError,
  readParamsFile, writeParamsFile, type ConvBNPair, type OnnxConvBNAnalysis,
} from '../codegen/onnx/index.js';
import { onnxSchema } from '../codegen/onnx/schema.js';
import { mulberry32, randomTensor } from './helpers/random.js';
import { referenceCase } from './oracle/reference.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const modelsDir = process.env.CONVBN_MODELS ?? path.resolve(repoRoot, '../shared/models');
const mobilenetPath = path.join(modelsDir, 'mobilenet_v2.onnx');
const trickyPath = path.join(modelsDir, 'tricky_convbn.onnx');
const haveModels = existsSync(mobilenetPath) && existsSync(trickyPath);

const loaded = new Map<string, { bytes: Uint8Array; analysis: OnnxConvBNAnalysis }>();
function load(file: string): { bytes: Uint8Array; analysis: OnnxConvBNAnalysis } {
  let hit = loaded.get(file);
  if (!hit) {
    const bytes = new Uint8Array(readFileSync(file));
    hit = { bytes, analysis: analyzeOnnx(bytes) };
    loaded.set(file, hit);
  }
  return hit;
}

const pairByConv = (a: OnnxConvBNAnalysis, conv: string): ConvBNPair => {
  const p = a.pairs.find((x) => x.convNode === conv);
  if (!p) throw new Error(`no pair for ${conv}`);
  return p;
};

// ---------------------------------------------------------------------------
// An independent reader: protobufjs straight on the bytes, its own Identity
// walk and its own little-endian float reads; none of codegen/onnx's
// parse/graph/tensor code.

interface IndependentModel {
  floats(value: string): Float64Array;
  dims(value: string): number[];
  node(name: string): any;
  attr(node: any, name: string): any;
}

function independentModel(bytes: Uint8Array): IndependentModel {
  const model = onnxSchema().ModelProto.decode(bytes) as any;
  const graph = model.graph;
  const initializers = new Map<string, any>(graph.initializer.map((t: any) => [t.name, t]));
  const identitySource = new Map<string, string>(
    graph.node.filter((n: any) => n.op_type === 'Identity').map((n: any) => [n.output[0], n.input[0]]));
  const tensorOf = (value: string): any => {
    let name = value;
    while (!initializers.has(name)) {
      const src = identitySource.get(name);
      if (!src) throw new Error(`independent reader: '${value}' is no initializer`);
      name = src;
    }
    return initializers.get(name);
  };
  return {
    floats(value) {
      const t = tensorOf(value);
      const raw = Buffer.from(t.raw_data.buffer, t.raw_data.byteOffset, t.raw_data.length);
      const out = new Float64Array(raw.length / 4);
      for (let i = 0; i < out.length; i++) out[i] = raw.readFloatLE(4 * i);
      return out;
    },
    dims: (value) => tensorOf(value).dims.map(Number),
    node: (name) => graph.node.find((n: any) => n.name === name),
    attr(node, name) {
      const a = node.attribute.find((x: any) => x.name === name);
      if (!a) return undefined;
      return a.ints?.length ? a.ints.map(Number) : a.type === 1 ? a.f : Number(a.i);
    },
  };
}

/** Float64 Conv + BatchNormalization (inference) with ONNX's own attribute conventions. */
function onnxConvBN(
  x: ArrayLike<number>, [N, C, H, W]: number[], m: IndependentModel, convName: string, bnName: string,
): { y: Float64Array; shape: number[] } {
  const conv = m.node(convName);
  const bn = m.node(bnName);
  const w = m.floats(conv.input[1]);
  const [M, Cg, kH, kW] = m.dims(conv.input[1]);
  const b = conv.input[2] ? m.floats(conv.input[2]) : new Float64Array(M);
  const [sH, sW] = m.attr(conv, 'strides') ?? [1, 1];
  const [dH, dW] = m.attr(conv, 'dilations') ?? [1, 1];
  const [pTop, pLeft, pBottom, pRight] = m.attr(conv, 'pads') ?? [0, 0, 0, 0]; // ONNX order
  const group = m.attr(conv, 'group') ?? 1;
  const eps = m.attr(bn, 'epsilon') ?? 1e-5;
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => m.floats(bn.input[i]));
  const OH = Math.floor((H + pTop + pBottom - dH * (kH - 1) - 1) / sH) + 1;
  const OW = Math.floor((W + pLeft + pRight - dW * (kW - 1) - 1) / sW) + 1;
  const y = new Float64Array(N * M * OH * OW);
  const perGroup = M / group;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < M; o++) {
      const g = Math.floor(o / perGroup);
      const k = scale[o] / Math.sqrt(variance[o] + eps);
      for (let oh = 0; oh < OH; oh++) {
        for (let ow = 0; ow < OW; ow++) {
          let acc = b[o];
          for (let c = 0; c < Cg; c++) {
            for (let i = 0; i < kH; i++) {
              const ih = oh * sH - pTop + i * dH;
              if (ih < 0 || ih >= H) continue;
              for (let j = 0; j < kW; j++) {
                const iw = ow * sW - pLeft + j * dW;
                if (iw < 0 || iw >= W) continue;
                acc += x[((n * C + g * Cg + c) * H + ih) * W + iw] * w[((o * Cg + c) * kH + i) * kW + j];
              }
            }
          }
          y[((n * M + o) * OH + oh) * OW + ow] = (acc - mean[o]) * k + bias[o];
        }
      }
    }
  }
  return { y, shape: [N, M, OH, OW] };
}

/** The same block through our pipeline: extracted config + params into the float64 oracle, tune mode. */
function pipelineConvBN(pair: ConvBNPair, x: ArrayLike<number>): Float64Array {
  const c = normalizeConfig(pair.config);
  const p = pair.params;
  const out = referenceCase(c, {
    x, weight: p.weight, bias: p.bias, gamma: p.gamma, beta: p.beta,
    running_mean: p.runningMean, running_var: p.runningVar, grad_y: new Float64Array(tensorSizes(c).y),
  }, 'tune');
  return out.y;
}

function maxRelativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

// ---------------------------------------------------------------------------
// Handmade models, encoded with the same protobufjs schema.

const FLOAT = 1;

function floatTensor(name: string, dims: number[], values: ArrayLike<number>, storage: 'raw' | 'float_data' = 'raw'): any {
  if (storage === 'float_data') return { name, dims, data_type: FLOAT, float_data: Array.from(values) };
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
  return { name, dims, data_type: FLOAT, raw_data: raw };
}

const A = {
  ints: (name: string, ints: number[]) => ({ name, type: 7, ints }),
  int: (name: string, i: number) => ({ name, type: 2, i }),
  float: (name: string, f: number) => ({ name, type: 1, f }),
  str: (name: string, s: string) => ({ name, type: 3, s: new TextEncoder().encode(s) }),
  tensor: (name: string, t: any) => ({ name, type: 4, t }),
};

function node(op_type: string, input: string[], output: string[], attribute: any[] = [], name = output[0]): any {
  return { op_type, input, output, attribute, name };
}

function valueInfo(name: string, dims: (number | string)[]): any {
  return {
    name,
    type: { tensor_type: { elem_type: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  };
}

interface GraphParts {
  nodes: any[];
  initializers: any[];
  inputs: any[];
  outputs: any[];
}

function encodeModel(g: GraphParts): Uint8Array {
  const { ModelProto } = onnxSchema();
  const message = ModelProto.fromObject({
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    producer_name: 'onnx.test.ts',
    graph: { name: 'handmade', node: g.nodes, initializer: g.initializers, input: g.inputs, output: g.outputs },
  });
  return ModelProto.encode(message).finish();
}

/** x[1,2,6,6] -> Conv(4, 3x3, bias) -> BN -> Relu -> y, with knobs for every trap. */
function convBNModel(opts: { convAttrs?: any[]; bnAttrs?: any[]; storage?: 'raw' | 'float_data'; xDims?: (number | string)[] } = {}): GraphParts {
  const rng = mulberry32(7);
  const storage = opts.storage ?? 'raw';
  return {
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['z'], opts.convAttrs ?? [A.ints('kernel_shape', [3, 3]), A.ints('pads', [1, 1, 1, 1])], 'conv'),
      node('BatchNormalization', ['z', 'gamma', 'beta', 'mean', 'var'], ['bn_out'], opts.bnAttrs ?? [], 'bn'),
      node('Relu', ['bn_out'], ['y'], [], 'relu'),
    ],
    initializers: [
      floatTensor('w', [4, 2, 3, 3], randomTensor(rng, 72), storage),
      floatTensor('b', [4], randomTensor(rng, 4), storage),
      floatTensor('gamma', [4], randomTensor(rng, 4), storage),
      floatTensor('beta', [4], randomTensor(rng, 4), storage),
      floatTensor('mean', [4], randomTensor(rng, 4, 0.1), storage),
      floatTensor('var', [4], [0.5, 1, 1.5, 2], storage),
    ],
    inputs: [valueInfo('x', opts.xDims ?? [1, 2, 6, 6])],
    outputs: [valueInfo('y', [])],
  };
}

/** Runs `fn`, expects OnnxModelError within `ms`, returns it. */
function expectModelError(fn: () => unknown, ms = 2000): OnnxModelError {
  if (process.env.SHOW_ONNX_ERRORS) {
    try { fn(); } catch (err) { console.log(String(err)); }
  }
  const t0 = performance.now();
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  const elapsed = performance.now() - t0;
  expect(caught, 'expected an OnnxModelError').toBeInstanceOf(OnnxModelError);
  expect(elapsed).toBeLessThan(ms);
  return caught as OnnxModelError;
}

// ---------------------------------------------------------------------------

describe.skipIf(!haveModels)('mobilenet_v2.onnx', () => {
  test('52 pairs, no plain or refused convs, input 1x3x224x224', () => {
    const { analysis } = load(mobilenetPath);
    expect(analysis.modelInputShape).toEqual([1, 3, 224, 224]);
    expect(analysis.pairs).toHaveLength(52);
    expect(analysis.plainConvs).toHaveLength(0);
    expect(analysis.refused).toHaveLength(0);
    for (const p of analysis.pairs) {
      expect(() => normalizeConfig(p.config)).not.toThrow();
      expect(p.config).toMatchObject({ N: 1, bias: false, eps: 1e-5, momentum: 0.1 });
    }
  });

  test('known layers: stem 3->32 k3 s2 p1 at 224, first depthwise g=32, last 1x1 320->1280 at 7x7', () => {
    const { analysis } = load(mobilenetPath);
    const [first, second] = analysis.pairs;
    const last = analysis.pairs[analysis.pairs.length - 1];
    expect(first.convNode).toBe('/features/features.0/features.0.0/Conv');
    expect(first.bnNode).toBe('/features/features.0/features.0.1/BatchNormalization');
    expect(first.config).toEqual({
      N: 1, Cin: 3, Cout: 32, H: 224, W: 224, kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1],
      dilation: [1, 1], groups: 1, bias: false, eps: 1e-5, momentum: 0.1,
    });
    expect(second.config).toMatchObject({ Cin: 32, Cout: 32, H: 112, W: 112, kernel: [3, 3], stride: [1, 1], groups: 32 });
    expect(last.convNode).toBe('/features/features.18/features.18.0/Conv');
    expect(last.config).toMatchObject({ Cin: 320, Cout: 1280, H: 7, W: 7, kernel: [1, 1], padding: [0, 0, 0, 0], groups: 1 });
    const depthwise = analysis.pairs.filter((p) => p.config.groups !== 1);
    expect(depthwise).toHaveLength(17);
    for (const p of depthwise) expect(p.config.groups).toBe(p.config.Cin);
    expect(analysis.pairs.filter((p) => (p.config.stride as readonly number[])[0] === 2)).toHaveLength(5);
  });

  test('each layer reads the previous block output: Cin and H/W chain through the network', () => {
    const { analysis } = load(mobilenetPath);
    for (const p of analysis.pairs) {
      const out = outputShape(normalizeConfig(p.config));
      expect(out.C).toBe(p.config.Cout);
    }
    // The next pair's input is the previous pair's output (no pooling inside features).
    for (let i = 1; i < analysis.pairs.length; i++) {
      const prev = outputShape(normalizeConfig(analysis.pairs[i - 1].config));
      expect([analysis.pairs[i].config.H, analysis.pairs[i].config.W]).toEqual([prev.H, prev.W]);
    }
  });

  test('every extracted parameter equals its initializer (independent read through Identity)', () => {
    const { bytes, analysis } = load(mobilenetPath);
    const m = independentModel(bytes);
    for (const pair of analysis.pairs) {
      const conv = m.node(pair.convNode);
      const bn = m.node(pair.bnNode);
      expect(Array.from(pair.params.weight)).toEqual(Array.from(m.floats(conv.input[1])));
      expect(pair.params.bias).toBeUndefined();
      expect(Array.from(pair.params.gamma)).toEqual(Array.from(m.floats(bn.input[1])));
      expect(Array.from(pair.params.beta)).toEqual(Array.from(m.floats(bn.input[2])));
      expect(Array.from(pair.params.runningMean)).toEqual(Array.from(m.floats(bn.input[3])));
      expect(Array.from(pair.params.runningVar)).toEqual(Array.from(m.floats(bn.input[4])));
    }
  });

  test('ONNX Conv+BN (float64, from the initializers) equals the oracle on the extracted params: stem and a stride-2 depthwise', () => {
    const { bytes, analysis } = load(mobilenetPath);
    const m = independentModel(bytes);
    const rng = mulberry32(2024);
    for (const convName of ['/features/features.0/features.0.0/Conv', '/features/features.2/conv/conv.1/conv.1.0/Conv']) {
      const pair = pairByConv(analysis, convName);
      const c = pair.config;
      const x = randomTensor(rng, c.N * c.Cin * c.H * c.W);
      const onnx = onnxConvBN(x, [c.N, c.Cin, c.H, c.W], m, pair.convNode, pair.bnNode);
      const ours = pipelineConvBN(pair, x);
      const out = outputShape(normalizeConfig(c));
      expect(onnx.shape).toEqual([out.N, out.C, out.H, out.W]);
      expect(maxRelativeDiff(ours, onnx.y)).toBeLessThan(1e-9);
    }
  });

  test('inputShape override: batch 2 at 96x96 flows through every layer', () => {
    const { bytes } = load(mobilenetPath);
    const a = analyzeOnnx(bytes, { inputShape: [2, 3, 96, 96] });
    expect(a.modelInputShape).toEqual([2, 3, 96, 96]);
    expect(a.pairs).toHaveLength(52);
    expect(a.pairs[0].config).toMatchObject({ N: 2, H: 96, W: 96 });
    expect(a.pairs[51].config).toMatchObject({ N: 2, H: 3, W: 3, Cin: 320 });
    expectModelError(() => analyzeOnnx(bytes, { inputShape: [1, 3, 224] }));
    const wrongChannels = expectModelError(() => analyzeOnnx(bytes, { inputShape: [1, 4, 224, 224] }));
    expect(wrongChannels.message).toMatch(/features\.0\.0\/Conv.*4 channels/);
  });

  test('manifest is JSON-able and names every pair', () => {
    const { analysis } = load(mobilenetPath);
    const manifest = analysisManifest(analysis);
    const again = JSON.parse(JSON.stringify(manifest));
    expect(again).toEqual(manifest);
    expect(manifest.counts).toEqual({ pairs: 52, plainConvs: 0, refused: 0, distinctPairConfigs: 30 });
    expect(manifest.pairs[0]).toMatchObject({ convNode: analysis.pairs[0].convNode, bnNode: analysis.pairs[0].bnNode });
    expect(manifest.pairs[0].configId).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe.skipIf(!haveModels)('tricky_convbn.onnx', () => {
  test('exactly the 3 nested pairs, 1 plain conv, conv4 refused for its 2 consumers', () => {
    const { analysis } = load(trickyPath);
    expect(analysis.modelInputShape).toEqual([1, 3, 32, 32]);
    expect(analysis.pairs.map((p) => [p.convNode, p.bnNode])).toEqual([
      ['/conv1/Conv', '/bn1/BatchNormalization'],
      ['/conv2/Conv', '/nested/nested.0/BatchNormalization'],
      ['/conv3/Conv', '/wrapped/mod/BatchNormalization'],
    ]);
    expect(analysis.plainConvs.map((c) => c.node)).toEqual(['/nested/nested.1/Conv']);
    expect(analysis.plainConvs[0].config).toEqual({
      N: 1, Cin: 8, Cout: 16, H: 16, W: 16, kernel: [1, 1], stride: [1, 1], padding: [0, 0, 0, 0],
      dilation: [1, 1], groups: 1, bias: true,
    });
    expect(analysis.refused).toHaveLength(1);
    expect(analysis.refused[0]).toMatchObject({ convNode: '/conv4/Conv', bnNode: '/bn4/BatchNormalization' });
    expect(analysis.refused[0].reason).toMatch(/2 consumers/);
    expect(analysis.refused[0].reason).toContain('/Add');
  });

  test('configs: depthwise stride 2 with bias, dilation 2 after the plain conv', () => {
    const { analysis } = load(trickyPath);
    expect(pairByConv(analysis, '/conv1/Conv').config).toMatchObject({ Cin: 3, Cout: 8, H: 32, bias: false });
    expect(pairByConv(analysis, '/conv2/Conv').config).toMatchObject({
      Cin: 8, Cout: 8, groups: 8, stride: [2, 2], H: 32, bias: true,
    });
    expect(pairByConv(analysis, '/conv3/Conv').config).toMatchObject({
      Cin: 16, Cout: 8, H: 16, W: 16, dilation: [2, 2], padding: [2, 2, 2, 2], bias: true,
    });
  });

  test('params through deduplicated Identity initializers; numerics match ONNX for the biased pairs', () => {
    const { bytes, analysis } = load(trickyPath);
    const m = independentModel(bytes);
    const rng = mulberry32(99);
    for (const conv of ['/conv2/Conv', '/conv3/Conv']) {
      const pair = pairByConv(analysis, conv);
      const convNode = m.node(pair.convNode);
      expect(Array.from(pair.params.bias!)).toEqual(Array.from(m.floats(convNode.input[2])));
      expect(Array.from(pair.params.runningVar)).toEqual(Array.from(m.floats(m.node(pair.bnNode).input[4])));
      const c = pair.config;
      const x = randomTensor(rng, c.N * c.Cin * c.H * c.W);
      const onnx = onnxConvBN(x, [c.N, c.Cin, c.H, c.W], m, pair.convNode, pair.bnNode);
      expect(maxRelativeDiff(pipelineConvBN(pair, x), onnx.y)).toBeLessThan(1e-9);
    }
  });
});

describe('handmade models: attributes and conventions', () => {
  test('asymmetric ONNX pads [top, left, bottom, right] become [top, bottom, left, right]; numerics agree', () => {
    const g = convBNModel({ convAttrs: [A.ints('kernel_shape', [3, 3]), A.ints('pads', [1, 2, 0, 3]), A.ints('strides', [2, 1])] });
    const bytes = encodeModel(g);
    const a = analyzeOnnx(bytes);
    expect(a.pairs).toHaveLength(1);
    expect(a.pairs[0].config).toMatchObject({ padding: [1, 0, 2, 3], stride: [2, 1], bias: true });
    const x = randomTensor(mulberry32(3), 72);
    const onnx = onnxConvBN(x, [1, 2, 6, 6], independentModel(bytes), 'conv', 'bn');
    expect(maxRelativeDiff(pipelineConvBN(a.pairs[0], x), onnx.y)).toBeLessThan(1e-9);
  });

  test('auto_pad SAME_UPPER / SAME_LOWER / VALID resolve to explicit padding', () => {
    const padOf = (autoPad: string) => {
      const g = convBNModel({ convAttrs: [A.str('auto_pad', autoPad), A.ints('strides', [2, 2])] });
      return analyzeOnnx(encodeModel(g)).pairs[0].config.padding;
    };
    // H = 6, k = 3, s = 2: output 3, total padding (3-1)*2 + 3 - 6 = 1.
    expect(padOf('SAME_UPPER')).toEqual([0, 1, 0, 1]);
    expect(padOf('SAME_LOWER')).toEqual([1, 0, 1, 0]);
    expect(padOf('VALID')).toEqual([0, 0, 0, 0]);
    expect(padOf('NOTSET')).toEqual([0, 0, 0, 0]);
    expectModelError(() => padOf('SAME'));
  });

  test('float_data storage, Constant-node BN params, epsilon and momentum (ONNX 0.8 -> PyTorch 0.2)', () => {
    const g = convBNModel({ storage: 'float_data', bnAttrs: [A.float('epsilon', 1e-3), A.float('momentum', 0.8)] });
    // Move gamma into a Constant node behind an Identity.
    const gamma = g.initializers.find((t) => t.name === 'gamma');
    g.initializers = g.initializers.filter((t) => t !== gamma);
    g.nodes.unshift(node('Constant', [], ['gamma_c'], [A.tensor('value', { ...gamma, name: '' })], 'gamma_const'),
      node('Identity', ['gamma_c'], ['gamma'], [], 'gamma_id'));
    const a = analyzeOnnx(encodeModel(g));
    expect(a.pairs).toHaveLength(1);
    expect(a.pairs[0].config).toMatchObject({ eps: 1e-3, momentum: 0.2 });
    expect(Array.from(a.pairs[0].params.gamma)).toEqual(gamma.float_data.map(Math.fround));
  });

  test('refusals: computed BN scale, conv output also a graph output, BN output reused', () => {
    const computed = convBNModel();
    computed.nodes.unshift(node('Relu', ['gamma_in'], ['gamma'], [], 'gamma_relu'));
    computed.initializers.find((t) => t.name === 'gamma').name = 'gamma_in';
    const r1 = analyzeOnnx(encodeModel(computed));
    expect(r1.pairs).toHaveLength(0);
    expect(r1.refused[0]).toMatchObject({ convNode: 'conv', bnNode: 'bn' });
    expect(r1.refused[0].reason).toMatch(/BatchNormalization scale is not a constant/);

    const asOutput = convBNModel();
    asOutput.outputs.push(valueInfo('z', []));
    expect(analyzeOnnx(encodeModel(asOutput)).refused[0].reason).toMatch(/graph output/);

    const training = convBNModel();
    training.nodes[1].output = ['bn_out', 'running_mean_out'];
    training.nodes.push(node('Relu', ['running_mean_out'], ['rm'], [], 'uses_mean'));
    training.outputs.push(valueInfo('rm', []));
    expect(analyzeOnnx(encodeModel(training)).refused[0].reason).toMatch(/output 1.*uses_mean/);
  });

  test('plain conv (no BN) and a conv before an unsupported op vs after it', () => {
    const plain = convBNModel();
    plain.nodes = [plain.nodes[0], node('Relu', ['z'], ['y'], [], 'relu')];
    const a = analyzeOnnx(encodeModel(plain));
    expect(a.pairs).toHaveLength(0);
    expect(a.plainConvs).toEqual([{ node: 'conv', config: expect.objectContaining({ Cin: 2, Cout: 4, bias: true }) }]);

    // An op shape inference does not know, after the last conv: ignored.
    const after = convBNModel();
    after.nodes.push(node('TopK', ['y', 'k'], ['vals', 'idx'], [], 'topk'));
    after.initializers.push({ name: 'k', dims: [1], data_type: 7, int64_data: [1] });
    expect(analyzeOnnx(encodeModel(after)).pairs).toHaveLength(1);

    // The same op before a conv: a clear error naming op and node.
    const before = convBNModel();
    before.nodes.unshift(node('NonMaxSuppression', ['x0'], ['x'], [], 'nms1'));
    before.inputs = [valueInfo('x0', [1, 2, 6, 6])];
    const err = expectModelError(() => analyzeOnnx(encodeModel(before)));
    expect(err.message).toMatch(/'conv'.*NonMaxSuppression.*nms1|nms1.*NonMaxSuppression/);
  });

  test('symbolic batch dim needs inputShape; with it, N comes from the override', () => {
    const g = convBNModel({ xDims: ['batch', 2, 6, 6] });
    const err = expectModelError(() => analyzeOnnx(encodeModel(g)));
    expect(err.message).toMatch(/batch.*inputShape/);
    const a = analyzeOnnx(encodeModel(g), { inputShape: [4, 2, 6, 6] });
    expect(a.pairs[0].config).toMatchObject({ N: 4, H: 6, W: 6 });
    // A dim with neither dim_value nor dim_param is unknown too (not 0).
    const unset = convBNModel();
    unset.inputs[0].type.tensor_type.shape.dim[2] = {};
    expect(expectModelError(() => analyzeOnnx(encodeModel(unset))).message).toMatch(/\[1, 2, \?, 6\].*inputShape/);
  });

  test('pools, Concat and Flatten between convs propagate shapes', () => {
    const g = convBNModel();
    g.nodes.push(
      node('MaxPool', ['y'], ['p'], [A.ints('kernel_shape', [2, 2]), A.ints('strides', [2, 2]), A.int('ceil_mode', 1)], 'pool'),
      node('Concat', ['p', 'p'], ['cat'], [A.int('axis', 1)], 'cat'),
      node('Conv', ['cat', 'w2'], ['z2'], [], 'conv2'),
      node('BatchNormalization', ['z2', 'g2', 'b2', 'm2', 'v2'], ['y2'], [], 'bn2'),
    );
    g.initializers.push(floatTensor('w2', [3, 8, 1, 1], new Float32Array(24).fill(0.5)),
      ...['g2', 'b2', 'm2'].map((n) => floatTensor(n, [3], [0, 0, 0])), floatTensor('v2', [3], [1, 1, 1]));
    g.outputs = [valueInfo('y2', [])];
    const a = analyzeOnnx(encodeModel(g));
    expect(a.pairs.map((p) => p.convNode)).toEqual(['conv', 'conv2']);
    expect(a.pairs[1].config).toMatchObject({ Cin: 8, Cout: 3, H: 3, W: 3, bias: false });
  });
});

describe('handmade models: shapes computed in the graph', () => {
  /** PyTorch's channel shuffle export: Shape -> Gather -> Div -> Unsqueeze -> Concat -> Reshape -> Transpose -> Reshape. */
  test('a channel shuffle between two ConvBNs (shape tensors computed from Shape ops)', () => {
    const g = convBNModel();
    const i64 = (name: string, dims: number[], values: number[]) => ({ name, dims, data_type: 7, int64_data: values });
    g.initializers.push(
      i64('i0', [], [0]), i64('i1', [], [1]), i64('i2', [], [2]), i64('i3', [], [3]), i64('two', [], [2]),
      i64('ax0', [1], [0]), i64('groups', [1], [2]), i64('minus1', [1], [-1]),
      floatTensor('w2', [6, 4, 1, 1], new Float32Array(24).fill(0.25)),
      ...['g2', 'b2', 'm2'].map((n) => floatTensor(n, [6], new Float32Array(6))), floatTensor('v2', [6], new Float32Array(6).fill(1)),
    );
    g.nodes.push(
      node('Shape', ['y'], ['s'], [], 'shape'),
      ...['0', '1', '2', '3'].map((k) => node('Gather', ['s', `i${k}`], [`d${k}`], [A.int('axis', 0)], `gather${k}`)),
      node('Div', ['d1', 'two'], ['cpg'], [], 'div'),
      ...['d0', 'cpg', 'd2', 'd3'].map((v) => node('Unsqueeze', [v, 'ax0'], [`u_${v}`], [], `unsq_${v}`)),
      node('Concat', ['u_d0', 'groups', 'u_cpg', 'u_d2', 'u_d3'], ['shape5'], [A.int('axis', 0)], 'cat5'),
      node('Reshape', ['y', 'shape5'], ['r5'], [], 'reshape5'),
      node('Transpose', ['r5'], ['t5'], [A.ints('perm', [0, 2, 1, 3, 4])], 'transpose'),
      node('Concat', ['u_d0', 'minus1', 'u_d2', 'u_d3'], ['shape4'], [A.int('axis', 0)], 'cat4'),
      node('Reshape', ['t5', 'shape4'], ['shuffled'], [], 'reshape4'),
      node('Conv', ['shuffled', 'w2'], ['z2'], [A.ints('strides', [2, 2])], 'conv2'),
      node('BatchNormalization', ['z2', 'g2', 'b2', 'm2', 'v2'], ['y2'], [], 'bn2'),
    );
    g.outputs = [valueInfo('y2', [])];
    const a = analyzeOnnx(encodeModel(g), { inputShape: [3, 2, 6, 6] });
    expect(a.pairs.map((p) => p.convNode)).toEqual(['conv', 'conv2']);
    expect(a.pairs[1].config).toMatchObject({ N: 3, Cin: 4, Cout: 6, H: 6, W: 6, stride: [2, 2] });
  });

  test('a conv fed by a Reshape whose shape is a graph input: error names the Reshape', () => {
    const g = convBNModel();
    g.nodes.unshift(node('Reshape', ['x0', 'target'], ['x'], [], 'dyn_reshape'));
    g.inputs = [valueInfo('x0', [72]), { name: 'target', type: { tensor_type: { elem_type: 7, shape: { dim: [{ dim_value: 4 }] } } } }];
    const err = expectModelError(() => analyzeOnnx(encodeModel(g)));
    expect(err.message).toMatch(/'conv'.*dyn_reshape.*Reshape.*not a constant/);
  });
});

describe('hostile and malformed inputs give OnnxModelError quickly', () => {
  test.skipIf(!haveModels)('truncated real files', () => {
    const bytes = new Uint8Array(readFileSync(mobilenetPath));
    for (const cut of [1, 17, 1000, bytes.length >> 1, bytes.length - 1]) {
      expect(expectModelError(() => analyzeOnnx(bytes.subarray(0, cut))).message).toMatch(/truncated|corrupt|no graph/);
    }
    const tricky = new Uint8Array(readFileSync(trickyPath));
    for (let cut = 3; cut < tricky.length; cut += 811) expectModelError(() => analyzeOnnx(tricky.subarray(0, cut)));
  });

  test('random bytes', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rng = mulberry32(seed);
      const bytes = new Uint8Array(1 + Math.floor(rng() * 20000)).map(() => Math.floor(rng() * 256));
      expectModelError(() => analyzeOnnx(bytes));
    }
    expectModelError(() => analyzeOnnx(new Uint8Array(0)));
    // A million nested groups: protobufjs's depth limit, not a stack overflow.
    expect(expectModelError(() => analyzeOnnx(new Uint8Array(1_000_000).fill(0x0b))).message).toMatch(/depth/);
  });

  test('a cycle', () => {
    const g = convBNModel();
    g.nodes.push(node('Relu', ['loop_b', 'y'], ['loop_a'], [], 'cyc_a'), node('Relu', ['loop_a'], ['loop_b'], [], 'cyc_b'));
    const err = expectModelError(() => analyzeOnnx(encodeModel(g)));
    expect(err.message).toMatch(/cycle.*cyc_a|cycle.*cyc_b/);
  });

  test('huge, negative and mismatched dims in an initializer, before any allocation', () => {
    const huge = convBNModel();
    huge.initializers.push({ name: 'huge', dims: [2 ** 40], data_type: FLOAT });
    expect(expectModelError(() => analyzeOnnx(encodeModel(huge))).message).toMatch(/'huge'.*1099511627776/);

    const product = convBNModel();
    product.initializers.push({ name: 'wide', dims: [2 ** 15, 2 ** 15], data_type: FLOAT });
    expect(expectModelError(() => analyzeOnnx(encodeModel(product))).message).toMatch(/'wide'.*more than 268435456/);

    const negative = convBNModel();
    negative.initializers.push({ name: 'neg', dims: [-3], data_type: FLOAT });
    expect(expectModelError(() => analyzeOnnx(encodeModel(negative))).message).toMatch(/'neg'.*-3/);

    const short = convBNModel();
    short.initializers[0] = floatTensor('w', [4, 2, 3, 3], new Float32Array(71));
    expect(expectModelError(() => analyzeOnnx(encodeModel(short))).message).toMatch(/'w'.*284 bytes.*288/);

    const shortFloats = convBNModel({ storage: 'float_data' });
    shortFloats.initializers[1] = floatTensor('b', [4], [1, 2, 3], 'float_data');
    expect(expectModelError(() => analyzeOnnx(encodeModel(shortFloats))).message).toMatch(/'b'.*float_data holds 3.*need 4/);
  });

  test('weights stored in an external file are named, not read', () => {
    const g = convBNModel();
    g.initializers[0] = { name: 'w', dims: [4, 2, 3, 3], data_type: FLOAT, data_location: 1, external_data: [{ key: 'location', value: 'weights.bin' }] };
    expect(expectModelError(() => analyzeOnnx(encodeModel(g))).message).toMatch(/'w'.*external file.*weights\.bin/);
  });

  test('a missing initializer', () => {
    const g = convBNModel();
    g.initializers = g.initializers.filter((t) => t.name !== 'var');
    expect(expectModelError(() => analyzeOnnx(encodeModel(g))).message).toMatch(/'bn'.*'var'.*missing initializer/);
  });

  test('wrong attribute types and malformed attributes', () => {
    const floatStrides = convBNModel({ convAttrs: [{ name: 'strides', type: 1, f: 2 }] });
    expect(expectModelError(() => analyzeOnnx(encodeModel(floatStrides))).message).toMatch(/'conv'.*'strides'.*INTS.*FLOAT/);

    const shortPads = convBNModel({ convAttrs: [A.ints('pads', [1, 1])] });
    expect(expectModelError(() => analyzeOnnx(encodeModel(shortPads))).message).toMatch(/'conv'.*pads has 2 values/);

    const badKernel = convBNModel({ convAttrs: [A.ints('kernel_shape', [5, 5])] });
    expect(expectModelError(() => analyzeOnnx(encodeModel(badKernel))).message).toMatch(/kernel_shape \[5, 5\]/);

    const intEps = convBNModel({ bnAttrs: [A.int('epsilon', 1)] });
    expect(expectModelError(() => analyzeOnnx(encodeModel(intEps))).message).toMatch(/'bn'.*'epsilon'.*FLOAT/);
  });

  test('limits: file size cap, tensor cap, and invalid limits', () => {
    const bytes = encodeModel(convBNModel());
    expect(expectModelError(() => analyzeOnnx(bytes, { limits: { maxFileBytes: 100 } })).message).toMatch(/maxFileBytes/);
    expect(expectModelError(() => analyzeOnnx(bytes, { limits: { maxTensorElements: 50 } })).message).toMatch(/'w'.*maxTensorElements/);
    expectModelError(() => analyzeOnnx(bytes, { limits: { maxNodes: 0 } }));
    expectModelError(() => analyzeOnnx('not bytes' as unknown as Uint8Array));
  });
});

describe('params file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'convbn-onnx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const roundTrip = (analysis: OnnxConvBNAnalysis, file: string) => {
    writeParamsFile(analysis, file);
    const back = readParamsFile(file);
    expect(back.modelInputShape).toEqual(analysis.modelInputShape);
    expect(back.pairs).toHaveLength(analysis.pairs.length);
    back.pairs.forEach((p, i) => {
      const orig = analysis.pairs[i];
      expect([p.convNode, p.bnNode]).toEqual([orig.convNode, orig.bnNode]);
      expect(p.config).toEqual(orig.config);
      for (const key of ['weight', 'bias', 'gamma', 'beta', 'runningMean', 'runningVar'] as const) {
        const [got, want] = [p.params[key], orig.params[key]];
        expect(got === undefined, key).toBe(want === undefined);
        // Byte comparison: vitest's deep equality is slow on millions of floats.
        if (got && want) expect(Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer)), key).toBe(0);
      }
    });
  };

  test.skipIf(!haveModels)('round trip: tricky (with biases) and mobilenet', () => {
    roundTrip(load(trickyPath).analysis, path.join(dir, 'tricky.cbnp'));
    roundTrip(load(mobilenetPath).analysis, path.join(dir, 'mobilenet.cbnp'));
  });

  test('round trip of a handmade model, and corrupt files are refused', () => {
    const analysis = analyzeOnnx(encodeModel(convBNModel()));
    const file = path.join(dir, 'handmade.cbnp');
    roundTrip(analysis, file);
    const bytes = encodeParamsFile({ modelInputShape: analysis.modelInputShape, pairs: analysis.pairs });
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x43, 0x42, 0x4e, 0x50]); // "CBNP"

    expect(() => decodeParamsFile(bytes.subarray(0, bytes.length - 4))).toThrow(ParamsFileError);
    expect(() => decodeParamsFile(bytes.subarray(0, 10))).toThrow(ParamsFileError);
    const badMagic = bytes.slice();
    badMagic[0] = 0;
    expect(() => decodeParamsFile(badMagic)).toThrow(/CBNP/);
    const badLength = bytes.slice();
    new DataView(badLength.buffer).setUint32(8, 1e6, true);
    expect(() => decodeParamsFile(badLength)).toThrow(/header length/);

    // A header whose tensor length disagrees with its config.
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + new DataView(bytes.buffer).getUint32(8, true))));
    header.pairs[0].tensors.gamma[1] = 3;
    const json = new TextEncoder().encode(JSON.stringify(header));
    const padded = Math.ceil((12 + json.length) / 4) * 4;
    const tampered = new Uint8Array(padded + header.dataElements * 4);
    tampered.set(bytes.subarray(0, 8));
    new DataView(tampered.buffer).setUint32(8, json.length, true);
    tampered.set(json, 12);
    writeFileSync(path.join(dir, 'tampered.cbnp'), tampered);
    expect(() => readParamsFile(path.join(dir, 'tampered.cbnp'))).toThrow(/gamma has 3 values; its config needs 4/);
  });
});
