/**
 * The demo's training: pretrain in train mode (batch statistics), then
 * fine-tune the same starting point on a shifted task in eval, tune and
 * deploy modes with the same seed, batches and learning rate. The runs of one
 * comparison train in lockstep (step i of every run before step i + 1 of any,
 * in rotating order) so that a noisy host slows them alike.
 */
import type { BackendChoice, ConvBNParams, Engine, MemoryStats, Mode } from '../../runtime/index.js';
import { FINETUNE_TASK, makeBatch, makeTestSet, PRETRAIN_TASK, type Batch, type TaskSpec } from './data.js';
import { cloneState, ConvNet, initHead, initState, type ModelSpec, type ModelState, type NetGrads } from './model.js';
import { softmaxCrossEntropy } from './ops.js';
import { silentProgress, type Progress } from './progress.js';
import { deriveSeed, mulberry32, uniform } from './rng.js';

export interface DemoOptions {
  readonly backend: BackendChoice;
  readonly seed: number;
  readonly spec: ModelSpec;
  readonly pretrainSteps: number;
  readonly pretrainLr: number;
  /** Fine-tuning steps of every run. */
  readonly steps: number;
  /** The fine-tuning learning rate of the main comparison (one where eval trains well). */
  readonly lr: number;
  readonly momentum: number;
  /** Extra eval and deploy runs (options.steps long) at these learning rates (options.lr is covered by the main runs). */
  readonly sweepLrs: readonly number[];
  /** Held-out batches for test accuracy. */
  readonly testBatches: number;
  /**
   * After pretraining, each output channel's conv weights are multiplied by c
   * (log-uniform in [lo, hi]) and its running mean and variance by c and c^2.
   * Eval's function is unchanged (up to eps) and so are deploy's folded W',
   * b'; s = gamma / sqrt(var + eps) becomes s / c, which sets how differently
   * eval and deploy train (by s^2 per channel). [1, 1]: no change.
   */
  readonly bnScaleRange: readonly [number, number];
  /** Steps at the start of each run left out of the timing medians (pipeline compilation, warm-up). */
  readonly warmupSteps: number;
}

export const DEFAULT_OPTIONS: DemoOptions = {
  backend: 'auto',
  seed: 2024,
  spec: { batch: 32, size: 16, inChannels: 3, channels: [8, 16, 32] },
  pretrainSteps: 200,
  pretrainLr: 0.05,
  steps: 150,
  lr: 0.1,
  momentum: 0.9,
  sweepLrs: [0.003, 0.01, 0.03],
  testBatches: 8,
  bnScaleRange: [2, 16],
  warmupSteps: 3,
};

/** A short configuration for tests: the same code paths, seconds instead of minutes. */
export const QUICK_OPTIONS: DemoOptions = {
  ...DEFAULT_OPTIONS,
  spec: { batch: 16, size: 16, inChannels: 3, channels: [8, 16, 16] },
  pretrainSteps: 12,
  steps: 10,
  sweepLrs: [0.01],
  testBatches: 2,
  warmupSteps: 1,
};

export interface RunSpec {
  readonly label: string;
  readonly mode: Mode;
  readonly lr: number;
  /** Control run: every starting conv weight moved by one float32 ulp (in a seeded random direction). */
  readonly perturbed?: boolean;
}

export interface RunResult extends RunSpec {
  /** Training loss of every step (the batch's mean cross-entropy before the update). */
  readonly losses: number[];
  /** Training-batch accuracy of every step. */
  readonly accuracies: number[];
  /** Wall milliseconds of every step: forward, loss, backward, SGD update and upload. */
  readonly stepMs: number[];
  /** Of which awaiting the runtime's ConvBN forward and backward calls. */
  readonly convbnMs: number[];
  /** Sum over layers of MemoryStats.lastStepHeldBytes after the last step. */
  readonly heldBytes: number;
  /** Sum over layers of MemoryStats.lastStepPeakBytes after the last step. */
  readonly peakBytes: number;
  readonly parameterBytes: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  /** Set when the loss or a parameter stopped being finite (the run stops there). */
  readonly diverged?: { step: number; reason: string };
}

/** Per-layer summary of s = gamma / sqrt(running_var + eps) at the start of fine-tuning. */
export interface ScaleSummary {
  readonly layer: number;
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly values: number[];
}

export interface DemoResult {
  readonly backend: string;
  readonly description: string;
  readonly options: DemoOptions;
  readonly pretrain: RunResult & { readonly testAccuracyBefore: number };
  /** The pretraining test loss in eval mode with the pretrained and with the chosen BN statistics (should agree), and s per channel. */
  readonly bnChoice: { scaleRange: readonly [number, number]; evalLossBefore: number; evalLossAfter: number; scales: ScaleSummary[] };
  /** Main comparison: eval, tune, deploy at options.lr. */
  readonly runs: RunResult[];
  /** The control run (eval from weights one ulp away), for tuneVsEval. */
  readonly control: RunResult;
  /** eval and deploy at each sweep learning rate (options.lr's pair is in runs). */
  readonly sweep: RunResult[];
  /**
   * Step-by-step agreement of the loss curves. tune vs eval is the claim; the
   * control (eval from weights moved by one ulp) shows how far float32
   * rounding alone drifts apart through training. firstAbove: first step
   * whose relative difference exceeds the tolerance (-1: none).
   */
  readonly tuneVsEval: {
    readonly maxRelativeDiff: number;
    readonly steps: number;
    readonly tolerance: number;
    readonly pass: boolean;
    readonly firstAbove: number;
    readonly perStep: number[];
    readonly control: { readonly maxRelativeDiff: number; readonly firstAbove: number; readonly perStep: number[] };
  };
  readonly wallMs: number;
  readonly tasks: { pretrain: TaskSpec; finetune: TaskSpec };
}

class Diverged extends Error {}

/** Moves every element to the next float32 up or down (the smallest possible change). */
export function nudgeByUlp(a: Float32Array, rng: () => number): void {
  const bits = new Int32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] === 0) continue;
    // For finite non-zero floats, +-1 on the bit pattern is the neighbouring float of the same sign.
    bits[i] += rng() < 0.5 ? 1 : -1;
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/** SGD with momentum (PyTorch's form: v = mu v + g; p -= lr v), on host copies. */
class Sgd {
  private readonly velocity: Float32Array[];

  constructor(private readonly params: Float32Array[], private readonly lr: number, private readonly momentum: number) {
    this.velocity = params.map((p) => new Float32Array(p.length));
  }

  step(grads: readonly Float32Array[]): void {
    for (let t = 0; t < this.params.length; t++) {
      const p = this.params[t];
      const v = this.velocity[t];
      const g = grads[t];
      for (let i = 0; i < p.length; i++) {
        v[i] = this.momentum * v[i] + g[i];
        p[i] -= this.lr * v[i];
      }
    }
  }
}

/**
 * One model training in one mode. train/eval/tune train W, gamma, beta (the
 * runtime's gradWeight, gradGamma, gradBeta); deploy trains the stored
 * folded W', b' (gradFoldedWeight, gradFoldedBias). The head trains in all.
 */
class Trainer {
  readonly losses: number[] = [];
  readonly accuracies: number[] = [];
  readonly stepMs: number[] = [];
  readonly convbnMs: number[] = [];
  diverged: { step: number; reason: string } | undefined;
  /** The runtime's counters right after the last training step's backward (later inference resets them). */
  private memory: MemoryStats | undefined;
  private readonly sgd: Sgd;

  private constructor(
    readonly spec: RunSpec,
    readonly net: ConvNet,
    private readonly host: ConvBNParams[],
    private readonly folded: { weight: Float32Array; bias: Float32Array }[],
    momentum: number,
  ) {
    const params: Float32Array[] = [];
    if (spec.mode === 'deploy') for (const f of folded) params.push(f.weight, f.bias);
    else for (const p of host) params.push(p.weight, p.gamma, p.beta);
    params.push(net.head.weight, net.head.bias);
    this.sgd = new Sgd(params, spec.lr, momentum);
  }

  static async create(engine: Engine, modelSpec: ModelSpec, state: ModelState, run: RunSpec, momentum: number, seed = 0): Promise<Trainer> {
    const start = cloneState(state);
    if (run.perturbed) {
      const rng = mulberry32(deriveSeed(seed, 'perturb'));
      for (const p of start.layers) nudgeByUlp(p.weight, rng);
    }
    const net = new ConvNet(engine, modelSpec, start);
    const folded = run.mode === 'deploy' ? await Promise.all(net.layers.map((l) => l.getFoldedParameters())) : [];
    return new Trainer(run, net, start.layers, folded, momentum);
  }

  get steps(): number {
    return this.losses.length;
  }

  async step(batch: Batch): Promise<void> {
    if (this.diverged) return;
    const { mode } = this.spec;
    const t0 = performance.now();
    this.net.convbnMs = 0;
    try {
      const logits = await this.net.forward(batch.x, mode, true);
      const { loss, grad, correct } = softmaxCrossEntropy(logits, batch.labels, this.net.classes);
      this.losses.push(loss);
      this.accuracies.push(correct / batch.labels.length);
      if (!Number.isFinite(loss)) throw new Diverged(`loss is ${loss}`);
      const grads = await this.net.backward(grad);
      this.memory = this.net.memory();
      this.sgd.step(this.gradList(grads));
      await this.upload();
    } catch (e) {
      if (!(e instanceof Diverged)) throw e;
      this.diverged = { step: this.losses.length - 1, reason: e.message };
      return;
    }
    this.stepMs.push(performance.now() - t0);
    this.convbnMs.push(this.net.convbnMs);
  }

  private gradList(grads: NetGrads): Float32Array[] {
    const list: Float32Array[] = [];
    for (const g of grads.layers) {
      if (this.spec.mode === 'deploy') list.push(g.gradFoldedWeight!, g.gradFoldedBias!);
      else list.push(g.gradWeight!, g.gradGamma!, g.gradBeta!);
    }
    list.push(grads.head.gradWeight, grads.head.gradBias);
    return list;
  }

  /** Hands the updated parameters back to the runtime layers. */
  private async upload(): Promise<void> {
    const { layers } = this.net;
    for (let i = 0; i < layers.length; i++) {
      if (this.spec.mode === 'deploy') {
        const f = this.folded[i];
        if (!allFinite(f.weight) || !allFinite(f.bias)) throw new Diverged(`layer ${i} folded parameters are not finite`);
        layers[i].setFoldedParameters(f);
        continue;
      }
      const p = this.host[i];
      if (!allFinite(p.weight) || !allFinite(p.gamma) || !allFinite(p.beta)) throw new Diverged(`layer ${i} parameters are not finite`);
      if (this.spec.mode === 'train') {
        // Train mode updated the running statistics on the device: read them back before
        // setParameters (which replaces all parameters, running statistics included).
        const current = await layers[i].getParameters();
        p.runningMean = current.runningMean;
        p.runningVar = current.runningVar;
      }
      layers[i].setParameters(p);
    }
    if (!allFinite(this.net.head.weight) || !allFinite(this.net.head.bias)) throw new Diverged('head parameters are not finite');
  }

  async evaluate(testSet: readonly Batch[], mode: Mode): Promise<{ loss: number; accuracy: number }> {
    if (this.diverged) return { loss: NaN, accuracy: NaN };
    return evaluate(this.net, testSet, mode);
  }

  result(test: { loss: number; accuracy: number }): RunResult {
    const m = this.memory ?? this.net.memory();
    return {
      ...this.spec,
      losses: this.losses,
      accuracies: this.accuracies,
      stepMs: this.stepMs,
      convbnMs: this.convbnMs,
      heldBytes: m.lastStepHeldBytes,
      peakBytes: m.lastStepPeakBytes,
      parameterBytes: m.parameterBytes,
      testLoss: test.loss,
      testAccuracy: test.accuracy,
      ...(this.diverged ? { diverged: this.diverged } : {}),
    };
  }
}

async function evaluate(net: ConvNet, testSet: readonly Batch[], mode: Mode): Promise<{ loss: number; accuracy: number }> {
  let loss = 0;
  let correct = 0;
  let count = 0;
  for (const batch of testSet) {
    const logits = await net.forward(batch.x, mode, false);
    const r = softmaxCrossEntropy(logits, batch.labels, net.classes);
    loss += r.loss * batch.labels.length;
    correct += r.correct;
    count += batch.labels.length;
  }
  return { loss: loss / count, accuracy: correct / count };
}

/** Multiplies channel o's conv weights by c_o and its running mean / variance by c_o / c_o^2 (see DemoOptions.bnScaleRange). */
export function rescaleChannels(state: ModelState, range: readonly [number, number], seed: number): ModelState {
  const out = cloneState(state);
  if (range[0] === 1 && range[1] === 1) return out;
  const rng = mulberry32(deriveSeed(seed, 'bn-rescale'));
  const [lo, hi] = [Math.log(range[0]), Math.log(range[1])];
  for (const p of out.layers) {
    const C = p.gamma.length;
    const perOut = p.weight.length / C;
    for (let o = 0; o < C; o++) {
      const c = Math.exp(uniform(rng, lo, hi));
      for (let i = 0; i < perOut; i++) p.weight[o * perOut + i] *= c;
      p.runningMean[o] *= c;
      p.runningVar[o] *= c * c;
    }
  }
  return out;
}

export function scaleSummary(state: ModelState, eps: number): ScaleSummary[] {
  return state.layers.map((p, layer) => {
    const values = Array.from(p.gamma, (g, o) => g / Math.sqrt(p.runningVar[o] + eps));
    const sorted = [...values].sort((a, b) => a - b);
    return { layer, min: sorted[0], median: sorted[sorted.length >> 1], max: sorted[sorted.length - 1], values };
  });
}

/** |a - b| / max(|a|, |b|) per step (Infinity where either is not finite or the lengths differ). */
export function relativeDiffs(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    if (i >= a.length || i >= b.length) return Infinity;
    const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i]), 1e-30);
    return Number.isFinite(d) ? d : Infinity;
  });
}

export function maxRelativeDiff(a: readonly number[], b: readonly number[]): number {
  return relativeDiffs(a, b).reduce((m, d) => Math.max(m, d), 0);
}

/** Work units a run of `options` reports to the progress bar (steps and eval batches). */
export function totalWork(o: DemoOptions): number {
  return o.pretrainSteps + 3 * o.testBatches + 4 * (o.steps + 1) + 2 * o.sweepLrs.length * (o.steps + 1);
}

/**
 * Fine-tunes `runs` from `start` in lockstep on the same batches. Returns
 * each run's result; `onStep` gets the number of run-steps done.
 */
export async function finetune(
  engine: Engine, options: DemoOptions, start: ModelState, runs: readonly RunSpec[], steps: number,
  testSet: readonly Batch[], onStep: (label: string, step: number, loss: number) => void,
): Promise<RunResult[]> {
  const trainers: Trainer[] = [];
  try {
    for (const run of runs) trainers.push(await Trainer.create(engine, options.spec, start, run, options.momentum, options.seed));
    const dataRng = mulberry32(deriveSeed(options.seed, 'finetune-batches'));
    for (let step = 0; step < steps; step++) {
      const batch = makeBatch(FINETUNE_TASK, dataRng, options.spec.batch, options.spec.size);
      for (let k = 0; k < trainers.length; k++) {
        const t = trainers[(step + k) % trainers.length];
        await t.step(batch);
        onStep(t.spec.label, step, t.losses[t.losses.length - 1]);
      }
    }
    const results: RunResult[] = [];
    for (const t of trainers) {
      const test = await t.evaluate(testSet, t.spec.mode);
      onStep(t.spec.label, steps, NaN);
      results.push(t.result(test));
    }
    return results;
  } finally {
    for (const t of trainers) t.net.destroy();
  }
}

export interface DemoHooks {
  readonly progress?: Progress;
}

/** The whole demo: pretrain, choose BN statistics, fine-tune in eval / tune / deploy, then the learning-rate sweep. */
export async function runDemo(engine: Engine, options: DemoOptions, hooks: DemoHooks = {}): Promise<DemoResult> {
  const progress = hooks.progress ?? silentProgress;
  const began = performance.now();
  const { spec, seed } = options;
  progress.start(totalWork(options));
  let done = 0;
  const tick = (phase: string, detail?: string): void => progress.update(++done, phase, detail);

  const pretrainTest = makeTestSet(PRETRAIN_TASK, mulberry32(deriveSeed(seed, 'pretrain-test')), options.testBatches, spec.batch, spec.size);
  const finetuneTest = makeTestSet(FINETUNE_TASK, mulberry32(deriveSeed(seed, 'finetune-test')), options.testBatches, spec.batch, spec.size);

  // 1. Pretrain in train mode (batch statistics) on the first task.
  const init = initState(spec, PRETRAIN_TASK.anglesDeg.length, mulberry32(deriveSeed(seed, 'init')));
  const pre = await Trainer.create(engine, spec, init, { label: 'pretrain (train mode)', mode: 'train', lr: options.pretrainLr }, options.momentum);
  let pretrainResult: DemoResult['pretrain'];
  let pretrained: ModelState;
  try {
    const before = await evaluate(pre.net, pretrainTest, 'eval');
    const rng = mulberry32(deriveSeed(seed, 'pretrain-batches'));
    for (let step = 0; step < options.pretrainSteps; step++) {
      await pre.step(makeBatch(PRETRAIN_TASK, rng, spec.batch, spec.size));
      if (pre.diverged) throw new Error(`pretraining diverged at step ${step}: ${pre.diverged.reason}`);
      tick('pretrain', `train mode step ${step + 1}/${options.pretrainSteps} loss ${pre.losses[step].toFixed(3)}`);
    }
    const after = await evaluate(pre.net, pretrainTest, 'eval');
    for (let i = 0; i < options.testBatches; i++) tick('pretrain', 'test set');
    pretrainResult = { ...pre.result(after), testAccuracyBefore: before.accuracy };
    pretrained = await pre.net.state();
  } finally {
    pre.net.destroy();
  }

  // 2. Choose the BN statistics (rescale W and the running stats per channel) and check that eval's function did not change.
  const chosen = rescaleChannels(pretrained, options.bnScaleRange, seed);
  const eps = 1e-5;
  const lossOf = async (state: ModelState): Promise<number> => {
    const net = new ConvNet(engine, spec, state);
    try {
      return (await evaluate(net, pretrainTest, 'eval')).loss;
    } finally {
      net.destroy();
    }
  };
  const evalLossBefore = await lossOf(pretrained);
  for (let i = 0; i < options.testBatches; i++) tick('choosing BN statistics');
  const evalLossAfter = await lossOf(chosen);
  for (let i = 0; i < options.testBatches; i++) tick('choosing BN statistics');

  // 3. New classes: a fresh head (same seed for every mode).
  const start: ModelState = { ...chosen, head: initHead(spec.channels[spec.channels.length - 1], FINETUNE_TASK.anglesDeg.length, mulberry32(deriveSeed(seed, 'head'))) };

  const runs: RunSpec[] = [
    ...(['eval', 'tune', 'deploy'] as const).map((mode) => ({ label: mode, mode, lr: options.lr })),
    { label: 'eval (control, weights 1 ulp off)', mode: 'eval', lr: options.lr, perturbed: true },
  ];
  const results = await finetune(engine, options, start, runs, options.steps, finetuneTest, (label, step, loss) =>
    tick('fine-tune', step < options.steps ? `${label} step ${step + 1}/${options.steps} loss ${loss.toFixed(3)}` : `${label} test set`));
  const main = results.slice(0, 3);
  const control = results[3];
  const tolerance = 1e-4;
  const perStep = relativeDiffs(main[0].losses, main[1].losses);
  const controlPerStep = relativeDiffs(main[0].losses, control.losses);
  const summarize = (d: number[]): { maxRelativeDiff: number; firstAbove: number; perStep: number[] } =>
    ({ maxRelativeDiff: d.reduce((m, v) => Math.max(m, v), 0), firstAbove: d.findIndex((v) => !(v <= tolerance)), perStep: d });
  const tuneVsEval = {
    ...summarize(perStep),
    steps: perStep.length,
    tolerance,
    pass: perStep.every((v) => v <= tolerance),
    control: summarize(controlPerStep),
  };

  // 4. Learning-rate sweep: eval vs deploy at the other learning rates.
  const sweepRuns: RunSpec[] = options.sweepLrs.filter((lr) => lr !== options.lr).flatMap((lr) =>
    (['eval', 'deploy'] as const).map((mode) => ({ label: `${mode} lr=${lr}`, mode, lr })));
  const sweep = sweepRuns.length === 0 ? [] : await finetune(engine, options, start, sweepRuns, options.steps, finetuneTest,
    (label, step, loss) => tick('lr sweep', step < options.steps ? `${label} step ${step + 1}/${options.steps} loss ${loss.toFixed(3)}` : `${label} test set`));

  return {
    backend: engine.backend,
    description: engine.description,
    options,
    pretrain: pretrainResult,
    bnChoice: { scaleRange: options.bnScaleRange, evalLossBefore, evalLossAfter, scales: scaleSummary(start, eps) },
    runs: main,
    control,
    sweep,
    tuneVsEval,
    wallMs: performance.now() - began,
    tasks: { pretrain: PRETRAIN_TASK, finetune: FINETUNE_TASK },
  };
}
