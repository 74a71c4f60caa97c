/**
 * A one-node ONNX model (Conv with BN already folded into W', b'), encoded by
 * hand with protobufjs's Writer: ModelProto -> GraphProto -> NodeProto +
 * initializers. Field numbers are from onnx.proto.
 */
import protobuf from 'protobufjs';
import type { ConvBNConfig } from '../../codegen/config.js';
import { outputShape } from '../../codegen/config.js';

const { Writer } = protobuf;
type W = protobuf.Writer;

const VARINT = 0, LEN = 2;
const tag = (w: W, field: number, wire: number): W => w.uint32((field << 3) | wire);

function message(w: W, field: number, body: (w: W) => void): void {
  tag(w, field, LEN).fork();
  body(w);
  w.ldelim();
}

function str(w: W, field: number, s: string): void {
  tag(w, field, LEN).string(s);
}

function int(w: W, field: number, v: number): void {
  tag(w, field, VARINT).int64(v);
}

function attrInts(w: W, name: string, values: number[]): void {
  message(w, 5, (a) => {
    str(a, 1, name);
    for (const v of values) int(a, 8, v);
    int(a, 20, 7); // AttributeType.INTS
  });
}

function attrInt(w: W, name: string, v: number): void {
  message(w, 5, (a) => {
    str(a, 1, name);
    int(a, 3, v);
    int(a, 20, 2); // AttributeType.INT
  });
}

function tensor(w: W, field: number, name: string, dims: number[], data: Float32Array): void {
  message(w, field, (t) => {
    for (const d of dims) int(t, 1, d);
    int(t, 2, 1); // FLOAT
    str(t, 8, name);
    tag(t, 9, LEN).bytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  });
}

function valueInfo(w: W, field: number, name: string, dims: number[]): void {
  message(w, field, (v) => {
    str(v, 1, name);
    message(v, 2, (type) => message(type, 1, (tt) => {
      int(tt, 1, 1); // FLOAT
      message(tt, 2, (shape) => {
        for (const d of dims) message(shape, 1, (dim) => int(dim, 1, d));
      });
    }));
  });
}

/** Model bytes: y = Conv(x, weight, bias) with the config's kernel, strides, pads, dilations and groups. */
export function convModelBytes(c: ConvBNConfig, weight: Float32Array, bias: Float32Array): Uint8Array {
  const o = outputShape(c);
  const w = Writer.create();
  int(w, 1, 8); // ir_version
  message(w, 8, (op) => { str(op, 1, ''); int(op, 2, 13); });
  message(w, 7, (g) => {
    message(g, 1, (n) => {
      str(n, 1, 'x');
      str(n, 1, 'weight');
      str(n, 1, 'bias');
      str(n, 2, 'y');
      str(n, 3, 'conv');
      str(n, 4, 'Conv');
      attrInts(n, 'kernel_shape', [c.kH, c.kW]);
      attrInts(n, 'strides', [c.strideH, c.strideW]);
      attrInts(n, 'pads', [c.padTop, c.padLeft, c.padBottom, c.padRight]);
      attrInts(n, 'dilations', [c.dilationH, c.dilationW]);
      attrInt(n, 'group', c.groups);
    });
    str(g, 2, 'convbn_folded');
    tensor(g, 5, 'weight', [c.Cout, c.Cin / c.groups, c.kH, c.kW], weight);
    tensor(g, 5, 'bias', [c.Cout], bias);
    valueInfo(g, 11, 'x', [c.N, c.Cin, c.H, c.W]);
    valueInfo(g, 12, 'y', [o.N, o.C, o.H, o.W]);
  });
  return w.finish();
}
