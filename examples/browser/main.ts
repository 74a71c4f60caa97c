/**
 * The convbn runtime in a web page, imported the way an app would import it.
 * Loads one reference case (vectors/<id>.json next to the page), builds its
 * ConvBN layer, runs tune-mode forward and backward on navigator.gpu (or the
 * WASM kernels: ?backend=wasm, or when there is no adapter), and shows the
 * relative errors against the case's expected tensors and the timings. The
 * same numbers land in window.__convbnResult for tests.
 *
 * Bundled by scripts/build-browser.mjs into examples/browser/dist/main.js.
 */
import { createEngine, type BackendChoice, type MemoryStats } from '../../runtime/index.js';
import { relativeError, TOLERANCE } from '../../runtime/check/compare.js';
import { parseCase, type ConvBNCase } from '../../runtime/check/caseFormat.js';

export interface BrowserResult {
  status: 'done' | 'error';
  caseId: string;
  requestedBackend: BackendChoice;
  backend?: string;
  description?: string;
  crossOriginIsolated: boolean;
  mode: 'tune';
  /** Relative error (runtime/check/compare.ts) of every tensor the case holds for tune mode. */
  errors: Record<string, number>;
  maxError: number;
  tolerance: number;
  pass: boolean;
  timingsMs: Record<string, number>;
  memory?: MemoryStats;
  /** What the layer produced, keyed as in the case file (for tests to check independently). */
  outputs: Record<string, number[]>;
  error?: string;
}

declare global {
  interface Window {
    __convbnResult?: BrowserResult;
  }
}

const TUNE_KEYS = ['y', 'grad_x', 'grad_weight', 'grad_bias', 'grad_gamma', 'grad_beta'] as const;

/** Fetches vectors/<id>.json next to the page and validates it with the runtime's own case parser. */
async function loadCase(id: string): Promise<ConvBNCase> {
  if (!/^[\w.-]+$/.test(id)) throw new Error(`case id ${JSON.stringify(id)} must be a file name (letters, digits, . _ -)`);
  const url = new URL(`vectors/${id}.json`, document.baseURI);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url.href} gave HTTP ${response.status}`);
  const parsed = parseCase(await response.json(), url.href);
  if (!parsed.modes.tune) throw new Error(`${url.href} has no tune mode`);
  return parsed;
}

function maxAbs(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(out[i] - ref[i]));
  return m;
}

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1];
};

function row(table: string, cells: (string | [string, string])[]): void {
  const tr = document.createElement('tr');
  for (const cell of cells) {
    const td = document.createElement('td');
    if (Array.isArray(cell)) {
      td.textContent = cell[0];
      td.className = cell[1];
    } else td.textContent = cell;
    tr.append(td);
  }
  document.querySelector(`#${table} tbody`)!.append(tr);
}

function setStatus(text: string, kind: 'pass' | 'fail' | ''): void {
  const el = document.getElementById('status')!;
  el.textContent = text;
  el.className = kind;
}

async function run(): Promise<BrowserResult> {
  const params = new URLSearchParams(location.search);
  const caseId = params.get('case') ?? 'case-2026-005';
  const requested = (params.get('backend') ?? 'auto') as BackendChoice;
  const result: BrowserResult = {
    status: 'error', caseId, requestedBackend: requested, crossOriginIsolated: globalThis.crossOriginIsolated === true,
    mode: 'tune', errors: {}, maxError: Infinity, tolerance: TOLERANCE, pass: false, timingsMs: {}, outputs: {},
  };
  try {
    if (!['webgpu', 'wasm', 'auto'].includes(requested)) throw new Error(`?backend must be webgpu, wasm or auto, got ${requested}`);
    setStatus(`Loading ${caseId}…`, '');
    const file = await loadCase(caseId);
    const t0 = performance.now();
    const engine = await createEngine({ backend: requested });
    const t1 = performance.now();
    result.backend = engine.backend;
    result.description = engine.description;
    try {
      const { x, gradY, ...params } = file.inputs;
      const layer = engine.createLayer(file.config, params);
      const t2 = performance.now();
      const y = await layer.forward(x, 'tune');
      const t3 = performance.now();
      const grads = await layer.backward(gradY);
      const t4 = performance.now();
      const produced: Record<string, Float32Array | undefined> = {
        y, grad_x: grads.gradX, grad_weight: grads.gradWeight, grad_bias: grads.gradBias,
        grad_gamma: grads.gradGamma, grad_beta: grads.gradBeta,
      };
      result.memory = layer.memory();
      // Steady state: the pipelines are compiled and the buffers pooled now.
      const forwardMs: number[] = [];
      const backwardMs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const a = performance.now();
        await layer.forward(x, 'tune');
        const b = performance.now();
        await layer.backward(gradY);
        backwardMs.push(performance.now() - b);
        forwardMs.push(b - a);
      }
      layer.destroy();
      result.timingsMs = {
        'create engine': t1 - t0,
        'create layer': t2 - t1,
        [engine.backend === 'webgpu' ? 'first forward (cold: compiles its pipelines)' : 'first forward (cold)']: t3 - t2,
        'first backward (cold)': t4 - t3,
        'forward, median of 5': median(forwardMs),
        'backward, median of 5': median(backwardMs),
      };
      const expected = file.modes.tune!;
      let worst = 0;
      for (const key of TUNE_KEYS) {
        const ref = expected[key];
        if (!ref) continue;
        const out = produced[key];
        const err = out ? relativeError(out, ref) : Infinity;
        result.errors[key] = err;
        if (out) result.outputs[key] = Array.from(out);
        worst = Math.max(worst, Number.isNaN(err) ? Infinity : err);
        row('errors', [key, String(ref.length), err.toExponential(2), out ? maxAbs(out, ref).toExponential(2) : '-',
          err <= TOLERANCE ? ['yes', 'ok'] : ['NO', 'bad']]);
      }
      result.maxError = worst;
      result.pass = worst <= TOLERANCE;
      result.status = 'done';
    } finally {
      engine.destroy();
    }
    const c = file.configInput;
    const pair = (v: unknown): string => (Array.isArray(v) ? v.join('x') : String(v ?? '-'));
    row('setup', ['case', caseId]);
    row('setup', ['backend', `${result.backend} (asked for ${requested})`]);
    row('setup', ['adapter / CPU path', result.description ?? '-']);
    row('setup', ['cross-origin isolated (WASM threads)', String(result.crossOriginIsolated)]);
    row('setup', ['layer', `N=${c.N} Cin=${c.Cin} Cout=${c.Cout} ${c.H}x${c.W}, kernel ${pair(c.kernel)}, stride ${pair(c.stride)}, ` +
      `padding ${pair(c.padding)}, dilation ${pair(c.dilation)}, groups ${c.groups ?? 1}, bias ${c.bias ?? true}`]);
    for (const [what, ms] of Object.entries(result.timingsMs)) row('timings', [what, ms.toFixed(2)]);
    if (result.memory) for (const [k, v] of Object.entries(result.memory)) row('memory', [k, `${v} bytes`]);
    setStatus(`${result.pass ? 'PASS' : 'FAIL'}: tune mode on ${result.backend}, largest relative error ${result.maxError.toExponential(2)} ` +
      `(tolerance ${TOLERANCE}) over ${Object.keys(result.errors).length} tensors.`, result.pass ? 'pass' : 'fail');
  } catch (e) {
    result.status = 'error';
    result.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    setStatus(`Error: ${result.error}`, 'fail');
  }
  return result;
}

void run().then((result) => {
  window.__convbnResult = result;
  document.documentElement.dataset.convbn = result.status;
});
