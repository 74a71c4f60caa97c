/**
 * Long fuzz runs of the reliability property: random valid configs, every
 * mode, forward and backward, against the float64 oracle.
 *
 *   npm run fuzz -- --cases 2000 --seed 7 [--backend webgpu|wasm] [--max-elements 600]
 *   npm run fuzz -- --backend webgpu --replay '{"config":{...},"seed":18,"mode":"train","recompute":false}'
 *
 * A case is one config in one mode. Every failure is printed with the command
 * that reruns exactly it. Exit status 1 if any case failed outside the known
 * float32 limits (test/reliability/harness.ts, knownLimit).
 */
import fc from 'fast-check';
import { MODES, type Mode } from '../codegen/config.js';
import type { BackendName } from '../runtime/types.js';
import {
  configArb, describeResult, openEngine, runCase, type CaseResult, type CaseSpec, type ConfigSpace,
} from '../test/reliability/harness.js';

interface Args {
  cases: number;
  seed: number;
  backend: BackendName;
  maxElements: number | undefined;
  replay: string | undefined;
}

function usage(message: string): never {
  console.error(`fuzz: ${message}\n` +
    'usage: npm run fuzz -- [--cases N] [--seed S] [--backend webgpu|wasm] [--max-elements E] [--replay JSON]');
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const args: Args = { cases: 400, seed: 1, backend: 'webgpu', maxElements: undefined, replay: undefined };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) usage(`${flag} needs a value`);
    i++;
    const int = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) usage(`${flag} must be a non-negative integer, got ${value}`);
      return n;
    };
    switch (flag) {
      case '--cases': args.cases = int(); break;
      case '--seed': args.seed = int(); break;
      case '--max-elements': args.maxElements = int(); break;
      case '--backend':
        if (value !== 'webgpu' && value !== 'wasm') usage(`--backend must be webgpu or wasm, got ${value}`);
        args.backend = value;
        break;
      case '--replay': args.replay = value; break;
      default: usage(`unknown option ${flag}`);
    }
  }
  return args;
}

function parseReplay(json: string): CaseSpec {
  let spec: unknown;
  try {
    spec = JSON.parse(json);
  } catch (e) {
    usage(`--replay is not JSON: ${(e as Error).message}`);
  }
  const s = spec as Partial<CaseSpec>;
  if (!s || typeof s !== 'object' || typeof s.config !== 'object' || !Number.isInteger(s.seed) || !MODES.includes(s.mode as Mode)) {
    usage('--replay needs {"config": {...}, "seed": integer, "mode": "train"|"eval"|"tune"|"deploy", "recompute"?: boolean}');
  }
  return { config: s.config!, seed: s.seed!, mode: s.mode!, recompute: s.recompute === true };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const engine = await openEngine(args.backend);
  console.log(`fuzz: ${engine.description}`);
  const uncaptured = (): string[] => (engine as { uncapturedErrors?: string[] }).uncapturedErrors ?? [];

  if (args.replay !== undefined) {
    const r = await runCase(engine, parseReplay(args.replay));
    console.log(r.pass ? `pass: worst ${r.worstTensor} ${r.worstError.toExponential(3)}` : describeResult(r));
    console.log(`errors: ${JSON.stringify(r.errors)}`);
    engine.destroy();
    process.exit(r.pass && uncaptured().length === 0 ? 0 : 1);
  }

  // WebGPU on llvmpipe compiles ~15 pipelines per config: keep its shapes small.
  const space: ConfigSpace = {
    maxElements: args.maxElements ?? (args.backend === 'webgpu' ? 600 : 2000),
    maxSpatial: args.backend === 'webgpu' ? 9 : 12,
    maxBatch: 3,
    paddingModes: true,
    layouts: true,
  };
  const configs = Math.ceil(args.cases / MODES.length);
  const samples = fc.sample(fc.tuple(configArb(space), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.boolean()),
    { seed: args.seed, numRuns: configs });
  const results: CaseResult[] = [];
  const started = performance.now();
  for (const [i, [config, dataSeed, recompute]] of samples.entries()) {
    for (const mode of MODES) {
      if (results.length >= args.cases) break;
      const r = await runCase(engine, { config, seed: dataSeed, mode, recompute: mode === 'train' && recompute });
      results.push(r);
      if (!r.pass) console.log(describeResult(r));
    }
    if ((i + 1) % 25 === 0) {
      const s = (performance.now() - started) / 1000;
      console.log(`fuzz: ${results.length}/${args.cases} cases, ${results.filter((r) => !r.pass).length} failed, ${s.toFixed(0)} s`);
      // The pipeline cache grows with every distinct config.
      (engine as { releaseCaches?: () => void }).releaseCaches?.();
    }
  }
  engine.destroy();
  const failed = results.filter((r) => !r.pass);
  const known = failed.filter((r) => r.knownLimit);
  const summary = {
    backend: args.backend, seed: args.seed, cases: results.length, configs: samples.length,
    failed: failed.length, knownLimitFailures: known.length,
    knownLimits: Object.fromEntries([...new Set(known.map((r) => r.knownLimit!))].map((k) => [k, known.filter((r) => r.knownLimit === k).length])),
    uncapturedErrors: uncaptured().length,
    worstError: Math.max(0, ...results.filter((r) => !r.knownLimit).map((r) => r.worstError)),
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  };
  console.log(`fuzz summary: ${JSON.stringify(summary)}`);
  for (const e of uncaptured()) console.log(`uncaptured WebGPU error: ${e}`);
  process.exit(failed.length - known.length === 0 && uncaptured().length === 0 ? 0 : 1);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
