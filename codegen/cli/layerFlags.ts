/**
 * Layer shapes for `convbn gen` and `convbn tune`: flags (parsed with
 * node:util's parseArgs) or a --layers JSON file, turned into
 * ConvBNConfigInput (validated later by normalizeConfig, which names the
 * field on error).
 */
import { readFile } from 'node:fs/promises';
import type { ConvBNConfigInput, PaddingInput } from '../config.js';
import { ConvBNInputError } from '../errors.js';
import type { LayerSpec } from '../emit.js';

export const LAYER_OPTIONS = {
  N: { type: 'string' }, Cin: { type: 'string' }, Cout: { type: 'string' }, H: { type: 'string' }, W: { type: 'string' },
  kernel: { type: 'string' }, stride: { type: 'string' }, padding: { type: 'string' }, dilation: { type: 'string' },
  groups: { type: 'string' }, bias: { type: 'string' }, eps: { type: 'string' }, momentum: { type: 'string' },
  'padding-mode': { type: 'string' }, layout: { type: 'string' },
} as const;

export const LAYER_FLAGS_HELP = `Layer shape flags (one layer):
  --N <int>           batch size                          (required)
  --Cin <int>         input channels                      (required)
  --Cout <int>        output channels                     (required)
  --H <int> --W <int> input height and width              (required)
  --kernel <k|kH,kW>  kernel size                         (required)
  --stride <s|sH,sW>  default 1
  --padding <p|pH,pW|top,bottom,left,right|same|valid>    default 0
  --padding-mode <zeros|reflect|replicate|circular>       PyTorch's padding_mode, default zeros
  --layout <NCHW|NHWC> x and y memory order, default NCHW (weights are OIHW in both)
  --dilation <d|dH,dW> default 1
  --groups <int>      default 1 (groups = Cin: depthwise; Cout = m*Cin: multiplier m)
  --bias <true|false> conv bias, default true
  --eps <float>       BN epsilon, default 1e-5
  --momentum <float>  BN momentum, default 0.1`;

function number(field: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new ConvBNInputError(field, text, 'must be a number');
  return value;
}

function numberList(field: string, text: string): number[] {
  return text.split(',').map((part, i) => number(`${field}[${i}]`, part));
}

function pair(field: string, text: string): number | [number, number] {
  const list = numberList(field, text);
  if (list.length === 1) return list[0];
  if (list.length === 2) return [list[0], list[1]];
  throw new ConvBNInputError(field, text, 'must be one integer or two, comma-separated (h,w)');
}

function padding(text: string): PaddingInput {
  if (text === 'same' || text === 'valid') return text;
  const list = numberList('padding', text);
  if (list.length === 1) return list[0];
  if (list.length === 2) return [list[0], list[1]];
  if (list.length === 4) return [list[0], list[1], list[2], list[3]];
  throw new ConvBNInputError('padding', text, "must be p, pH,pW, top,bottom,left,right, 'same' or 'valid'");
}

type LayerValues = Partial<Record<keyof typeof LAYER_OPTIONS, string>>;

/** undefined when no layer flag was given. */
export function layerFromFlags(values: LayerValues): ConvBNConfigInput | undefined {
  if (!Object.keys(LAYER_OPTIONS).some((k) => values[k as keyof LayerValues] !== undefined)) return undefined;
  for (const required of ['N', 'Cin', 'Cout', 'H', 'W', 'kernel'] as const) {
    if (values[required] === undefined) throw new ConvBNInputError(`--${required}`, undefined, 'is required for a layer');
  }
  const config: ConvBNConfigInput = {
    N: number('N', values.N!), Cin: number('Cin', values.Cin!), Cout: number('Cout', values.Cout!),
    H: number('H', values.H!), W: number('W', values.W!), kernel: pair('kernel', values.kernel!),
  };
  if (values.stride !== undefined) config.stride = pair('stride', values.stride);
  if (values.padding !== undefined) config.padding = padding(values.padding);
  if (values.dilation !== undefined) config.dilation = pair('dilation', values.dilation);
  if (values.groups !== undefined) config.groups = number('groups', values.groups);
  if (values.bias !== undefined) {
    if (values.bias !== 'true' && values.bias !== 'false') throw new ConvBNInputError('bias', values.bias, 'must be true or false');
    config.bias = values.bias === 'true';
  }
  if (values.eps !== undefined) config.eps = number('eps', values.eps);
  if (values.momentum !== undefined) config.momentum = number('momentum', values.momentum);
  // normalizeConfig names the allowed modes.
  if (values['padding-mode'] !== undefined) config.paddingMode = values['padding-mode'] as ConvBNConfigInput['paddingMode'];
  if (values.layout !== undefined) config.layout = values.layout as ConvBNConfigInput['layout'];
  return config;
}

/** A --layers file: a JSON array of configs, or of { "name": ..., "config": {...} } (validated later). */
export async function layersFromFile(file: string): Promise<LayerSpec[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new ConvBNInputError('--layers', file, `must be a readable JSON file (${(e as Error).message})`);
  }
  if (!Array.isArray(json)) throw new ConvBNInputError('--layers', file, 'must hold a JSON array of layers');
  return json.map((entry: unknown, i) => {
    const named = entry !== null && typeof entry === 'object' && 'config' in entry;
    const config = (named ? (entry as { config: unknown }).config : entry) as ConvBNConfigInput;
    const name = named ? String((entry as { name?: unknown }).name ?? `layer${i}`) : `layer${i}`;
    return { name, config };
  });
}
