/**
 * Per-op output-shape rules for the ops that commonly sit between convs in
 * vision models. A rule returns one shape per output it knows (outputs it
 * leaves out stay unknown) and reports problems through ctx.fail.
 */
import { attrFloats, attrInt, attrInts, attrString } from './attributes.js';
import type { GraphIndex } from './graph.js';
import type { OnnxNode } from './parse.js';
import { convKernel, perAxis, readAutoPad, readGroup, windowGeometry } from './window.js';

export type Shape = readonly number[];

/** The node itself cannot be followed; message says why (the driver adds the node's name). */
export class ShapeFailure extends Error {}

/** An input's shape is unknown; carries the upstream root cause unchanged. */
export class UnknownInputShape extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

export interface ShapeContext {
  readonly node: OnnxNode;
  readonly index: GraphIndex;
  hasInput(i: number): boolean;
  /** Shape of input i; throws UnknownInputShape when it has none. */
  input(i: number): Shape;
  /**
   * Integer values of input i when known at analysis time: a small INT64/INT32
   * constant (INT64 extremes pinned to +-2^53) or a value computed from shapes
   * (Shape -> Gather -> Concat chains). Undefined otherwise.
   */
  value(i: number): readonly number[] | undefined;
  /** Records the integer values of output `output` for later value(i) reads. */
  setValue(output: number, values: readonly number[]): void;
  /** value(i), or a failure naming `what` when it is unknown. */
  constInts(i: number, what: string): number[];
  constFloats(i: number, what: string): number[];
  fail(problem: string): never;
}

export type ShapeRule = (ctx: ShapeContext) => Shape[];

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const fmt = (s: Shape) => `[${s.join(', ')}]`;

function normalizeAxis(ctx: ShapeContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Numpy-style multidirectional broadcasting. */
function broadcast(ctx: ShapeContext, shapes: readonly Shape[]): Shape {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const axis = rank - s.length + i;
      const d = s[i];
      if (out[axis] === 1) out[axis] = d;
      else if (d !== 1 && d !== out[axis]) ctx.fail(`cannot broadcast shapes ${shapes.map(fmt).join(' and ')}`);
    }
  }
  return out;
}

function allInputs(ctx: ShapeContext): Shape[] {
  return ctx.node.inputs.map((name, i) => (name ? ctx.input(i) : undefined)).filter((s): s is Shape => s !== undefined);
}

const sameAsInput: ShapeRule = (ctx: ShapeContext) => {
  passValue(ctx);
  return [ctx.input(0)];
};

/** Shape-preserving ops (Identity, Cast, Squeeze, Reshape...) keep a known value as it is. */
function passValue(ctx: ShapeContext): void {
  const v = ctx.value(0);
  if (v) ctx.setValue(0, v);
}

/** Dropout's optional mask has the data's shape. */
const dropout: ShapeRule = (ctx: ShapeContext) => ctx.node.outputs.map(() => ctx.input(0));

const INT_ARITHMETIC: Record<string, (a: number, b: number) => number> = {
  Add: (a, b) => a + b, Sub: (a, b) => a - b, Mul: (a, b) => a * b, Div: (a, b) => Math.trunc(a / b),
};

const broadcastAll: ShapeRule = (ctx: ShapeContext) => {
  const out = broadcast(ctx, allInputs(ctx));
  // Shape arithmetic (e.g. channels / groups in a channel shuffle) on 0-D/1-D values.
  const op = INT_ARITHMETIC[ctx.node.opType];
  const [a, b] = [ctx.value(0), ctx.value(1)];
  if (op && a && b && out.length <= 1 && (a.length === b.length || a.length === 1 || b.length === 1)) {
    const n = Math.max(a.length, b.length);
    const values = Array.from({ length: n }, (_, i) => op(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]));
    if (values.every(Number.isSafeInteger)) ctx.setValue(0, values);
  }
  return [out];
};

const batchNormalization: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  if (x.length < 2) ctx.fail(`input ${fmt(x)} needs at least 2 dims (N, C)`);
  // Training-mode outputs (running/saved mean and var) are per channel.
  return [x, ...ctx.node.outputs.slice(1).map(() => [x[1]])];
};

const conv: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const w = ctx.input(1);
  if (x.length < 3) ctx.fail(`input ${fmt(x)} needs rank >= 3 (N, C, spatial...)`);
  if (w.length !== x.length) ctx.fail(`weight ${fmt(w)} must have the input's rank ${x.length}`);
  const group = readGroup(ctx.node);
  if (x[1] !== w[1] * group) {
    ctx.fail(`input has ${x[1]} channels but weight ${fmt(w)} with group ${group} expects ${w[1] * group}`);
  }
  if (w[0] % group !== 0) ctx.fail(`weight ${fmt(w)}: ${w[0]} output channels are not divisible by group ${group}`);
  if (ctx.hasInput(2)) {
    const b = ctx.input(2);
    if (product(b) !== w[0] || b.length !== 1) ctx.fail(`bias ${fmt(b)} must be [${w[0]}]`);
  }
  const geometry = windowGeometry(ctx.node, x.slice(2), convKernel(ctx.node, w));
  return [[x[0], w[0], ...geometry.outSpatial]];
};

const convTranspose: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const w = ctx.input(1);
  if (x.length < 3 || w.length !== x.length) ctx.fail(`input ${fmt(x)} and weight ${fmt(w)} need equal rank >= 3`);
  const group = readGroup(ctx.node);
  if (x[1] !== w[0]) ctx.fail(`input has ${x[1]} channels but weight ${fmt(w)} expects ${w[0]}`);
  const rank = x.length - 2;
  const kernel = convKernel(ctx.node, w);
  const strides = perAxis(ctx.node, 'strides', rank, 1, 1);
  const dilations = perAxis(ctx.node, 'dilations', rank, 1, 1);
  const outputPadding = perAxis(ctx.node, 'output_padding', rank, 0, 0);
  const outputShape = attrInts(ctx.node, 'output_shape');
  const autoPad = readAutoPad(ctx.node);
  const pads = autoPad === 'NOTSET' ? attrInts(ctx.node, 'pads') ?? new Array<number>(2 * rank).fill(0) : undefined;
  if (pads && pads.length !== 2 * rank) ctx.fail(`pads has ${pads.length} values; needs ${2 * rank}`);
  const spatial = x.slice(2).map((size, i) => {
    if (outputShape) return outputShape[outputShape.length - rank + i];
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return size * strides[i];
    const [begin, end] = pads ? [pads[i], pads[i + rank]] : [0, 0];
    return strides[i] * (size - 1) + outputPadding[i] + (kernel[i] - 1) * dilations[i] + 1 - begin - end;
  });
  return [[x[0], w[1] * group, ...spatial]];
};

const pool: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  if (x.length < 3) ctx.fail(`input ${fmt(x)} needs rank >= 3`);
  const kernel = attrInts(ctx.node, 'kernel_shape');
  if (!kernel) ctx.fail('has no kernel_shape');
  const ceilMode = attrInt(ctx.node, 'ceil_mode', 0) === 1;
  const geometry = windowGeometry(ctx.node, x.slice(2), kernel, { ceilMode });
  const y = [x[0], x[1], ...geometry.outSpatial];
  return ctx.node.outputs.map(() => y); // MaxPool's Indices has Y's shape
};

const globalPool: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  if (x.length < 3) ctx.fail(`input ${fmt(x)} needs rank >= 3`);
  return [[x[0], x[1], ...x.slice(2).map(() => 1)]];
};

const flatten: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  let axis = attrInt(ctx.node, 'axis', 1);
  if (axis < 0) axis += x.length;
  if (axis < 0 || axis > x.length) ctx.fail(`axis ${attrInt(ctx.node, 'axis', 1)} is out of range for rank ${x.length}`);
  return [[product(x.slice(0, axis)), product(x.slice(axis))]];
};

const gemm: ShapeRule = (ctx: ShapeContext) => {
  const a = ctx.input(0);
  const b = ctx.input(1);
  if (a.length !== 2 || b.length !== 2) ctx.fail(`A ${fmt(a)} and B ${fmt(b)} must both be 2-D`);
  const transA = attrInt(ctx.node, 'transA', 0) !== 0;
  const transB = attrInt(ctx.node, 'transB', 0) !== 0;
  const [m, k] = transA ? [a[1], a[0]] : [a[0], a[1]];
  const [kb, n] = transB ? [b[1], b[0]] : [b[0], b[1]];
  if (k !== kb) ctx.fail(`inner dims differ: A ${fmt(a)} (transA ${Number(transA)}), B ${fmt(b)} (transB ${Number(transB)})`);
  return [[m, n]];
};

const matMul: ShapeRule = (ctx: ShapeContext) => {
  const a0 = ctx.input(0);
  const b0 = ctx.input(1);
  if (a0.length === 0 || b0.length === 0) ctx.fail('inputs must not be scalars');
  const a = a0.length === 1 ? [1, a0[0]] : a0;
  const b = b0.length === 1 ? [b0[0], 1] : b0;
  if (a[a.length - 1] !== b[b.length - 2]) ctx.fail(`inner dims differ: ${fmt(a0)} x ${fmt(b0)}`);
  const batch = broadcast(ctx, [a.slice(0, -2), b.slice(0, -2)]);
  const out = [...batch];
  if (a0.length !== 1) out.push(a[a.length - 2]);
  if (b0.length !== 1) out.push(b[b.length - 1]);
  return [out];
};

const reshape: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const target = ctx.constInts(1, 'shape');
  const allowZero = attrInt(ctx.node, 'allowzero', 0) === 1;
  passValue(ctx);
  const out = target.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
  if (out.some((d) => d === undefined || d < -1)) ctx.fail(`target shape ${fmt(target)} is invalid for input ${fmt(x)}`);
  const inferred = out.filter((d) => d === -1).length;
  if (inferred > 1) ctx.fail(`target shape ${fmt(target)} has more than one -1`);
  const total = product(x);
  if (inferred === 1) {
    const rest = product(out.filter((d) => d !== -1));
    if (rest === 0 || total % rest !== 0) ctx.fail(`cannot reshape ${fmt(x)} to ${fmt(target)}`);
    return [out.map((d) => (d === -1 ? total / rest : d))];
  }
  if (product(out) !== total) ctx.fail(`cannot reshape ${fmt(x)} (${total} elements) to ${fmt(target)}`);
  return [out];
};

const transpose: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const perm = attrInts(ctx.node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
  const sorted = [...perm].sort((p, q) => p - q);
  if (perm.length !== x.length || sorted.some((p, i) => p !== i)) ctx.fail(`perm ${fmt(perm)} is not a permutation of rank ${x.length}`);
  return [perm.map((p) => x[p])];
};

/** Axes from the attribute (older opsets) or from constant input 1 (newer). */
function axesOf(ctx: ShapeContext, inputSlot: number): number[] | undefined {
  if (ctx.hasInput(inputSlot)) return ctx.constInts(inputSlot, 'axes');
  return attrInts(ctx.node, 'axes');
}

const squeeze: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const axes = axesOf(ctx, 1);
  passValue(ctx);
  if (!axes || axes.length === 0) return [x.filter((d) => d !== 1)];
  const drop = new Set(axes.map((a) => normalizeAxis(ctx, a, x.length)));
  for (const a of drop) if (x[a] !== 1) ctx.fail(`cannot squeeze axis ${a} of ${fmt(x)}: extent is not 1`);
  return [x.filter((_, i) => !drop.has(i))];
};

const unsqueeze: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const axes = axesOf(ctx, 1);
  if (!axes) ctx.fail('has no axes');
  passValue(ctx);
  const rank = x.length + axes.length;
  const insert = new Set(axes.map((a) => normalizeAxis(ctx, a, rank)));
  if (insert.size !== axes.length) ctx.fail(`axes ${fmt(axes)} repeat an axis`);
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < rank; i++) out.push(insert.has(i) ? 1 : x[next++]);
  return [out];
};

const concat: ShapeRule = (ctx: ShapeContext) => {
  const shapes = allInputs(ctx);
  if (shapes.length === 0) ctx.fail('has no inputs');
  const rank = shapes[0].length;
  const axis = normalizeAxis(ctx, attrInt(ctx.node, 'axis', 0), rank);
  const out = [...shapes[0]];
  out[axis] = 0;
  for (const s of shapes) {
    if (s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i])) {
      ctx.fail(`inputs ${shapes.map(fmt).join(', ')} differ outside axis ${axis}`);
    }
    out[axis] += s[axis];
  }
  const values = ctx.node.inputs.map((_, i) => ctx.value(i));
  if (rank === 1 && values.every((v) => v !== undefined)) ctx.setValue(0, values.flatMap((v) => [...v!]));
  return [out];
};

const reduce: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const keepDims = attrInt(ctx.node, 'keepdims', 1) !== 0;
  const axes = axesOf(ctx, 1) ?? [];
  if (axes.length === 0 && attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1) return [x];
  const reduced = new Set(axes.length ? axes.map((a) => normalizeAxis(ctx, a, x.length)) : x.map((_, i) => i));
  const out: number[] = [];
  x.forEach((d, i) => {
    if (!reduced.has(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return [out];
};

const pad: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const pads = ctx.hasInput(1) ? ctx.constInts(1, 'pads') : attrInts(ctx.node, 'pads');
  if (!pads) ctx.fail('has no pads');
  const axes = ctx.hasInput(3) ? ctx.constInts(3, 'axes').map((a) => normalizeAxis(ctx, a, x.length)) : x.map((_, i) => i);
  if (pads.length !== 2 * axes.length) ctx.fail(`pads has ${pads.length} values; needs ${2 * axes.length}`);
  const out = [...x];
  axes.forEach((a, i) => {
    out[a] += pads[i] + pads[i + axes.length];
  });
  return [out];
};

const resize: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const isUpsample = ctx.node.opType === 'Upsample';
  const sizesSlot = 3;
  const scalesSlot = isUpsample || ctx.node.inputs.length === 2 ? 1 : 2;
  if (!isUpsample && ctx.hasInput(sizesSlot)) {
    const sizes = ctx.constInts(sizesSlot, 'sizes');
    if (sizes.length > 0) {
      const axes = attrInts(ctx.node, 'axes')?.map((a) => normalizeAxis(ctx, a, x.length)) ?? x.map((_, i) => i);
      if (sizes.length !== axes.length) ctx.fail(`sizes ${fmt(sizes)} do not match rank ${x.length}`);
      if (attrString(ctx.node, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') ctx.fail('keep_aspect_ratio_policy other than stretch is not supported');
      const out = [...x];
      axes.forEach((a, i) => {
        out[a] = sizes[i];
      });
      return [out];
    }
  }
  const scales = ctx.hasInput(scalesSlot) ? ctx.constFloats(scalesSlot, 'scales') : attrFloats(ctx.node, 'scales');
  if (!scales || scales.length === 0) ctx.fail('has neither sizes nor scales');
  const axes = attrInts(ctx.node, 'axes')?.map((a) => normalizeAxis(ctx, a, x.length)) ?? x.map((_, i) => i);
  if (scales.length !== axes.length) ctx.fail(`scales ${fmt(scales)} do not match rank ${x.length}`);
  const out = [...x];
  axes.forEach((a, i) => {
    out[a] = Math.floor(x[a] * scales[i]);
  });
  return [out];
};

const slice: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const fromInputs = ctx.hasInput(1);
  const starts = fromInputs ? ctx.constInts(1, 'starts') : attrInts(ctx.node, 'starts');
  const ends = fromInputs ? ctx.constInts(2, 'ends') : attrInts(ctx.node, 'ends');
  if (!starts || !ends || starts.length !== ends.length) ctx.fail('starts and ends must be given with equal lengths');
  const axes = (fromInputs ? (ctx.hasInput(3) ? ctx.constInts(3, 'axes') : undefined) : attrInts(ctx.node, 'axes'))
    ?? starts.map((_, i) => i);
  const steps = fromInputs && ctx.hasInput(4) ? ctx.constInts(4, 'steps') : starts.map(() => 1);
  if (axes.length !== starts.length || steps.length !== starts.length) ctx.fail('starts, ends, axes and steps differ in length');
  const out = [...x];
  let picked = ctx.value(0); // a 1-D known value (a shape) is sliced along with its shape
  starts.forEach((s0, i) => {
    const axis = normalizeAxis(ctx, axes[i], x.length);
    const dim = x[axis];
    const step = steps[i];
    if (step === 0) ctx.fail('a step is 0');
    let start = s0 < 0 ? s0 + dim : s0;
    let end = ends[i] < 0 ? ends[i] + dim : ends[i];
    if (step > 0) {
      start = Math.min(Math.max(start, 0), dim);
      end = Math.min(Math.max(end, 0), dim);
      out[axis] = Math.max(0, Math.ceil((end - start) / step));
    } else {
      start = Math.min(Math.max(start, 0), dim - 1);
      end = Math.min(Math.max(end, -1), dim - 1);
      out[axis] = Math.max(0, Math.ceil((start - end) / -step));
    }
    if (picked && x.length === 1) {
      const from = picked;
      picked = Array.from({ length: out[axis] }, (_, k) => from[start + k * step]);
    }
  });
  if (picked && x.length === 1) ctx.setValue(0, picked);
  return [out];
};

const split: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const axis = normalizeAxis(ctx, attrInt(ctx.node, 'axis', 0), x.length);
  const count = ctx.node.outputs.length;
  let sizes = ctx.hasInput(1) ? ctx.constInts(1, 'split') : attrInts(ctx.node, 'split');
  if (!sizes) {
    const chunk = Math.ceil(x[axis] / count);
    sizes = Array.from({ length: count }, (_, i) => Math.max(0, Math.min(chunk, x[axis] - i * chunk)));
  }
  if (sizes.length !== count || sizes.reduce((a, b) => a + b, 0) !== x[axis]) {
    ctx.fail(`split ${fmt(sizes)} does not divide axis ${axis} of ${fmt(x)} into ${count} outputs`);
  }
  return sizes.map((s) => x.map((d, i) => (i === axis ? s : d)));
};

const gather: ShapeRule = (ctx: ShapeContext) => {
  const data = ctx.input(0);
  const indices = ctx.input(1);
  const axis = normalizeAxis(ctx, attrInt(ctx.node, 'axis', 0), data.length);
  const [values, picks] = [ctx.value(0), ctx.value(1)];
  if (data.length === 1 && values && picks) {
    const picked = picks.map((i) => values[i < 0 ? i + values.length : i]);
    if (picked.every((v) => v !== undefined)) ctx.setValue(0, picked);
  }
  return [[...data.slice(0, axis), ...indices, ...data.slice(axis + 1)]];
};

const shapeOp: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const rank = x.length;
  const clampAxis = (a: number) => Math.min(Math.max(a < 0 ? a + rank : a, 0), rank);
  const start = clampAxis(attrInt(ctx.node, 'start', 0));
  const end = clampAxis(attrInt(ctx.node, 'end', rank));
  ctx.setValue(0, x.slice(start, Math.max(start, end)));
  return [[Math.max(0, end - start)]];
};

const expand: ShapeRule = (ctx: ShapeContext) => [broadcast(ctx, [ctx.input(0), ctx.constInts(1, 'shape')])];

const tile: ShapeRule = (ctx: ShapeContext) => {
  const x = ctx.input(0);
  const repeats = ctx.constInts(1, 'repeats');
  if (repeats.length !== x.length) ctx.fail(`repeats ${fmt(repeats)} do not match rank ${x.length}`);
  return [x.map((d, i) => d * repeats[i])];
};

const constantOfShape: ShapeRule = (ctx: ShapeContext) => [ctx.constInts(0, 'shape')];

const UNARY = [
  'Identity', 'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Elu', 'Selu', 'Celu',
  'Softplus', 'Softsign', 'Gelu', 'Mish', 'Erf', 'Exp', 'Log', 'Neg', 'Abs', 'Sqrt', 'Reciprocal', 'Floor', 'Ceil',
  'Round', 'Sign', 'Sin', 'Cos', 'Not', 'Cast', 'CastLike', 'Softmax', 'LogSoftmax', 'Hardmax', 'LRN',
  'InstanceNormalization', 'LayerNormalization', 'GroupNormalization', 'Clip', 'ThresholdedRelu', 'Shrink', 'IsNaN',
  'IsInf', 'QuantizeLinear', 'DequantizeLinear', 'Trilu',
];
const BROADCASTING = [
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Equal', 'Greater', 'GreaterOrEqual', 'Less',
  'LessOrEqual', 'And', 'Or', 'Xor', 'Mod', 'BitShift', 'Where',
];
const REDUCTIONS = [
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum',
  'ReduceLogSumExp', 'ReduceSumSquare',
];

/** PRelu is unidirectional (slope broadcasts to X), so X's shape is the output's. */
export const SHAPE_RULES: ReadonlyMap<string, ShapeRule> = new Map<string, ShapeRule>([
  ...UNARY.map((op) => [op, sameAsInput] as const),
  ...BROADCASTING.map((op) => [op, broadcastAll] as const),
  ...REDUCTIONS.map((op) => [op, reduce] as const),
  ['Dropout', dropout],
  ['BatchNormalization', batchNormalization],
  ['Conv', conv],
  ['ConvTranspose', convTranspose],
  ['MaxPool', pool], ['AveragePool', pool], ['LpPool', pool],
  ['GlobalAveragePool', globalPool], ['GlobalMaxPool', globalPool], ['GlobalLpPool', globalPool],
  ['Flatten', flatten],
  ['Gemm', gemm],
  ['MatMul', matMul],
  ['Reshape', reshape],
  ['Transpose', transpose],
  ['Squeeze', squeeze],
  ['Unsqueeze', unsqueeze],
  ['Concat', concat],
  ['Pad', pad],
  ['Resize', resize], ['Upsample', resize],
  ['Slice', slice],
  ['Split', split],
  ['Gather', gather],
  ['Shape', shapeOp],
  ['Expand', expand],
  ['Tile', tile],
  ['ConstantOfShape', constantOfShape],
]);
