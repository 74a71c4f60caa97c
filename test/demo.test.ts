/**
 * The fine-tuning demo (examples/demo.ts) in a short configuration: tune must
 * train exactly like eval (same losses to float tolerance at every step)
 * while holding less for backward, and the report must be written with
 * Vega-rendered SVG charts.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createEngine, tensorSizes, normalizeConfig, type Engine } from '../runtime/index.js';
import { FINETUNE_TASK, makeBatch } from '../examples/finetune/data.js';
import { blockConfigs, ConvNet, initHead, initState } from '../examples/finetune/model.js';
import { softmaxCrossEntropy } from '../examples/finetune/ops.js';
import { mulberry32 } from '../examples/finetune/rng.js';
import { relativeError } from '../runtime/check/compare.js';
import { formatTables, summarizeRun, writeReport } from '../examples/finetune/report.js';
import { QUICK_OPTIONS, relativeDiffs, runDemo, type DemoOptions, type DemoResult } from '../examples/finetune/train.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const options: DemoOptions = { ...QUICK_OPTIONS, steps: 8 };

describe('fine-tuning demo, short run', () => {
  let engine: Engine;
  let result: DemoResult;
  let outDir: string;

  beforeAll(async () => {
    engine = await createEngine({ backend: 'auto' });
    result = await runDemo(engine, options);
    outDir = await mkdtemp(path.join(os.tmpdir(), 'convbn-demo-'));
  });

  afterAll(async () => {
    engine?.destroy();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  const run = (mode: string) => {
    const r = result.runs.find((x) => x.mode === mode);
    if (!r) throw new Error(`no ${mode} run`);
    return r;
  };

  test('every mode ran every step with finite losses, from the same starting function', () => {
    expect(result.runs.map((r) => r.mode)).toEqual(['eval', 'tune', 'deploy']);
    for (const r of result.runs) {
      expect(r.losses).toHaveLength(options.steps);
      for (const loss of r.losses) expect(Number.isFinite(loss)).toBe(true);
      expect(r.diverged).toBeUndefined();
    }
    // Step 0 evaluates the same folded-or-not function in all three modes.
    const first = run('eval').losses[0];
    for (const mode of ['tune', 'deploy']) expect(Math.abs(run(mode).losses[0] - first) / first).toBeLessThan(1e-5);
    // A fresh 8-class head starts near chance, ln 8.
    expect(first).toBeGreaterThan(1.5);
    expect(first).toBeLessThan(3);
  });

  test("tune's loss equals eval's within 1e-4 relative at every step", () => {
    const ev = run('eval').losses;
    const tu = run('tune').losses;
    expect(tu).toHaveLength(ev.length);
    for (let i = 0; i < ev.length; i++) {
      const rel = Math.abs(tu[i] - ev[i]) / Math.abs(ev[i]);
      expect(rel, `step ${i}: eval ${ev[i]} tune ${tu[i]}`).toBeLessThanOrEqual(1e-4);
    }
    expect(result.tuneVsEval.pass).toBe(true);
    expect(result.tuneVsEval.firstAbove).toBe(-1);
    expect(result.tuneVsEval.perStep).toEqual(relativeDiffs(ev, tu));
    // The parameters moved: the losses are not all the same number.
    expect(new Set(ev).size).toBeGreaterThan(1);
  });

  test('deploy trains different parameters: its curve leaves eval after the first update', () => {
    const ev = run('eval').losses;
    const de = run('deploy').losses;
    expect(Math.max(...relativeDiffs(ev, de).slice(1))).toBeGreaterThan(1e-3);
  });

  test('tune holds less for backward than eval, and at least its inputs x', () => {
    const ev = run('eval');
    const tu = run('tune');
    const xBytes = blockConfigs(options.spec).reduce((sum, c) => sum + 4 * tensorSizes(normalizeConfig(c)).x, 0);
    expect(tu.heldBytes).toBeGreaterThanOrEqual(xBytes);
    expect(tu.heldBytes).toBeLessThan(ev.heldBytes);
    expect(tu.peakBytes).toBeLessThan(ev.peakBytes);
    expect(tu.peakBytes).toBeGreaterThanOrEqual(tu.heldBytes);
    // eval keeps the conv output z as well: at least x plus one output-sized tensor per layer.
    const yBytes = blockConfigs(options.spec).reduce((sum, c) => sum + 4 * tensorSizes(normalizeConfig(c)).y, 0);
    expect(ev.heldBytes).toBeGreaterThanOrEqual(xBytes + yBytes);
    for (const r of result.runs) {
      const s = summarizeRun(r, options.warmupSteps);
      expect(s.msPerStep.median).toBeGreaterThan(0);
      expect(s.convbnMsPerStep.median).toBeLessThanOrEqual(s.msPerStep.median);
    }
  });

  test('the report files are written, with Vega SVG charts', async () => {
    const written = await writeReport(result, outDir);
    const html = await readFile(written.html, 'utf8');
    expect(written.html).toBe(path.join(outDir, 'index.html'));
    const svgs = html.match(/<svg[^>]*class="marks"/g) ?? [];
    expect(written.charts).toEqual(expect.arrayContaining(['loss', 'memory', 'time', 'drift', 'sweep']));
    expect(svgs.length).toBe(written.charts.length);
    // Vega draws marks as paths: the loss chart has a line per mode.
    const lossChart = html.slice(html.indexOf('id="chart-loss"'), html.indexOf('id="chart-memory"'));
    expect(lossChart).toContain('<path');
    expect(lossChart).toContain('Fine-tuning loss per mode');
    for (const mode of ['eval', 'tune', 'deploy']) expect(lossChart).toContain(`>${mode}<`);

    const summary = JSON.parse(await readFile(written.json, 'utf8')) as {
      backend: string; modes: { mode: string; losses: number[]; heldBytes: number }[]; tuneVsEval: { pass: boolean };
    };
    expect(summary.backend).toBe(engine.backend);
    expect(summary.modes.map((m) => m.mode)).toEqual(['eval', 'tune', 'deploy']);
    expect(summary.modes[1].losses).toEqual(run('tune').losses);
    expect(summary.modes[1].heldBytes).toBe(run('tune').heldBytes);
    expect(summary.tuneVsEval.pass).toBe(true);

    const table = formatTables(result);
    expect(table).toMatch(/^tune\s+0\.1\s/m);
    expect(table).toContain('losses agree within 0.0001 relative for all 8 steps');
  });
});

describe('one training step of the demo network', () => {
  test('tune gives eval\'s gradients for every parameter, through ReLU, pooling and the head; deploy gives others', async () => {
    const engine = await createEngine({ backend: 'auto' });
    try {
      const spec = QUICK_OPTIONS.spec;
      const rng = mulberry32(7);
      const state = initState(spec, 8, rng);
      // Non-trivial BN statistics, so that folding changes the numbers.
      for (const p of state.layers) {
        p.runningMean = Float32Array.from(p.runningMean, () => rng() - 0.5);
        p.runningVar = Float32Array.from(p.runningVar, () => 0.2 + 3 * rng());
        p.gamma = Float32Array.from(p.gamma, () => 0.5 + rng());
        p.beta = Float32Array.from(p.beta, () => rng() - 0.5);
      }
      state.head = initHead(spec.channels[spec.channels.length - 1], 8, rng);
      const batch = makeBatch(FINETUNE_TASK, rng, spec.batch, spec.size);
      const step = async (mode: 'eval' | 'tune' | 'deploy') => {
        const net = new ConvNet(engine, spec, state);
        try {
          const logits = await net.forward(batch.x, mode, true);
          const { loss, grad } = softmaxCrossEntropy(logits, batch.labels, 8);
          return { loss, grads: await net.backward(grad) };
        } finally {
          net.destroy();
        }
      };
      const ev = await step('eval');
      const tu = await step('tune');
      expect(Math.abs(tu.loss - ev.loss) / ev.loss).toBeLessThan(1e-5);
      const pairs: [string, Float32Array | undefined, Float32Array | undefined][] = [
        ['head weight', ev.grads.head.gradWeight, tu.grads.head.gradWeight],
        ['head bias', ev.grads.head.gradBias, tu.grads.head.gradBias],
        ...ev.grads.layers.flatMap((g, i): [string, Float32Array | undefined, Float32Array | undefined][] => [
          [`layer ${i} weight`, g.gradWeight, tu.grads.layers[i].gradWeight],
          [`layer ${i} gamma`, g.gradGamma, tu.grads.layers[i].gradGamma],
          [`layer ${i} beta`, g.gradBeta, tu.grads.layers[i].gradBeta],
          // The first layer's input is the images: the network asks for no gradX there.
          ...(i > 0 ? [[`layer ${i} x`, g.gradX, tu.grads.layers[i].gradX] as [string, Float32Array | undefined, Float32Array | undefined]] : []),
        ]),
      ];
      expect('gradX' in ev.grads.layers[0] || 'gradX' in tu.grads.layers[0]).toBe(false);
      for (const [name, a, b] of pairs) {
        expect(a, name).toBeDefined();
        expect(b, name).toBeDefined();
        expect(relativeError(b!, a!), name).toBeLessThan(1e-4);
      }
      // Deploy differentiates w.r.t. W' = W s: its weight gradient is eval's divided by s, per output channel.
      const de = await step('deploy');
      expect(Math.abs(de.loss - ev.loss) / ev.loss).toBeLessThan(1e-5);
      const c0 = normalizeConfig(blockConfigs(spec)[0]);
      const p0 = state.layers[0];
      const perOut = p0.weight.length / c0.Cout;
      const expected = Float32Array.from(ev.grads.layers[0].gradWeight!, (g, i) => {
        const o = Math.floor(i / perOut);
        return g / (p0.gamma[o] / Math.sqrt(p0.runningVar[o] + c0.eps));
      });
      expect(relativeError(de.grads.layers[0].gradFoldedWeight!, expected)).toBeLessThan(1e-4);
      expect(relativeError(de.grads.layers[0].gradFoldedWeight!, ev.grads.layers[0].gradWeight!)).toBeGreaterThan(0.1);
    } finally {
      engine.destroy();
    }
  });
});

describe('npm start (examples/demo.ts)', () => {
  test('--quick --steps 3 --out DIR prints the backend and the table and writes the report', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'convbn-demo-cli-'));
    try {
      const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
      const { stdout, stderr } = await promisify(execFile)(tsx, ['examples/demo.ts', '--quick', '--steps', '3', '--out', out], {
        cwd: repoRoot, env: { ...process.env, FORCE_COLOR: '0' }, timeout: 110_000,
      });
      expect(stdout).toMatch(/backend (webgpu|wasm) \(asked for auto\)/);
      expect(stdout).toMatch(/^eval\s/m);
      expect(stdout).toMatch(/^deploy\s/m);
      expect(stderr).toContain('[100%]'); // plain progress lines: stderr is not a TTY here
      expect((await stat(path.join(out, 'index.html'))).size).toBeGreaterThan(10_000);
      expect((await stat(path.join(out, 'summary.json'))).size).toBeGreaterThan(100);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  test('rejects a bad flag with usage and exit code 2', async () => {
    const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
    const error = await promisify(execFile)(tsx, ['examples/demo.ts', '--backend', 'cuda'], { cwd: repoRoot }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toContain('--backend must be webgpu, wasm or auto');
  });
});
