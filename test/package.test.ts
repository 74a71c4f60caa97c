/**
 * The npm package as users get it: `npm pack` (its prepack builds the .wasm and
 * the JavaScript), unpacked outside the repository and run with plain Node, no
 * TypeScript and no AssemblyScript compiler. Its `convbn` bin checks cases
 * against the float64 oracle on WASM, and `import 'convbn'` computes a
 * tune-mode step that matches the oracle.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { makeCase } from './oracle/makeCase.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const config = { N: 2, Cin: 8, Cout: 8, H: 9, W: 7, kernel: 3, stride: [2, 1], padding: 1, bias: true } as const;

let dir: string;
let files: string[];

function run(command: string, args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 240_000, env: { ...process.env, npm_config_loglevel: 'error' } });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'convbn-package-'));
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // Whatever an earlier build left must not stand in for the one prepack has to make.
  await rm(path.join(repoRoot, 'dist'), { recursive: true, force: true });
  const packed = run(npm, ['pack', '--json', '--pack-destination', dir], repoRoot);
  expect(packed.status, packed.stderr).toBe(0);
  // The JSON report is the last thing on stdout, an array opening on a line of its own (prepack's logs come first).
  const report = packed.stdout.slice(packed.stdout.search(/^\[$/m));
  const [info] = JSON.parse(report) as { filename: string; files: { path: string }[] }[];
  files = info.files.map((f) => f.path);
  const untar = run('tar', ['-xzf', path.join(dir, info.filename), '-C', dir], dir);
  expect(untar.status, untar.stderr).toBe(0);
  // The package's dependencies from this checkout; the consumer finds the package by its name.
  await symlink(path.join(repoRoot, 'node_modules'), path.join(dir, 'package', 'node_modules'), 'dir');
  await mkdir(path.join(dir, 'node_modules'));
  await symlink(path.join(dir, 'package'), path.join(dir, 'node_modules', 'convbn'), 'dir');
}, 300_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the tarball holds the built .wasm files and the JavaScript its entry points name, and no TypeScript sources', () => {
  for (const f of ['dist/runtime/wasm/build/convbn.wasm', 'dist/runtime/wasm/build/convbn-st.wasm',
    'dist/runtime/index.js', 'dist/runtime/index.d.ts', 'dist/codegen/cli/main.js']) {
    expect(files).toContain(f);
  }
  expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
});

test("the packaged `convbn check --backend wasm` passes oracle cases and fails a wrong one", async () => {
  const cases = path.join(dir, 'cases');
  await mkdir(cases);
  await writeFile(path.join(cases, 'good.json'), JSON.stringify(makeCase(config, 7)));
  const bin = path.join(dir, 'package', 'dist', 'codegen', 'cli', 'main.js');
  const good = run(process.execPath, [bin, 'check', cases, '--backend', 'wasm'], dir);
  expect(good.stdout.trim().split('\n').at(-1), good.stderr).toBe('4 passed, 0 failed');
  expect(good.status).toBe(0);

  const bad = makeCase(config, 8);
  bad.modes.tune!.grad_weight[0] += 1;
  await writeFile(path.join(cases, 'bad.json'), JSON.stringify(bad));
  const both = run(process.execPath, [bin, 'check', cases, '--backend', 'wasm'], dir);
  expect(both.stdout.trim().split('\n').at(-1)).toBe('7 passed, 1 failed');
  expect(both.status).toBe(1);
});

test("`import 'convbn'` from the unpacked package runs a tune step on WASM that matches the oracle", async () => {
  const c = makeCase(config, 9, ['tune']);
  await writeFile(path.join(dir, 'case.json'), JSON.stringify(c));
  const script = [
    "import { readFileSync } from 'node:fs';",
    "import { createEngine } from 'convbn';",
    "const c = JSON.parse(readFileSync('case.json', 'utf8'));",
    'const f = (a) => Float32Array.from(a);',
    "const engine = await createEngine({ backend: 'wasm' });",
    'const layer = engine.createLayer(c.config, { weight: f(c.inputs.weight), bias: f(c.inputs.bias), gamma: f(c.inputs.gamma),',
    '  beta: f(c.inputs.beta), runningMean: f(c.inputs.running_mean), runningVar: f(c.inputs.running_var) });',
    "const y = await layer.forward(f(c.inputs.x), 'tune');",
    'const g = await layer.backward(f(c.inputs.grad_y));',
    'console.log(JSON.stringify({ backend: engine.backend, y: Array.from(y), gradX: Array.from(g.gradX), gradGamma: Array.from(g.gradGamma) }));',
    'engine.destroy();',
  ].join('\n');
  await writeFile(path.join(dir, 'consumer.mjs'), script);
  const r = run(process.execPath, ['consumer.mjs'], dir);
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number[] | string>;
  expect(out.backend).toBe('wasm');
  const expected = c.modes.tune!;
  for (const [key, ref] of [['y', expected.y], ['gradX', expected.grad_x], ['gradGamma', expected.grad_gamma]] as const) {
    const got = out[key] as number[];
    expect(got.length, key).toBe(ref.length);
    const scale = Math.max(...ref.map(Math.abs));
    const worst = Math.max(...got.map((v, i) => Math.abs(v - ref[i])));
    expect(worst / scale, key).toBeLessThan(1e-5);
  }
});
