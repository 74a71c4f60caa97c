/**
 * Which kernel runs each part of a layer: one function decides for every
 * config, and every choice can be forced (tests run each path against the
 * oracle).
 */
import type { ConvBNConfig } from '../../codegen/config.js';
import { ConvBNInputError } from '../../codegen/errors.js';

/** forward conv and dgrad: 'scalar' generic loops; 'direct4' 4 out-channels x 8 pixels SIMD on packed input;
 * 'direct1' 1 out-channel x 16 pixels (depthwise and other narrow groups); 'gemm' 1x1 stride 1 unpadded:
 * direct4 on the unpacked tensor, each plane one long row. */
export type ConvPath = 'scalar' | 'direct4' | 'direct1' | 'gemm';
/** wgrad: 'scalar' generic loops (f64 sums); 'simd4' 4 out-channels x 2 taps; 'simd1' 1 out-channel x 4 taps;
 * 'nhwc' channels innermost (x, dz transposed): 4 out-channels x 8 in-channels per tap, partial sums per row chunk. */
export type WgradPath = 'scalar' | 'simd4' | 'simd1' | 'nhwc';

export interface KernelChoice {
  forward: ConvPath;
  dgrad: ConvPath;
  wgrad: WgradPath;
  /** direct paths: pack the input inside each conv task (per-thread scratch) when it fits, rather than in a pass before. */
  fusePack: boolean;
  /** Strided dgrad (direct paths): one stride-1 correlation per stride phase of gx rather than one over zero-inserted dz. */
  dgradPhases: boolean;
}

const CONV_PATHS: readonly ConvPath[] = ['scalar', 'direct4', 'direct1', 'gemm'];
const WGRAD_PATHS: readonly WgradPath[] = ['scalar', 'simd4', 'simd1', 'nhwc'];

/** 1x1, stride 1, no padding: the conv is a GEMM per image (Cout x Cin times Cin x H*W). */
export function isPointwise(c: ConvBNConfig): boolean {
  return c.kH === 1 && c.kW === 1 && c.strideH === 1 && c.strideW === 1 &&
    c.padTop === 0 && c.padBottom === 0 && c.padLeft === 0 && c.padRight === 0;
}

/** The nhwc wgrad keeps one partial gradient per image at least: it must stay small. */
function nhwcFits(c: ConvBNConfig): boolean {
  const part = c.groups * Math.ceil(c.Cout / c.groups / 4) * 4 * c.kH * c.kW * Math.ceil(c.Cin / c.groups / 8) * 8 * 4;
  return c.N * part <= (32 << 20);
}

/** The default choice for `c`, with any forced parts applied (a forced 'gemm' needs a pointwise conv). */
export function selectKernels(c: ConvBNConfig, force: Partial<KernelChoice> = {}): KernelChoice {
  const Cig = c.Cin / c.groups;
  const Cog = c.Cout / c.groups;
  const pointwise = isPointwise(c);
  const choice: KernelChoice = {
    // Forward: the conv has Cog outputs per group; dgrad is a conv with Cig outputs per group.
    forward: Cog >= 4 ? (pointwise ? 'gemm' : 'direct4') : 'direct1',
    // Three outputs (an RGB stem's dgrad) still run faster as direct4 with one idle lane than as direct1:
    // layer g's dgrad, 1 thread: 67 vs 82 ms.
    dgrad: Cig >= 3 ? (pointwise ? 'gemm' : 'direct4') : 'direct1',
    wgrad: Cog >= 4 ? (Cig >= 8 && nhwcFits(c) ? 'nhwc' : 'simd4') : 'simd1',
    fusePack: true,
    dgradPhases: true,
  };
  if (force === null || typeof force !== 'object') {
    throw new ConvBNInputError('kernels', force, 'must be an object { forward?, dgrad?, wgrad?, fusePack?, dgradPhases? }');
  }
  for (const part of ['forward', 'dgrad'] as const) {
    const v = force[part];
    if (v === undefined) continue;
    if (!CONV_PATHS.includes(v)) throw new ConvBNInputError(`kernels.${part}`, v, `must be one of ${CONV_PATHS.join(', ')}`);
    if (v === 'gemm' && !pointwise) {
      throw new ConvBNInputError(`kernels.${part}`, v, 'needs a 1x1 kernel with stride 1 and no padding');
    }
    choice[part] = v;
  }
  if (force.wgrad !== undefined) {
    if (!WGRAD_PATHS.includes(force.wgrad)) {
      throw new ConvBNInputError('kernels.wgrad', force.wgrad, `must be one of ${WGRAD_PATHS.join(', ')}`);
    }
    choice.wgrad = force.wgrad;
  }
  if (force.fusePack !== undefined) {
    if (typeof force.fusePack !== 'boolean') throw new ConvBNInputError('kernels.fusePack', force.fusePack, 'must be true or false');
    choice.fusePack = force.fusePack;
  }
  if (force.dgradPhases !== undefined) {
    if (typeof force.dgradPhases !== 'boolean') throw new ConvBNInputError('kernels.dgradPhases', force.dgradPhases, 'must be true or false');
    choice.dgradPhases = force.dgradPhases;
  }
  return choice;
}
