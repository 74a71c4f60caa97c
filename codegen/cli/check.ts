/** `convbn check DIR`: run reference case files on a backend, one line per case and mode. */
import { parseArgs } from 'node:util';
import { ConvBNInputError } from '../errors.js';
import { loadCaseDir } from '../../runtime/check/cases.js';
import { TOLERANCE } from '../../runtime/check/compare.js';
import { checkCase } from '../../runtime/check/run.js';
import { createEngine } from '../../runtime/engine.js';
import type { BackendChoice } from '../../runtime/types.js';

export const CHECK_HELP = `convbn check: run ConvBN reference cases on a backend

Usage:
  convbn check DIR [--backend webgpu|wasm|auto] [--tolerance T]

Loads every *.json case in DIR (format: shared/vectors/README.md), runs every mode
it holds, forward and backward, and prints one line per case and mode with the
worst relative error ||out - ref|| / max(||ref||, 1e-6 sqrt(n)) over its tensors.
Ends with "N passed, M failed"; exits 0 only if all pass.

Options:
  --backend B      webgpu, wasm or auto (WebGPU when an adapter appears), default auto
  --tolerance T    largest relative error that passes, default ${TOLERANCE}
  -h, --help       this text

Example:
  convbn check ../shared/vectors --backend webgpu`;

export async function runCheckCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'auto' },
      tolerance: { type: 'string', default: String(TOLERANCE) },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(CHECK_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new ConvBNInputError('DIR', positionals.join(' '), 'give exactly one directory of case files');
  const tolerance = Number(values.tolerance);
  if (!(tolerance > 0)) throw new ConvBNInputError('--tolerance', values.tolerance, 'must be a number > 0');
  const cases = await loadCaseDir(positionals[0]);
  const engine = await createEngine({ backend: values.backend as BackendChoice });
  console.log(`backend: ${engine.backend} (${engine.description})`);
  let passed = 0;
  let failed = 0;
  try {
    for (const c of cases) {
      for (const r of await checkCase(engine, c, tolerance)) {
        if (r.pass) passed++;
        else failed++;
        const detail = r.failure ? `error: ${r.failure}` : `worst ${r.worstTensor} ${r.worstError.toExponential(2)}`;
        console.log(`${r.pass ? 'PASS' : 'FAIL'} ${r.caseId} ${r.mode.padEnd(6)} ${detail}`);
      }
    }
  } finally {
    engine.destroy();
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
