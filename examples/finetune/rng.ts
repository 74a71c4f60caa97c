/** Seeded randomness for the demo: the same seed gives the same data, weights and batches. */

import type { Rng } from '../../runtime/random.js';

export { mulberry32, normal, type Rng } from '../../runtime/random.js';

/** Uniform in [lo, hi). */
export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/** Integer in [0, n). */
export function randomIndex(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** A child seed derived from a parent seed and a label, so streams stay independent. */
export function deriveSeed(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
