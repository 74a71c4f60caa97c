/**
 * Synthetic image tasks, generated from a seed: each image is a patch of
 * stripes (a grating under a soft round window at a random place), and the
 * class is the stripes' orientation. The fine-tuning task is shifted: eight
 * orientations, 22.5 degrees apart and offset from the pretraining ones (new
 * classes, so the head is re-initialised), in new colours, with more noise.
 */
import { normal, randomIndex, uniform, type Rng } from './rng.js';

export type RGB = readonly [number, number, number];

export interface TaskSpec {
  readonly name: string;
  readonly description: string;
  /** Stripe orientation of each class, in degrees. */
  readonly anglesDeg: readonly number[];
  /** [stripe colour, background colour] pairs; each image picks one. */
  readonly palettes: readonly (readonly [RGB, RGB])[];
  /** Standard deviation of the per-pixel Gaussian noise. */
  readonly noise: number;
  /** Random orientation jitter, degrees (uniform in +-jitter). */
  readonly jitterDeg: number;
}

export const PRETRAIN_TASK: TaskSpec = {
  name: 'warm stripes at 0/45/90/135 degrees',
  description: 'orientation of warm-coloured stripes (red, orange, brown on dark backgrounds)',
  anglesDeg: [0, 45, 90, 135],
  palettes: [
    [[0.95, 0.25, 0.15], [0.15, 0.05, 0.05]],
    [[1.0, 0.6, 0.1], [0.2, 0.1, 0.0]],
    [[0.8, 0.5, 0.3], [0.1, 0.1, 0.1]],
  ],
  noise: 0.12,
  jitterDeg: 8,
};

export const FINETUNE_TASK: TaskSpec = {
  name: 'cool stripes in 8 orientations, 11.25 + 22.5k degrees',
  description: 'new classes: 8 orientations 22.5 degrees apart, offset from the pretraining ones, in cool colours (blue, teal, green on light backgrounds), noisier',
  anglesDeg: [11.25, 33.75, 56.25, 78.75, 101.25, 123.75, 146.25, 168.75],
  palettes: [
    [[0.1, 0.3, 0.9], [0.85, 0.9, 0.95]],
    [[0.0, 0.6, 0.6], [0.9, 0.85, 0.8]],
    [[0.2, 0.7, 0.2], [0.95, 0.95, 0.85]],
  ],
  noise: 0.3,
  jitterDeg: 5,
};

export interface Batch {
  /** NCHW, 3 channels, centred around 0. */
  readonly x: Float32Array;
  readonly labels: Int32Array;
}

/** One image of class `label` into `out` at `offset` (3 x size x size, CHW). */
function drawImage(task: TaskSpec, rng: Rng, size: number, label: number, out: Float32Array, offset: number): void {
  const theta = ((task.anglesDeg[label] + uniform(rng, -task.jitterDeg, task.jitterDeg)) * Math.PI) / 180;
  // Stripes run along theta, so the wave varies across it.
  const nx = -Math.sin(theta);
  const ny = Math.cos(theta);
  const freq = uniform(rng, 0.14, 0.3); // cycles per pixel
  const phase = uniform(rng, 0, 2 * Math.PI);
  const contrast = uniform(rng, 0.6, 1);
  const cx = uniform(rng, 0.3, 0.7) * size;
  const cy = uniform(rng, 0.3, 0.7) * size;
  const radius = uniform(rng, 0.3, 0.45) * size;
  const [fg, bg] = task.palettes[randomIndex(rng, task.palettes.length)];
  const plane = size * size;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const dx = px + 0.5 - cx;
      const dy = py + 0.5 - cy;
      const window = Math.exp(-(dx * dx + dy * dy) / (2 * radius * radius));
      const wave = Math.cos(2 * Math.PI * freq * (dx * nx + dy * ny) + phase);
      const t = 0.5 + 0.5 * contrast * window * wave;
      for (let c = 0; c < 3; c++) {
        const value = bg[c] + (fg[c] - bg[c]) * t + task.noise * normal(rng);
        out[offset + c * plane + py * size + px] = value - 0.5;
      }
    }
  }
}

/** `n` images with balanced random labels. */
export function makeBatch(task: TaskSpec, rng: Rng, n: number, size: number): Batch {
  const classes = task.anglesDeg.length;
  const x = new Float32Array(n * 3 * size * size);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = randomIndex(rng, classes);
    drawImage(task, rng, size, labels[i], x, i * 3 * size * size);
  }
  return { x, labels };
}

/** A fixed held-out set: `batches` batches of `n` images. */
export function makeTestSet(task: TaskSpec, rng: Rng, batches: number, n: number, size: number): Batch[] {
  return Array.from({ length: batches }, () => makeBatch(task, rng, n, size));
}
