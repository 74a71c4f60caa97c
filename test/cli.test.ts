/**
 * The convbn CLI, run in-process: gen writes parseable WGSL and a manifest that
 * agrees with it; check runs any directory of case files and its exit status
 * and last line say whether all passed.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { main } from '../codegen/cli/main.js';
import { normalizeConfig, tensorSizes } from '../codegen/config.js';
import { IN_CI } from './helpers/backends.js';
import { createWebGPUEngine } from '../runtime/webgpu/engine.js';
import { makeCase } from './oracle/makeCase.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const modelsDir = process.env.CONVBN_MODELS ?? path.resolve(repoRoot, '../shared/models');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  try {
    const code = await main(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'convbn-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('convbn help', () => {
  test('top-level help lists every command', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    for (const command of ['gen', 'check', 'tune', 'resnet18']) expect(out).toContain(`  ${command} `);
  });
  test.each(['gen', 'check', 'resnet18'])('%s --help documents flags with an example', async (command) => {
    const { code, out } = await run([command, '--help']);
    expect(code).toBe(0);
    expect(out).toMatch(/Example/);
    expect(out).toMatch(/--/);
  });
  test('an unknown command exits 2', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
  });
});

describe('convbn gen', () => {
  test('one layer from flags: every kernel parses and the manifest matches the WGSL', async () => {
    const out = path.join(dir, 'gen-flags');
    const { code } = await run(['gen', '--N', '2', '--Cin', '4', '--Cout', '6', '--H', '9', '--W', '7',
      '--kernel', '3,2', '--stride', '2', '--padding', '1,0,2,1', '--groups', '2', '--out', out]);
    expect(code).toBe(0);
    const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8'));
    const files = (await readdir(out)).filter((f) => f.endsWith('.wgsl'));
    expect(files.length).toBe(Object.keys(manifest.kernels).length);
    const config = normalizeConfig(manifest.layers[0].config);
    expect(manifest.layers[0].outputShape).toEqual([2, 6, 4, 5]); // (9+1+0-3)/2+1, (7+2+1-2)/2+1
    for (const [id, kernel] of Object.entries<any>(manifest.kernels)) {
      const code = await readFile(path.join(out, kernel.file), 'utf8');
      const reflect = new WgslReflect(code);
      const entry = reflect.entry.compute.find((f) => f.name === kernel.entryPoint)!;
      expect(entry.workgroupSize, id).toEqual(kernel.workgroupSize);
      expect(reflect.storage.map((v) => v.name).sort(), id).toEqual(kernel.bindings.map((b: any) => b.name).sort());
      for (const b of kernel.bindings) {
        if (b.name === 'x' || b.name === 'gradX') expect(b.elements).toBe(tensorSizes(config).x);
        if (b.name === 'weight' || b.name === 'gradWeight') expect(b.elements).toBe(tensorSizes(config).weight);
      }
      expect(code).toContain('const STRIDE_H: u32 = 2u;');
    }
    // Every mode's plan names generated kernels only.
    for (const plan of Object.values<any>(manifest.layers[0].plans)) {
      for (const id of [...plan.forward, ...plan.backward]) expect(manifest.kernels[id]).toBeDefined();
    }
  });

  test('a JSON file of layers, named or bare', async () => {
    const file = path.join(dir, 'layers.json');
    await writeFile(file, JSON.stringify([
      { name: 'stem', config: { N: 1, Cin: 3, Cout: 8, H: 16, W: 16, kernel: 3, stride: 2, padding: 'same' } },
      { N: 1, Cin: 8, Cout: 8, H: 8, W: 8, kernel: 3, groups: 8, padding: 1 },
    ]));
    const out = path.join(dir, 'gen-file');
    expect((await run(['gen', '--layers', file, '--out', out])).code).toBe(0);
    const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.layers.map((l: any) => l.name)).toEqual(['stem', 'layer1']);
    expect(manifest.layers[0].config.padding).toEqual([0, 1, 0, 1]);
  });

  test('bad flags exit 2 with the field and the allowed range', async () => {
    const { code, err } = await run(['gen', '--N', '2', '--Cin', '4', '--Cout', '6', '--H', '9', '--W', '9',
      '--kernel', '3', '--groups', '4', '--out', path.join(dir, 'bad')]);
    expect(code).toBe(2);
    expect(err).toMatch(/groups = 4 is invalid: must divide Cout = 6/);
    const missing = await run(['gen', '--N', '2', '--out', path.join(dir, 'bad')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--Cin/);
  });

  test('--onnx finds the pairs of tricky_convbn.onnx and writes its manifest and params', async () => {
    const out = path.join(dir, 'gen-onnx');
    const { code, out: text } = await run(['gen', '--onnx', path.join(modelsDir, 'tricky_convbn.onnx'), '--out', out]);
    expect(code).toBe(0);
    expect(text).toMatch(/3 ConvBN pairs, 1 plain convs, 1 refused/);
    const manifest = JSON.parse(await readFile(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.layers).toHaveLength(3);
    const onnx = JSON.parse(await readFile(path.join(out, 'onnx-manifest.json'), 'utf8'));
    expect(JSON.stringify(onnx)).toMatch(/2 consumers/);
    expect((await readFile(path.join(out, 'params.bin'))).byteLength).toBeGreaterThan(0);
  });
});

const hasWebGPU = await createWebGPUEngine().then((e) => (e.destroy(), true), () => false);
if (IN_CI && !hasWebGPU) throw new Error('CI=true but no WebGPU adapter for convbn check');

describe.skipIf(!hasWebGPU)('convbn check', () => {
  const configs = [
    { N: 2, Cin: 3, Cout: 4, H: 7, W: 6, kernel: [3, 2], stride: [2, 1], padding: [1, 0, 2, 1], bias: true },
    { N: 2, Cin: 4, Cout: 8, H: 5, W: 5, kernel: 3, groups: 4, dilation: 2, padding: 2, bias: false },
    // The case file carries the layout: its tensors are NHWC.
    { N: 2, Cin: 3, Cout: 4, H: 4, W: 5, kernel: 3, padding: 1, layout: 'NHWC' },
  ] as const;

  test('passes a directory of generated cases and ends with "N passed, 0 failed"', async () => {
    const cases = path.join(dir, 'cases-good');
    await rm(cases, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(cases));
    for (const [i, c] of configs.entries()) {
      await writeFile(path.join(cases, `c${i}.json`), JSON.stringify(makeCase(c as never, 10 + i)));
    }
    const { code, out } = await run(['check', cases, '--backend', 'webgpu']);
    expect(out.trim().split('\n').at(-1)).toBe('12 passed, 0 failed');
    expect(out).toMatch(/^PASS \S+ tune /m);
    expect(code).toBe(0);
  });

  test('a wrong reference makes it fail with exit 1, naming the case, mode and tensor', async () => {
    const cases = path.join(dir, 'cases-bad');
    await import('node:fs/promises').then((fs) => fs.mkdir(cases, { recursive: true }));
    const file = makeCase(configs[0] as never, 3);
    file.modes.eval!.grad_weight[0] += 1;
    await writeFile(path.join(cases, 'bad.json'), JSON.stringify(file));
    const { code, out } = await run(['check', cases, '--backend', 'webgpu']);
    expect(code).toBe(1);
    expect(out).toMatch(/FAIL \S+ eval\s+worst grad_weight/);
    expect(out.trim().split('\n').at(-1)).toBe('3 passed, 1 failed');
  });
});
