/**
 * Seeded randomness shared by the CLI's examples, the demo, the tests and the
 * benchmarks: the same seed gives the same sequence everywhere.
 */

/** Uniform in [0, 1). */
export type Rng = () => number;

/** mulberry32: tiny and fast; good enough for synthetic data, test inputs and weight init. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal (Box-Muller). */
export function normal(rng: Rng): number {
  const u = 1 - rng(); // (0, 1]: the log stays finite
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}
