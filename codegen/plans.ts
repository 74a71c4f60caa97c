/**
 * What each mode runs, as data: the kernels of forward and backward in order,
 * which buffer role each WGSL binding is bound to, and what forward keeps for
 * backward. Runtimes execute these; `convbn gen` generates their kernels.
 */
import type { ConvBNConfig, Mode } from './config.js';
import { tensorSizes } from './config.js';
import type { KernelVariant } from './kernels.js';

/** Persistent roles live with the layer; step roles are allocated per step. */
export const PERSISTENT_ROLES = ['weight', 'channels', 'foldedWeight', 'foldedChannels'] as const;
export const STEP_ROLES = ['x', 'y', 'z', 'stats', 'gradY', 'gradZ', 'gradX', 'gradWeight', 'channelGrads'] as const;
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

const step = (kind: KernelVariant['kind'], flags: Record<string, boolean>, bind: Record<string, Role>): PlanStep => ({
  variant: { kind, flags },
  bind,
});

/** One weight per output channel: train mode's weight gradient needs the cancellation-free form. */
export function hasScalarWeights(c: ConvBNConfig): boolean {
  return (c.Cin / c.groups) * c.kH * c.kW === 1;
}

/** conv -> BN (batch or running stats) as two ops; the conv output z is kept for backward. */
function bnPlan(batch: boolean, recompute: boolean, scalarWeights: boolean): ModePlan {
  const conv = step('conv_forward', { TUNE: false }, { x: 'x', weight: 'weight', channels: 'channels', y: 'z' });
  const backward = [
    step('bn_grad_reduce', { BATCH: batch },
      { gradOut: 'gradY', z: 'z', channels: 'channels', stats: 'stats', channelGrads: 'channelGrads' }),
    step('bn_grad_apply', { BATCH: batch },
      { gradOut: 'gradY', z: 'z', channels: 'channels', stats: 'stats', channelGrads: 'channelGrads', gradZ: 'gradZ' }),
    step('conv_dgrad', { TUNE: false }, { gradOut: 'gradZ', weight: 'weight', channels: 'channels', gradX: 'gradX' }),
    batch && scalarWeights
      ? step('train_wgrad_scalar', {}, { x: 'x', gradOut: 'gradY', channels: 'channels', stats: 'stats', gradWeight: 'gradWeight' })
      : step('conv_wgrad', {}, { x: 'x', gradOut: 'gradZ', gradWeight: 'gradWeight' }),
  ];
  return {
    forward: [
      conv,
      step('bn_stats', { BATCH: batch }, { z: 'z', channels: 'channels', stats: 'stats' }),
      step('bn_apply', {}, { z: 'z', channels: 'channels', stats: 'stats', y: 'y' }),
    ],
    backward: recompute ? [conv, ...backward] : backward,
    held: recompute ? ['x', 'stats'] : ['x', 'z', 'stats'],
    output: 'y',
  };
}

/** One conv with BN folded into the weights: on the fly (tune) or stored (deploy). Backward needs only x. */
function foldedPlan(tune: boolean): ModePlan {
  const weight: Role = tune ? 'weight' : 'foldedWeight';
  const channels: Role = tune ? 'channels' : 'foldedChannels';
  return {
    forward: [step('conv_forward', { TUNE: tune }, { x: 'x', weight, channels, y: 'y' })],
    backward: [
      step('conv_dgrad', { TUNE: tune }, { gradOut: 'gradY', weight, channels, gradX: 'gradX' }),
      step('conv_wgrad', {}, { x: 'x', gradOut: 'gradY', gradWeight: 'gradWeight' }),
      step('folded_grads', { TUNE: tune },
        { gradOut: 'gradY', weight, channels, gradWeight: 'gradWeight', channelGrads: 'channelGrads' }),
    ],
    held: ['x'],
    output: 'y',
  };
}

export interface PlanOptions {
  /** train only: keep x and the batch statistics, recompute the conv in backward. */
  readonly recompute?: boolean;
}

/** The one place that picks kernels for a mode and a config. */
export function planFor(mode: Mode, c: ConvBNConfig, options: PlanOptions = {}): ModePlan {
  switch (mode) {
    case 'train': return bnPlan(true, options.recompute ?? false, hasScalarWeights(c));
    case 'eval': return bnPlan(false, false, hasScalarWeights(c));
    case 'tune': return foldedPlan(true);
    case 'deploy': return foldedPlan(false);
  }
}

/** Every distinct kernel variant any mode can run on this config: a layer's full kernel set. */
export function allVariants(c: ConvBNConfig): KernelVariant[] {
  const seen = new Map<string, KernelVariant>();
  for (const mode of ['train', 'eval', 'tune', 'deploy'] as const) {
    for (const recompute of [false, true]) {
      const plan = planFor(mode, c, { recompute });
      for (const s of [...plan.forward, ...plan.backward]) {
        seen.set(JSON.stringify([s.variant.kind, Object.entries(s.variant.flags).sort()]), s.variant);
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
  }
}
