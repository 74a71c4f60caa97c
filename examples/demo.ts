/**
 * `npm start`: pretrain a small ConvNet of ConvBN blocks in train mode, then
 * fine-tune it on a shifted task in eval, tune and deploy modes and compare
 * loss, accuracy, time and memory. Prints a table; writes report/index.html
 * and report/summary.json.
 *
 *   npm start -- [--backend webgpu|wasm|auto] [--steps N] [--quick] [--out DIR] [--seed N]
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine, type BackendChoice } from '../runtime/index.js';
import { ProgressBar } from './finetune/progress.js';
import { formatTables, writeReport } from './finetune/report.js';
import { DEFAULT_OPTIONS, QUICK_OPTIONS, runDemo, type DemoOptions } from './finetune/train.js';

const USAGE = `usage: npm start -- [options]
  --backend webgpu|wasm|auto   which runtime backend (default auto: WebGPU when an adapter appears, else WASM)
  --steps N                    fine-tuning steps per run (default ${DEFAULT_OPTIONS.steps})
  --quick                      a short configuration (tests, smoke runs)
  --out DIR                    where to write index.html and summary.json (default report)
  --seed N                     seed of data, weights and batches (default ${DEFAULT_OPTIONS.seed})
  --help`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) fail(`--${name} must be an integer >= 1, got ${JSON.stringify(value)}`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        backend: { type: 'string', default: 'auto' },
        steps: { type: 'string' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string', default: 'report' },
        seed: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const backend = values.backend as BackendChoice;
  if (!['webgpu', 'wasm', 'auto'].includes(backend)) fail(`--backend must be webgpu, wasm or auto, got ${JSON.stringify(values.backend)}`);
  const base = values.quick ? QUICK_OPTIONS : DEFAULT_OPTIONS;
  const steps = positiveInt('steps', values.steps);
  const seed = positiveInt('seed', values.seed);
  const options: DemoOptions = { ...base, backend, ...(steps ? { steps } : {}), ...(seed ? { seed } : {}) };
  const outDir = path.resolve(values.out);

  const began = performance.now();
  const engine = await createEngine({ backend });
  process.stdout.write(`convbn fine-tuning demo: backend ${engine.backend} (asked for ${backend}): ${engine.description}\n`);
  try {
    const result = await runDemo(engine, options, { progress: new ProgressBar() });
    const report = await writeReport(result, outDir);
    process.stdout.write(`\n${formatTables(result)}\n\n`);
    const wall = (performance.now() - began) / 1000;
    process.stdout.write(`Report: ${path.relative(process.cwd(), report.html) || report.html} and ${path.relative(process.cwd(), report.json)} ` +
      `(${report.charts.length} charts). Whole run ${wall.toFixed(1)} s.\n`);
  } finally {
    engine.destroy();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`\ndemo failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
