/**
 * `convbn tune`: times each conv pass's candidate kernels (codegen/tuning/
 * candidates.ts) on this machine's WebGPU adapter and stores the fastest in a
 * JSON tuning cache keyed by adapter and config. The runtime reads the cache
 * (engine option `kernels.cache`, or the file in CONVBN_TUNING_CACHE) and
 * `convbn gen --tuning FILE` generates the winners.
 */
import { parseArgs } from 'node:util';
import { normalizeConfig, kernelConfig, tensorSizes, type ConvBNConfig, type ConvBNConfigInput } from '../config.js';
import { ConvBNInputError } from '../errors.js';
import { resnet18Layers } from '../models/resnet18.js';
import { readTuningCache, TuningCache, writeTuningCache } from '../tuning/cache.js';
import { tuningCandidates } from '../tuning/candidates.js';
import { describeChoice, PASSES, type Pass, type PassChoice } from '../tuning/choice.js';
import { DevicePlan, passSteps, randomParams, repetitionsFor, rng } from '../tuning/measure.js';
import { LAYER_FLAGS_HELP, LAYER_OPTIONS, layerFromFlags, layersFromFile } from './layerFlags.js';

export const DEFAULT_TUNING_FILE = 'convbn-tuning.json';

export const TUNE_HELP = `convbn tune: time kernel variants on this device and store the winners in a JSON cache

Usage:
  convbn tune [layer flags] [--cache FILE]
  convbn tune --layers LAYERS.json [--cache FILE]
  convbn tune --resnet18 [--size 112] [--batch 8] [--cache FILE]

For every layer and conv pass (forward, dgrad = input gradient, wgrad = weight
gradient) it times the candidates for this adapter: the heuristic pick first,
then neighbouring register tiles (CPU rasterisers such as llvmpipe) or
workgroup-memory tiles (GPUs), and one of the other family. Candidates run
interleaved, on device-resident buffers, GPU work only; the lowest median wins.
The cache is keyed by adapter description and config (configKey): a layer at
another batch size uses the same entry. Existing entries for other adapters or
layers are kept.

Options:
  --cache FILE        tuning cache to update (default: $CONVBN_TUNING_CACHE, else ./${DEFAULT_TUNING_FILE})
  --layers FILE       JSON: an array of configs, or of { "name": ..., "config": {...} }
  --resnet18          the ConvBN layers of ResNet-18 (distinct shapes only)
  --size N            --resnet18 input size (default 112)
  --batch N           --resnet18 batch (default 8)
  --passes LIST       comma-separated subset of forward,dgrad,wgrad (default: all)
  --rounds N          interleaved rounds per candidate (default 3)
  --direct            also time the one-output-per-invocation reference kernels (slow)
  --dry-run           list the candidates, time nothing, write nothing
  -h, --help          this text

${LAYER_FLAGS_HELP}

Use the cache:
  CONVBN_TUNING_CACHE=${DEFAULT_TUNING_FILE} node app.js        the runtime picks the tuned kernels
  convbn gen --layers L.json --tuning ${DEFAULT_TUNING_FILE} --out DIR   generated kernels use them too

Examples:
  convbn tune --N 8 --Cin 64 --Cout 64 --H 56 --W 56 --kernel 3 --padding 1
  convbn tune --resnet18 --size 112 --batch 8 --passes forward,dgrad`;

interface Layer {
  readonly name: string;
  readonly config: ConvBNConfig;
}

function positive(field: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1) throw new ConvBNInputError(field, text, 'must be an integer >= 1');
  return v;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export interface PassTiming {
  readonly choice: PassChoice;
  readonly medianMs: number;
  readonly minMs: number;
}

/**
 * Times `candidates` for one pass of `c` on a device, interleaved (the order
 * rotates every round), after untimed runs (llvmpipe compiles at first
 * dispatch); on a GPU each sample repeats the kernels (repetitionsFor). Sorted fastest first by median.
 */
export async function timeCandidates(
  plan: DevicePlan, c: ConvBNConfig, pass: Pass, candidates: readonly PassChoice[], rounds: number,
): Promise<PassTiming[]> {
  const steps = candidates.map((choice) => passSteps(pass, c, choice, plan.pipelines.target));
  for (const s of steps) await plan.run(s);
  const reps: number[] = [];
  const onCpu = plan.pipelines.target.profile?.isCpu ?? true;
  for (const s of steps) reps.push(await repetitionsFor((times) => plan.run(s, times), onCpu));
  const samples: number[][] = candidates.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < candidates.length; i++) {
      const k = (i + r) % candidates.length;
      const t = performance.now();
      await plan.run(steps[k], reps[k]);
      samples[k].push((performance.now() - t) / reps[k]);
    }
  }
  return candidates
    .map((choice, i) => ({ choice, medianMs: median(samples[i]), minMs: Math.min(...samples[i]) }))
    .sort((a, b) => a.medianMs - b.medianMs);
}

export async function runTuneCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...LAYER_OPTIONS,
      cache: { type: 'string' },
      layers: { type: 'string' },
      resnet18: { type: 'boolean', default: false },
      size: { type: 'string' },
      batch: { type: 'string' },
      passes: { type: 'string' },
      rounds: { type: 'string' },
      direct: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(TUNE_HELP);
    return 0;
  }
  const flagLayer = layerFromFlags(values);
  const sources = [values.layers, values.resnet18 ? 'resnet18' : undefined, flagLayer].filter((s) => s !== undefined);
  if (sources.length !== 1) {
    throw new ConvBNInputError('layers', sources.length, 'give exactly one of: layer flags, --layers FILE, --resnet18 (see convbn tune --help)');
  }
  // A padding mode other than zeros runs the kernels of its pre-padded config: those are what get timed.
  let layers: Layer[];
  if (values.layers) {
    layers = (await layersFromFile(values.layers)).map(({ name, config }) => ({ name, config: kernelConfig(normalizeConfig(config)) }));
  } else if (values.resnet18) {
    const batch = positive('--batch', values.batch, 8);
    const size = positive('--size', values.size, 112);
    layers = resnet18Layers(batch, size).map((l) => ({ name: l.name, config: normalizeConfig(l.config) }));
  } else {
    layers = [{ name: 'layer', config: kernelConfig(normalizeConfig(flagLayer!)) }];
  }
  // One entry per distinct shape (ResNet repeats its blocks).
  const distinct = new Map<string, Layer>();
  for (const l of layers) if (!distinct.has(JSON.stringify(l.config))) distinct.set(JSON.stringify(l.config), l);
  const passes = (values.passes ?? PASSES.join(',')).split(',').map((p) => p.trim()) as Pass[];
  for (const p of passes) {
    if (!PASSES.includes(p)) throw new ConvBNInputError('--passes', values.passes, `must list some of ${PASSES.join(', ')}`);
  }
  const rounds = positive('--rounds', values.rounds, 3);
  const file = values.cache ?? process.env.CONVBN_TUNING_CACHE ?? DEFAULT_TUNING_FILE;

  const { acquireDevice } = await import('../../runtime/webgpu/device.js');
  const { PipelineCache } = await import('../../runtime/webgpu/pipelines.js');
  const acquired = await acquireDevice();
  // Tune against the heuristics, not against an older cache.
  const pipelines = new PipelineCache(acquired.device, { cache: new TuningCache() });
  const profile = pipelines.target.profile!;
  console.log(`adapter: ${profile.key} (${profile.isCpu ? 'CPU rasteriser' : 'GPU'})`);
  const cache = (await readTuningCache(file)) ?? new TuningCache();
  let tuned = 0;
  try {
    for (const { name, config: c } of distinct.values()) {
      console.log(`\n${name}: N=${c.N} ${c.Cin}->${c.Cout} ${c.H}x${c.W} k${c.kH}x${c.kW} s${c.strideH},${c.strideW} ` +
        `d${c.dilationH},${c.dilationW} g${c.groups}`);
      const r = rng(tuned + 1);
      const plan = values['dry-run'] ? undefined
        : new DevicePlan(acquired.device, pipelines, c, randomParams(c, r), Float32Array.from({ length: tensorSizes(c).x }, r));
      const entry: Record<string, unknown> = {};
      const timings: Record<string, Record<string, number>> = {};
      try {
        for (const pass of passes) {
          const candidates = tuningCandidates(pass, c, profile, { direct: values.direct });
          if (!plan) {
            console.log(`  ${pass}: ${candidates.map(describeChoice).join(' | ')}`);
            continue;
          }
          const results = await timeCandidates(plan, c, pass, candidates, rounds);
          const best = results[0];
          entry[pass] = best.choice;
          timings[pass] = Object.fromEntries(results.map((t) => [describeChoice(t.choice), Number(t.medianMs.toFixed(2))]));
          const heuristic = results.find((t) => describeChoice(t.choice) === describeChoice(candidates[0]))!;
          console.log(`  ${pass}: ${describeChoice(best.choice)} ${best.medianMs.toFixed(1)} ms ` +
            `(heuristic ${describeChoice(candidates[0])} ${heuristic.medianMs.toFixed(1)} ms; ${results.length} candidates)`);
          for (const t of results.slice(1)) console.log(`      ${describeChoice(t.choice)} ${t.medianMs.toFixed(1)} ms`);
        }
      } finally {
        plan?.destroy();
      }
      if (plan) {
        cache.store(profile.key, c, { ...(entry as object), timings, tunedAt: new Date().toISOString() });
        tuned++;
      }
    }
  } finally {
    acquired.device.destroy();
  }
  if (!values['dry-run']) {
    await writeTuningCache(file, cache);
    console.log(`\nwrote ${tuned} layer(s) for this adapter to ${file}`);
  }
  return 0;
}
