/**
 * What each mode runs, as data: the kernels of forward and backward in order,
 * which buffer role each WGSL binding is bound to, and what forward keeps for
 * backward. Runtimes execute these; `convbn gen` generates their kernels.
 */
import type { ConvBNConfig, Mode } from './config.js';
import { outputShape, tensorSizes, valuesPerChannel } from './config.js';
import { forwardStatsTiles } from './tiles/forward.js';
import { igemmStatsTiles } from './tiles/igemm.js';
import { partialStride, wgradChunks, type KernelVariant } from './kernels.js';
import type { DgradChoice, ForwardChoice, KernelChoice, WgradChoice } from './tuning/choice.js';
import { selectKernels, type KernelTarget } from './tuning/select.js';

/** Persistent roles live with the layer; step roles are allocated per step. */
export const PERSISTENT_ROLES = ['weight', 'channels', 'foldedWeight', 'foldedChannels'] as const;
/** `partials`: the chunked weight gradient's per-chunk sums (scratch within backward). */
export const STEP_ROLES = ['x', 'y', 'z', 'stats', 'gradY', 'gradZ', 'gradX', 'gradWeight', 'channelGrads', 'partials'] as const;
export type PersistentRole = (typeof PERSISTENT_ROLES)[number];
export type StepRole = (typeof STEP_ROLES)[number];
export type Role = PersistentRole | StepRole;

export interface PlanStep {
  readonly variant: KernelVariant;
  /** WGSL binding name -> buffer role. */
  readonly bind: Readonly<Record<string, Role>>;
}

export interface ModePlan {
  readonly forward: readonly PlanStep[];
  readonly backward: readonly PlanStep[];
  /** Step roles kept from forward to backward; every other forward buffer is released. */
  readonly held: readonly StepRole[];
  /** The role forward returns. */
  readonly output: StepRole;
}

const step = (
  kind: KernelVariant['kind'], flags: Record<string, boolean>, bind: Record<string, Role>, params?: Record<string, number>,
): PlanStep => ({ variant: params ? { kind, flags, params } : { kind, flags }, bind });

/** Kernel offsets along one axis that read inside the input for at least one output position. */
function liveTaps(size: number, out: number, k: number, stride: number, dilation: number, padBefore: number): number {
  let live = 0;
  for (let t = 0; t < k; t++) {
    // First output position whose read index t*dilation - padBefore + o*stride is >= 0.
    const first = Math.max(0, Math.ceil((padBefore - t * dilation) / stride));
    if (first < out && first * stride - padBefore + t * dilation < size) live++;
  }
  return live;
}

/**
 * At most one input value per output position and channel (one input channel
 * per group, at most one kernel tap that ever reads inside the image): train
 * mode's weight gradient then needs the cancellation-free form.
 */
export function hasScalarWeights(c: ConvBNConfig): boolean {
  if (c.Cin / c.groups !== 1) return false;
  const out = outputShape(c);
  return liveTaps(c.H, out.H, c.kH, c.strideH, c.dilationH, c.padTop)
    * liveTaps(c.W, out.W, c.kW, c.strideW, c.dilationW, c.padLeft) <= 1;
}

/** The input indices along one axis that some kernel tap reads for some output position. */
function liveInputs(size: number, out: number, k: number, stride: number, dilation: number, padBefore: number): number[] {
  const live = new Set<number>();
  for (let o = 0; o < out; o++) {
    for (let t = 0; t < k; t++) {
      const i = o * stride - padBefore + t * dilation;
      if (i >= 0 && i < size) live.add(i);
    }
  }
  return [...live];
}

/**
 * The one input position (ih, iw) a train-mode batch reads, per group, when
 * that is all it reads: one image, one input channel per group, one live
 * pixel. BN's statistics then make y invariant to scaling that value, so its
 * gradient is an eps-sized rest that float32 sums cannot resolve: runtimes
 * replace it by its closed form (runtime/scalar-input.ts). Undefined otherwise.
 */
export function scalarInputPosition(c: ConvBNConfig): { ih: number; iw: number } | undefined {
  if (c.N !== 1 || c.Cin / c.groups !== 1) return undefined;
  const out = outputShape(c);
  const rows = liveInputs(c.H, out.H, c.kH, c.strideH, c.dilationH, c.padTop);
  const cols = liveInputs(c.W, out.W, c.kW, c.strideW, c.dilationW, c.padLeft);
  return rows.length === 1 && cols.length === 1 ? { ih: rows[0], iw: cols[0] } : undefined;
}

const tileParams = (tile: object): Record<string, number> => ({ ...(tile as Record<string, number>) });

/** The forward conv: x (* W') + b' into `output`; `statsScratch` (reg, wg): also its per-tile statistics there. */
function convStep(
  choice: ForwardChoice, tune: boolean, weight: Role, channels: Role, output: StepRole, statsScratch?: StepRole,
): PlanStep {
  const bind = { x: 'x', weight, channels, y: output } as const;
  switch (choice.algo) {
    case 'direct': return step('conv_forward', { TUNE: tune }, bind);
    case 'reg': return step('conv_fwd_reg', { TUNE: tune, STATS: statsScratch !== undefined },
      statsScratch ? { ...bind, statsScratch } : bind, tileParams(choice.tile));
    case 'wg': return step('conv_fwd_wg', { TUNE: tune, STATS: statsScratch !== undefined },
      statsScratch ? { ...bind, statsScratch } : bind, tileParams(choice.tile));
  }
}

function dgradStep(choice: DgradChoice, tune: boolean, gradOut: StepRole, weight: Role, channels: Role): PlanStep {
  const bind = { gradOut, weight, channels, gradX: 'gradX' } as const;
  switch (choice.algo) {
    case 'direct': return step('conv_dgrad', { TUNE: tune }, bind);
    case 'reg': return step('conv_dgrad_reg', { TUNE: tune }, bind, tileParams(choice.tile));
    case 'wg': return step('conv_dgrad_wg', { TUNE: tune }, bind, tileParams(choice.tile));
  }
}

/**
 * The weight gradient from x and `gradOut`. Chunked kinds (reg, wg) write
 * partial sums that wgrad_reduce adds in order; with `fold` (tune, deploy)
 * that pass also finishes the per-channel gradients (folded_grads' work, and
 * sum(dy) comes from the partials instead of another pass over gradOut).
 */
function wgradSteps(
  choice: WgradChoice, gradOut: StepRole, fold: { tune: boolean; weight: Role; channels: Role } | undefined,
): PlanStep[] {
  if (choice.algo === 'direct') {
    const steps = [step('conv_wgrad', {}, { x: 'x', gradOut, gradWeight: 'gradWeight' })];
    if (fold) {
      steps.push(step('folded_grads', { TUNE: fold.tune },
        { gradOut, weight: fold.weight, channels: fold.channels, gradWeight: 'gradWeight', channelGrads: 'channelGrads' }));
    }
    return steps;
  }
  const pass1 = choice.algo === 'reg'
    ? step('conv_wgrad_reg', {}, { x: 'x', gradOut, partials: 'partials' }, tileParams(choice.tile))
    : step('conv_wgrad_wg', {}, { x: 'x', gradOut, partials: 'partials' }, tileParams(choice.tile));
  const reduce = step('wgrad_reduce', { TUNE: fold?.tune ?? false, FOLD: fold !== undefined }, {
    partials: 'partials', weight: fold?.weight ?? 'weight', channels: fold?.channels ?? 'channels',
    gradWeight: 'gradWeight', channelGrads: 'channelGrads',
  });
  return [pass1, reduce];
}

/** The partials per channel a STATS forward of `choice` writes, or undefined where it cannot. */
function statsTiles(choice: ForwardChoice, c: ConvBNConfig): number | undefined {
  switch (choice.algo) {
    case 'direct': return undefined;
    case 'reg': return forwardStatsTiles(c, choice.tile);
    case 'wg': return igemmStatsTiles(c, choice.tile);
  }
}

/** Train's conv and batch statistics from its tile partials, or undefined where the forward cannot write them. */
function tileStatsSteps(choice: ForwardChoice, c: ConvBNConfig): PlanStep[] | undefined {
  const tiles = statsTiles(choice, c);
  if (tiles === undefined) return undefined;
  return [
    convStep(choice, false, 'weight', 'channels', 'z', 'y'),
    step('bn_stats_tiles', {}, { statsScratch: 'y', channels: 'channels', stats: 'stats' }, { TILES: tiles }),
  ];
}

/**
 * conv -> BN (batch or running stats) as two ops; the conv output z is kept for backward.
 * Train with a tiled forward (reg or wg) whose tile partials fit: the conv's epilogue also writes
 * per-tile statistics (into y, free until bn_apply) and bn_stats_tiles merges them, instead of
 * bn_stats reading z again. A recompute in backward runs the plain conv.
 */
function bnPlan(k: KernelChoice, batch: boolean, recompute: boolean, scalarWeights: boolean, c: ConvBNConfig, pair: boolean): ModePlan {
  const conv = convStep(k.forward, false, 'weight', 'channels', 'z');
  const statsSteps = (batch ? tileStatsSteps(k.forward, c) : undefined)
    ?? [conv, step('bn_stats', { BATCH: batch }, { z: 'z', channels: 'channels', stats: 'stats' })];
  const backward = [
    step('bn_grad_reduce', { BATCH: batch },
      { gradOut: 'gradY', z: 'z', channels: 'channels', stats: 'stats', channelGrads: 'channelGrads' }),
    step('bn_grad_apply', { BATCH: batch, PAIR: batch && pair },
      { gradOut: 'gradY', z: 'z', channels: 'channels', stats: 'stats', channelGrads: 'channelGrads', gradZ: 'gradZ' }),
    dgradStep(k.dgrad, false, 'gradZ', 'weight', 'channels'),
    ...(batch && scalarWeights
      ? [step('train_wgrad_scalar', {}, {
        x: 'x', gradOut: 'gradY', channels: 'channels', stats: 'stats', channelGrads: 'channelGrads', gradWeight: 'gradWeight',
      })]
      : wgradSteps(k.wgrad, 'gradZ', undefined)),
  ];
  return {
    forward: [
      ...statsSteps,
      step('bn_apply', {}, { z: 'z', channels: 'channels', stats: 'stats', y: 'y' }),
    ],
    backward: recompute ? [conv, ...backward] : backward,
    held: recompute ? ['x', 'stats'] : ['x', 'z', 'stats'],
    output: 'y',
  };
}

/** One conv with BN folded into the weights: on the fly (tune) or stored (deploy). Backward needs only x. */
function foldedPlan(k: KernelChoice, tune: boolean): ModePlan {
  const weight: Role = tune ? 'weight' : 'foldedWeight';
  const channels: Role = tune ? 'channels' : 'foldedChannels';
  return {
    forward: [convStep(k.forward, tune, weight, channels, 'y')],
    backward: [
      dgradStep(k.dgrad, tune, 'gradY', weight, channels),
      ...wgradSteps(k.wgrad, 'gradY', { tune, weight, channels }),
    ],
    held: ['x'],
    output: 'y',
  };
}

export interface PlanOptions {
  /** train only: keep x and the batch statistics, recompute the conv in backward. */
  readonly recompute?: boolean;
  /** Which implementation each conv pass uses; default: selectKernels(c, target). */
  readonly kernels?: KernelChoice;
  /** The adapter (and its tuning cache) the plan is for; default: a CPU rasteriser. */
  readonly target?: KernelTarget;
  /**
   * train, for a chunk of a batch split along N (runtime/webgpu/split.ts): values per channel in the
   * whole batch, which its batch statistics are over; default: the config's own (N * Hout * Wout).
   */
  readonly batchValues?: number;
}

/** The one place that picks kernels for a mode and a config (the conv implementations via selectKernels). */
export function planFor(mode: Mode, c: ConvBNConfig, options: PlanOptions = {}): ModePlan {
  const k = options.kernels ?? selectKernels(c, options.target);
  switch (mode) {
    case 'train': {
      const pair = (options.batchValues ?? valuesPerChannel(c)) === 2;
      return bnPlan(k, true, options.recompute ?? false, hasScalarWeights(c), c, pair);
    }
    case 'eval': return bnPlan(k, false, false, hasScalarWeights(c), c, false);
    case 'tune': return foldedPlan(k, true);
    case 'deploy': return foldedPlan(k, false);
  }
}

/** A backward pass without the input gradient: the steps that write gradX (the dgrad) left out. */
export function withoutInputGrad(steps: readonly PlanStep[]): PlanStep[] {
  return steps.filter((s) => !Object.values(s.bind).includes('gradX'));
}

/** Every distinct kernel variant any mode can run on this config: a layer's full kernel set. */
export function allVariants(c: ConvBNConfig, options: Omit<PlanOptions, 'recompute'> = {}): KernelVariant[] {
  const k = options.kernels ?? selectKernels(c, options.target);
  const seen = new Map<string, KernelVariant>();
  for (const mode of ['train', 'eval', 'tune', 'deploy'] as const) {
    for (const recompute of [false, true]) {
      const plan = planFor(mode, c, { recompute, kernels: k });
      for (const s of [...plan.forward, ...plan.backward]) {
        seen.set(JSON.stringify([s.variant.kind, Object.entries(s.variant.flags).sort(), Object.entries(s.variant.params ?? {}).sort()]), s.variant);
      }
    }
  }
  return [...seen.values()];
}

/** Elements of the buffer behind a role. */
export function roleElements(role: Role, c: ConvBNConfig): number {
  const s = tensorSizes(c);
  switch (role) {
    case 'x': case 'gradX': return s.x;
    case 'weight': case 'foldedWeight': case 'gradWeight': return s.weight;
    case 'y': case 'z': case 'gradY': case 'gradZ': return s.y;
    case 'channels': case 'foldedChannels': return 5 * c.Cout;
    case 'stats': return 2 * c.Cout;
    case 'channelGrads': return 3 * c.Cout;
    case 'partials': return wgradChunks(c) * partialStride(c);
  }
}
