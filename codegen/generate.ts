/**
 * Specialises a template for one config: the config's numbers become WGSL
 * constants, the result is parsed back with wgsl_reflect, and its bindings,
 * workgroup size and dispatch are returned as data.
 */
import { TEMPLATES } from '../templates/generated.js';
import { configKey, outputShape, shortId, tensorSizes, toConfig, type ConvBNConfig } from './config.js';
import { bindingElements, DEFAULT_PARAM_MAX, dispatchFor, gridExtent, KERNELS, type Expansion, type KernelKindSpec, type KernelVariant } from './kernels.js';
import { boolLiteral, f32Literal, i32Literal, u32Literal } from './wgsl/literals.js';
import { reflectShader } from './wgsl/reflect.js';

export interface KernelBinding {
  readonly name: string;
  readonly group: number;
  readonly binding: number;
  readonly access: 'read' | 'read_write';
  readonly elements: number;
  readonly bytes: number;
}

export interface GeneratedKernel {
  /** File-name-safe id: kind, flags and a hash of the key. */
  readonly id: string;
  /** Built from the variant and the config; equal keys mean identical WGSL. */
  readonly key: string;
  readonly variant: KernelVariant;
  readonly config: ConvBNConfig;
  readonly code: string;
  readonly entryPoint: string;
  readonly workgroupSize: readonly [number, number, number];
  readonly dispatch: readonly [number, number, number];
  readonly bindings: readonly KernelBinding[];
}

export const ENTRY_POINT = 'main';

export function variantKey(variant: KernelVariant): string {
  const spec: KernelKindSpec = KERNELS[variant.kind];
  const flags = spec.flags.map((f) => `${f}=${variant.flags[f] ? 1 : 0}`);
  const params = (spec.params ?? []).map((p) => `${p}=${variant.params?.[p]}`);
  return `${variant.kind}{${[...flags, ...params].join(',')}}`;
}

export function kernelKey(variant: KernelVariant, c: ConvBNConfig): string {
  return `${variantKey(variant)}|${configKey(c)}`;
}

function checkFlags(variant: KernelVariant): void {
  const spec: KernelKindSpec = KERNELS[variant.kind];
  if (!spec) throw new Error(`unknown kernel kind '${String(variant.kind)}'`);
  for (const f of spec.flags) {
    if (typeof variant.flags[f] !== 'boolean') throw new Error(`kernel ${variant.kind} needs boolean flag ${f}`);
  }
  for (const f of Object.keys(variant.flags)) {
    if (!spec.flags.includes(f as never)) throw new Error(`kernel ${variant.kind} has no flag ${f}`);
  }
  const params = spec.params ?? [];
  const max = spec.paramMax ?? DEFAULT_PARAM_MAX;
  for (const p of params) {
    const v = variant.params?.[p];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
      throw new Error(`kernel ${variant.kind} needs integer tile parameter ${p} in [0, ${max}]`);
    }
  }
  for (const p of Object.keys(variant.params ?? {})) {
    if (!params.includes(p)) throw new Error(`kernel ${variant.kind} has no tile parameter ${p}`);
  }
}

/** Replaces each `//@insert NAME` line of a template with the expansion's code for NAME. */
function applyInserts(template: string, inserts: Readonly<Record<string, string>>, kind: string): string {
  const used = new Set<string>();
  const out = template.replace(/^[ \t]*\/\/@insert ([A-Z_]+)[ \t]*$/gm, (_line, name: string) => {
    const code = inserts[name];
    if (code === undefined) throw new Error(`${kind}: the template asks for insert ${name}, which its expansion does not give`);
    used.add(name);
    return code;
  });
  for (const name of Object.keys(inserts)) {
    if (!used.has(name)) throw new Error(`${kind}: the expansion gives insert ${name}, which the template does not place`);
  }
  return out;
}

function constantsHeader(variant: KernelVariant, c: ConvBNConfig, dispatchX: number, expansion?: Expansion): string {
  const spec: KernelKindSpec = KERNELS[variant.kind];
  const out = outputShape(c);
  const sizes = tensorSizes(c);
  const u32s: [string, number][] = [
    ['N', c.N], ['CIN', c.Cin], ['COUT', c.Cout], ['H', c.H], ['W', c.W], ['HOUT', out.H], ['WOUT', out.W],
    ['KH', c.kH], ['KW', c.kW], ['STRIDE_H', c.strideH], ['STRIDE_W', c.strideW],
    ['DILATION_H', c.dilationH], ['DILATION_W', c.dilationW],
    ['GROUPS', c.groups], ['CIN_PER_GROUP', c.Cin / c.groups], ['COUT_PER_GROUP', c.Cout / c.groups],
    ['X_SIZE', sizes.x], ['Y_SIZE', sizes.y], ['W_SIZE', sizes.weight], ['CHANNEL_SIZE', c.N * out.H * out.W],
    ['WORKGROUP_SIZE', expansion?.workgroupSize ?? spec.workgroupSize], ['DISPATCH_X', dispatchX],
  ];
  const lines = [
    `// convbn kernel ${variantKey(variant)}`,
    `// config ${configKey(c)}`,
    ...u32s.map(([name, v]) => `const ${name}: u32 = ${u32Literal(v)};`),
    `const PAD_TOP: i32 = ${i32Literal(c.padTop)};`,
    `const PAD_LEFT: i32 = ${i32Literal(c.padLeft)};`,
    `const EPS: f32 = ${f32Literal(c.eps)};`,
    `const MOMENTUM: f32 = ${f32Literal(c.momentum)};`,
    ...spec.flags.map((f) => `const ${f}: bool = ${boolLiteral(variant.flags[f])};`),
    ...Object.entries(expansion?.constants ?? {}).map(([name, v]) => `const ${name}: u32 = ${u32Literal(v)};`),
  ];
  return lines.join('\n') + '\n';
}

export function generateKernel(variant: KernelVariant, config: ConvBNConfig): GeneratedKernel {
  // Only numbers validated by normalizeConfig may reach WGSL source.
  const c = toConfig(config);
  // Kernels read NCHW and pad with zeros; other layouts and padding modes run kernelConfig(config) between host transforms.
  if (c.paddingMode !== 'zeros') throw new Error(`generateKernel: paddingMode '${c.paddingMode}' has no kernels; generate for kernelConfig(config)`);
  if (c.layout !== 'NCHW') throw new Error(`generateKernel: layout '${c.layout}' has no kernels; generate for kernelConfig(config)`);
  checkFlags(variant);
  const spec: KernelKindSpec = KERNELS[variant.kind];
  const expansion = spec.expand?.(variant, c);
  if (spec.grid.kind === 'tiles' && !expansion) throw new Error(`${variant.kind}: a tiles grid needs an expansion`);
  const dispatch = dispatchFor(expansion && spec.grid.kind === 'tiles' ? expansion.workgroups : gridExtent(spec, c).workgroups);
  const body = applyInserts(TEMPLATES[spec.template], expansion?.inserts ?? {}, variant.kind);
  const code = `${constantsHeader(variant, c, dispatch[0], expansion)}\n${TEMPLATES.common}\n${body}`;
  const reflected = reflectShader(code, ENTRY_POINT);
  const workgroupSize = expansion?.workgroupSize ?? spec.workgroupSize;
  if (reflected.workgroupSize[0] * reflected.workgroupSize[1] * reflected.workgroupSize[2] !== workgroupSize) {
    throw new Error(`${variant.kind}: reflected workgroup size ${reflected.workgroupSize} != ${workgroupSize}`);
  }
  const bindings = reflected.bindings.map((b) => {
    const elements = bindingElements(b.name, c);
    return { ...b, elements, bytes: elements * 4 };
  });
  const key = kernelKey(variant, c);
  const flagPart = [
    ...spec.flags.filter((f) => variant.flags[f]).map((f) => f.toLowerCase()),
    ...(spec.params ?? []).map((p) => `${p.toLowerCase().replace(/_/g, '')}${variant.params?.[p]}`),
  ].join('-');
  const id = `${variant.kind}${flagPart ? `.${flagPart}` : ''}.${shortId(key)}`;
  return { id, key, variant, config: c, code, entryPoint: ENTRY_POINT, workgroupSize: reflected.workgroupSize, dispatch, bindings };
}
