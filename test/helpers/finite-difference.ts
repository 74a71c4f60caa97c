/** Central finite differences of a float64 loss, for gradient checks of the oracle. */
import { randomInt, type Rng } from './random.js';

/** Central differences of loss at up to `samples` coordinates of `values` (all when it is small). */
export function finiteDifference(
  rng: Rng, values: Float64Array, loss: () => number, samples = 24,
): { indices: number[]; grads: number[] } {
  const all = Array.from(values.keys());
  const indices = values.length <= samples ? all : Array.from({ length: samples }, () => randomInt(rng, 0, values.length - 1));
  const grads = indices.map((i) => {
    const saved = values[i];
    const h = 1e-6 * Math.max(1, Math.abs(saved));
    values[i] = saved + h;
    const up = loss();
    values[i] = saved - h;
    const down = loss();
    values[i] = saved;
    return (up - down) / (2 * h);
  });
  return { indices, grads };
}


/** L = sum(y * grad_y): the loss whose gradients the finite differences check. */
export function dotY(y: ArrayLike<number>, gy: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * gy[i];
  return s;
}
