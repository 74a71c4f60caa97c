/**
 * createEngine's choice: 'auto' takes WebAssembly when no WebGPU adapter
 * appears, and says so. Run in a child process so the forced Dawn backend
 * (one this build does not have) stays out of the other tests.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

test("'auto' falls back to WASM when no adapter appears, and the layer computes", () => {
  const script = [
    "import { createEngine } from './runtime/index.ts';",
    "const e = await createEngine({ backend: 'auto' });",
    'const one = () => new Float32Array([1]);',
    "const l = e.createLayer({ N: 2, Cin: 1, Cout: 1, H: 1, W: 1, kernel: 1 }, " +
      '{ weight: new Float32Array([2]), bias: one(), gamma: one(), beta: one(), runningMean: one(), runningVar: new Float32Array([3]) });',
    "const y = await l.forward(new Float32Array([1, 4]), 'tune');",
    'console.log(JSON.stringify({ backend: e.backend, y: Array.from(y) }));',
    'e.destroy();',
  ].join('\n');
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot, timeout: 60_000, encoding: 'utf8', env: { ...process.env, CONVBN_DAWN_BACKEND: 'no-such-backend' },
  });
  expect(run.status, run.stderr).toBe(0);
  const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  expect(out.backend).toBe('wasm');
  // y = (2x + 1 - 1) / sqrt(3 + 1e-5) * 1 + 1
  const s = 1 / Math.sqrt(3 + 1e-5);
  expect(out.y[0]).toBeCloseTo(2 * s + 1, 5);
  expect(out.y[1]).toBeCloseTo(8 * s + 1, 5);
});
