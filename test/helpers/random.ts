/**
 * Seeded randomness for tests: a PRNG, float32 tensors, and valid ConvBN
 * configs and parameters that reach the awkward corners (asymmetric and
 * oversized padding, dilation, groups, depthwise multipliers, tiny sizes).
 */
import {
  normalizeConfig, outputShape, tensorSizes,
  type ConvBNConfig, type ConvBNConfigInput, type PaddingInput,
} from '../../codegen/config.js';
import type { ConvBNParamsInput } from '../../runtime/types.js';
import { normal, type Rng } from '../../runtime/random.js';

export { mulberry32, type Rng } from '../../runtime/random.js';

/** Integer in [lo, hi], both inclusive. */
export function randomInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

/** Standard normal (Box-Muller). */
export const randomNormal = normal;

/** n values ~ N(0, scale^2), stored as float32 (so every value is float32-representable). */
export function randomTensor(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = randomNormal(rng) * scale;
  return out;
}

export interface RandomConfigOptions {
  /** Upper bound on the element count of x and of y (default 5000). */
  maxElements?: number;
  /** Upper bound on H and W (default 12). */
  maxSpatial?: number;
}

function randomPadding(rng: Rng, kH: number, kW: number, dH: number, dW: number): PaddingInput {
  // Up to one row/column past the kernel's reach, so some outputs see only padding.
  const padUpTo = (k: number, d: number): number => randomInt(rng, 0, d * (k - 1) + 1);
  const form = rng();
  if (form < 0.6) return [padUpTo(kH, dH), padUpTo(kH, dH), padUpTo(kW, dW), padUpTo(kW, dW)];
  if (form < 0.75) return [padUpTo(kH, dH), padUpTo(kW, dW)];
  if (form < 0.85) return 'same';
  if (form < 0.95) return 'valid';
  return randomInt(rng, 0, 2);
}

/** Channels and groups: plain, grouped, depthwise, or depthwise with a multiplier (Cout = m * Cin). */
function randomChannels(rng: Rng): { Cin: number; Cout: number; groups: number } {
  const kind = rng();
  if (kind < 0.35) return { Cin: randomInt(rng, 1, 5), Cout: randomInt(rng, 1, 5), groups: 1 };
  if (kind < 0.6) {
    const groups = randomInt(rng, 2, 3);
    return { Cin: groups * randomInt(rng, 1, 3), Cout: groups * randomInt(rng, 1, 3), groups };
  }
  const Cin = randomInt(rng, 1, 6);
  if (kind < 0.8) return { Cin, Cout: Cin, groups: Cin };
  return { Cin, Cout: Cin * randomInt(rng, 2, 3), groups: Cin };
}

/**
 * A valid config input drawn across the config space, small enough for direct
 * float64 loops. Always has at least 2 values per channel (train mode needs an
 * unbiased variance).
 */
export function randomValidConfig(rng: Rng, opts: RandomConfigOptions = {}): ConvBNConfigInput {
  const maxElements = opts.maxElements ?? 5000;
  const maxSpatial = opts.maxSpatial ?? 12;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const kH = randomInt(rng, 1, 5);
    const kW = rng() < 0.3 ? kH : randomInt(rng, 1, 5);
    const dilation: [number, number] = [randomInt(rng, 1, 3), randomInt(rng, 1, 3)];
    const input: ConvBNConfigInput = {
      N: randomInt(rng, 1, 3),
      ...randomChannels(rng),
      H: randomInt(rng, 1, maxSpatial),
      W: randomInt(rng, 1, maxSpatial),
      kernel: [kH, kW],
      stride: [randomInt(rng, 1, 3), randomInt(rng, 1, 3)],
      padding: randomPadding(rng, kH, kW, dilation[0], dilation[1]),
      dilation,
      bias: rng() < 0.5,
      eps: pick(rng, [1e-5, 1e-3, 0.1]),
      momentum: pick(rng, [0, 0.01, 0.1, 0.5, 1]),
    };
    let config: ConvBNConfig;
    try {
      config = normalizeConfig(input);
    } catch {
      continue; // e.g. the kernel does not fit: draw again
    }
    const sizes = tensorSizes(config);
    const out = outputShape(config);
    if (sizes.x > maxElements || sizes.y > maxElements) continue;
    if (out.N * out.H * out.W < 2) continue;
    return input;
  }
  throw new Error('randomValidConfig: no valid config in 1000 draws; loosen the options');
}

/**
 * Parameters for `config`: weights scaled by fan-in, running variance in
 * [0.25, 2.25), and with probability 1/3 some gamma channels exactly 0
 * (zero-init gamma, as in ResNet blocks).
 */
export function randomParams(rng: Rng, config: ConvBNConfig): ConvBNParamsInput {
  const sizes = tensorSizes(config);
  const fanIn = (config.Cin / config.groups) * config.kH * config.kW;
  const gamma = randomTensor(rng, config.Cout, 1);
  if (rng() < 1 / 3) {
    for (let o = 0; o < config.Cout; o++) if (rng() < 0.5) gamma[o] = 0;
  }
  const runningVar = new Float32Array(config.Cout);
  for (let o = 0; o < config.Cout; o++) runningVar[o] = 0.25 + 2 * rng();
  return {
    weight: randomTensor(rng, sizes.weight, 1 / Math.sqrt(fanIn)),
    ...(config.bias ? { bias: randomTensor(rng, config.Cout, 0.5) } : {}),
    gamma,
    beta: randomTensor(rng, config.Cout, 0.5),
    runningMean: randomTensor(rng, config.Cout, 0.5),
    runningVar,
  };
}
