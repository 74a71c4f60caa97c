/**
 * Splitting a layer along the batch when its tensors exceed the device's
 * buffer limits. Each chunk is an ordinary config with a smaller N, so its
 * kernels come from the same generator and pipeline cache; only what crosses
 * images (sums over the batch, batch statistics) is combined on the host.
 */
import { normalizeConfig, toInput, type ConvBNConfig } from '../../codegen/config.js';
import { KERNELS, type KernelKind, type KernelKindSpec } from '../../codegen/kernels.js';
import type { ModePlan, PlanStep, StepRole } from '../../codegen/plans.js';
import { oversizedRole, type BufferLimits } from './limits.js';

export interface Chunk {
  /** Index of the chunk's first image in the layer's batch. */
  readonly start: number;
  /** The layer's config with N = this chunk's image count. */
  readonly config: ConvBNConfig;
}

export function withBatch(c: ConvBNConfig, N: number): ConvBNConfig {
  return N === c.N ? c : normalizeConfig({ ...toInput(c), N });
}

/**
 * The batch in as few chunks as the limits allow, their sizes as even as
 * possible (so at most two distinct chunk configs, and two sets of pipelines,
 * and no needlessly tiny last chunk). `roles(config)`: the step buffers a
 * config's plan uses. The caller has checked that one image fits.
 */
export function batchChunks(c: ConvBNConfig, limits: BufferLimits, roles: (config: ConvBNConfig) => readonly StepRole[]): Chunk[] {
  const over = (n: number): boolean => {
    const config = withBatch(c, n);
    return oversizedRole(config, limits, roles(config)) !== undefined;
  };
  if (!over(c.N)) return [{ start: 0, config: c }];
  // Largest n with every step buffer within the limit; sizes grow with n, so bisect.
  let lo = 1;
  let hi = c.N - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (over(mid)) hi = mid - 1;
    else lo = mid;
  }
  const count = Math.ceil(c.N / lo);
  const base = Math.floor(c.N / count);
  const larger = c.N % count;
  const configs = new Map<number, ConvBNConfig>();
  const chunks: Chunk[] = [];
  for (let i = 0, start = 0; i < count; i++) {
    const n = base + (i < larger ? 1 : 0);
    if (!configs.has(n)) configs.set(n, withBatch(c, n));
    chunks.push({ start, config: configs.get(n)! });
    start += n;
  }
  return chunks;
}

/**
 * 'bn_stats' and 'bn_grad_reduce' with BATCH, and 'bn_stats_tiles' (train's statistics from the forward's
 * tile partials), reduce over the whole batch: chunked runs combine them on the host.
 */
export function isBatchReduction(step: PlanStep): boolean {
  if (step.variant.kind === 'bn_stats_tiles') return true;
  return (step.variant.kind === 'bn_stats' || step.variant.kind === 'bn_grad_reduce') && step.variant.flags.BATCH === true;
}

/**
 * Per-channel kernels whose outputs are per-channel copies or plain sums over
 * the batch, which chunked runs add on the host: those whose spec says
 * `summable`, and bn_stats / bn_grad_reduce without BATCH (eval's copy of the
 * running stats, and plain sums). A per-channel kernel not marked so may mix
 * images in a way chunking would get wrong (a centring by its own chunk's mean,
 * say), so a plan containing one is refused rather than split.
 */
function summable(step: PlanStep): boolean {
  const spec: KernelKindSpec = KERNELS[step.variant.kind];
  if (spec.grid.kind !== 'channels' || spec.summable === true) return true;
  return (step.variant.kind === 'bn_stats' || step.variant.kind === 'bn_grad_reduce') && step.variant.flags.BATCH !== true;
}

/**
 * The first step of `plan` that cannot run chunk by chunk, or undefined.
 * Allowed: per-element kernels, summable per-channel kernels, and at most one
 * batch reduction per pass of the kind the layer combines on the host
 * (forward: bn_stats, backward: bn_grad_reduce).
 */
export function unsplittableStep(plan: ModePlan): PlanStep | undefined {
  const passes: [readonly PlanStep[], readonly KernelKind[]][] = [
    [plan.forward, ['bn_stats', 'bn_stats_tiles']], [plan.backward, ['bn_grad_reduce']],
  ];
  for (const [steps, combinable] of passes) {
    let reductions = 0;
    for (const s of steps) {
      if (isBatchReduction(s)) {
        if (!combinable.includes(s.variant.kind) || ++reductions > 1) return s;
      } else if (!summable(s)) {
        return s;
      }
    }
  }
  return undefined;
}

/** Batch mean and biased variance per channel from each chunk's (count, mean, 1/sqrt(var + eps)). */
export function combineBatchStats(
  parts: readonly { count: number; stats: Float32Array }[], channels: number, eps: number,
): { mean: Float64Array; variance: Float64Array; count: number } {
  const count = parts.reduce((n, p) => n + p.count, 0);
  const mean = new Float64Array(channels);
  const variance = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (const p of parts) sum += p.count * p.stats[c];
    mean[c] = sum / count;
    // Chan et al.: sum of the chunks' M2 plus their spread around the batch mean.
    // Each chunk's variance is recovered from its invstd; the rounding this adds is
    // relative to var + eps, which is all that normalisation depends on.
    let m2 = 0;
    for (const p of parts) {
      const invStd = p.stats[channels + c];
      const v = Math.max(0, 1 / (invStd * invStd) - eps);
      const d = p.stats[c] - mean[c];
      m2 += p.count * (v + d * d);
    }
    variance[c] = m2 / count;
  }
  return { mean, variance, count };
}
