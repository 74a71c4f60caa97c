/**
 * What the demo shows: a text table per mode on stdout, and report/index.html
 * plus report/summary.json with charts drawn by Vega-Lite, compiled and
 * rendered to SVG in Node (no browser, no hand-drawn SVG).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { DemoResult, RunResult } from './train.js';

// ---------------------------------------------------------------------------
// Numbers

function sortedTail(values: readonly number[], skip: number): number[] {
  const rest = values.length > skip ? values.slice(skip) : values.slice();
  return rest.sort((a, b) => a - b);
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[i];
}

const mean = (a: readonly number[]): number => (a.length === 0 ? NaN : a.reduce((s, v) => s + v, 0) / a.length);

/** The figures a row of the table shows, derived from one run. */
export interface RunSummary {
  readonly label: string;
  readonly mode: string;
  readonly lr: number;
  readonly steps: number;
  readonly firstLoss: number;
  /** Mean training loss over the last 10 steps (or fewer). */
  readonly finalLoss: number;
  readonly finalTrainAccuracy: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  readonly msPerStep: { median: number; p10: number; p90: number };
  readonly convbnMsPerStep: { median: number; p10: number; p90: number };
  readonly heldBytes: number;
  readonly peakBytes: number;
  readonly parameterBytes: number;
  readonly diverged?: { step: number; reason: string };
}

export function summarizeRun(r: RunResult, warmupSteps: number): RunSummary {
  const last = (a: readonly number[]): number[] => a.slice(Math.max(0, a.length - 10)).filter(Number.isFinite);
  const spread = (a: readonly number[]): { median: number; p10: number; p90: number } => {
    const s = sortedTail(a, warmupSteps);
    return { median: quantile(s, 0.5), p10: quantile(s, 0.1), p90: quantile(s, 0.9) };
  };
  return {
    label: r.label,
    mode: r.mode,
    lr: r.lr,
    steps: r.losses.length,
    firstLoss: r.losses[0],
    finalLoss: r.diverged ? NaN : mean(last(r.losses)),
    finalTrainAccuracy: r.diverged ? NaN : mean(last(r.accuracies)),
    testLoss: r.testLoss,
    testAccuracy: r.testAccuracy,
    msPerStep: spread(r.stepMs),
    convbnMsPerStep: spread(r.convbnMs),
    heldBytes: r.heldBytes,
    peakBytes: r.peakBytes,
    parameterBytes: r.parameterBytes,
    ...(r.diverged ? { diverged: r.diverged } : {}),
  };
}

export function formatBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** "30% less" / "12% more" / "the same": `a` against `b`. */
export function change(a: number, b: number): string {
  if (!(b > 0) || !Number.isFinite(a)) return '-';
  const d = Math.round(100 * (1 - a / b));
  return d > 0 ? `${d}% less` : d < 0 ? `${-d}% more` : 'the same';
}

const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : String(v));
const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '-');

function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const MAIN_HEADER = ['mode', 'lr', 'loss (last 10)', 'train acc', 'test loss', 'test acc', 'ms/step', 'ConvBN ms/step', 'held for backward', 'peak'];

function mainRow(s: RunSummary): string[] {
  return [
    s.diverged ? `${s.label} (diverged @${s.diverged.step})` : s.label,
    String(s.lr),
    fmt(s.finalLoss, 4),
    pct(s.finalTrainAccuracy),
    fmt(s.testLoss, 4),
    pct(s.testAccuracy),
    fmt(s.msPerStep.median, 1),
    fmt(s.convbnMsPerStep.median, 1),
    formatBytes(s.heldBytes),
    formatBytes(s.peakBytes),
  ];
}

/** eval and deploy at every learning rate: the main runs' pair and the sweep's. */
export function sweepRuns(result: DemoResult): RunResult[] {
  const main = result.runs.filter((r) => r.mode === 'eval' || r.mode === 'deploy');
  return [...main, ...result.sweep].sort((a, b) => a.lr - b.lr || a.mode.localeCompare(b.mode));
}

function agreementLine(result: DemoResult): string {
  const t = result.tuneVsEval;
  const within = (first: number, steps: number): string => (first < 0 ? `all ${steps} steps` : `the first ${first} steps`);
  return `tune vs eval: losses agree within ${t.tolerance} relative for ${within(t.firstAbove, t.steps)} ` +
    `(max ${t.maxRelativeDiff.toExponential(2)}); control (eval from weights 1 ulp away) agrees with eval for ` +
    `${within(t.control.firstAbove, t.steps)} (max ${t.control.maxRelativeDiff.toExponential(2)})`;
}

/** The stdout report: the per-mode table, the tune == eval check, and the sweep. */
export function formatTables(result: DemoResult): string {
  const w = result.options.warmupSteps;
  const main = result.runs.map((r) => summarizeRun(r, w));
  const parts = [
    `Fine-tuning, ${result.options.steps} steps at lr ${result.options.lr} (ms/step: median over steps; bytes: summed over the ` +
      `${result.options.spec.channels.length} ConvBN layers, from layer.memory()):`,
    textTable(MAIN_HEADER, main.map(mainRow)),
    '',
    agreementLine(result),
  ];
  const ev = main.find((s) => s.mode === 'eval');
  const tu = main.find((s) => s.mode === 'tune');
  if (ev && tu) {
    parts.push(
      `tune vs eval: held ${formatBytes(tu.heldBytes)} vs ${formatBytes(ev.heldBytes)} (${change(tu.heldBytes, ev.heldBytes)}), ` +
      `peak ${formatBytes(tu.peakBytes)} vs ${formatBytes(ev.peakBytes)} (${change(tu.peakBytes, ev.peakBytes)}), ` +
      `ConvBN time ${fmt(tu.convbnMsPerStep.median, 1)} vs ${fmt(ev.convbnMsPerStep.median, 1)} ms/step ` +
      `(${change(tu.convbnMsPerStep.median, ev.convbnMsPerStep.median)})`);
  }
  parts.push(deployVerdict(result));
  const all = sweepRuns(result);
  if (result.sweep.length > 0) {
    parts.push('', `eval vs deploy across learning rates, ${result.options.steps} steps each (loss = mean of the last 10 steps):`);
    const lrs = [...new Set(all.map((r) => r.lr))];
    const rows = lrs.map((lr) => {
      const cell = (mode: string): string[] => {
        const r = all.find((x) => x.lr === lr && x.mode === mode);
        if (!r) return ['-', '-'];
        const s = summarizeRun(r, w);
        return s.diverged ? [`diverged @${s.diverged.step}`, '-'] : [fmt(s.finalLoss, 4), pct(s.testAccuracy)];
      };
      return [String(lr), ...cell('eval'), ...cell('deploy')];
    });
    parts.push(textTable(['lr', 'eval loss', 'eval test acc', 'deploy loss', 'deploy test acc'], rows));
  }
  return parts.join('\n');
}

// ---------------------------------------------------------------------------
// Charts

const MODE_PALETTE: Record<string, string> = { train: '#7f7f7f', eval: '#1f77b4', tune: '#ff7f0e', deploy: '#d62728' };

/** A colour scale for exactly these modes (the legend lists only what is drawn). */
function modeColors(modes: readonly string[]): { domain: string[]; range: string[] } {
  const domain = [...new Set(modes)];
  return { domain, range: domain.map((m) => MODE_PALETTE[m] ?? '#333333') };
}

async function toSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new View(parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Vega-Lite specs of every chart, keyed by a short name. Exported so tests can inspect them. */
export function chartSpecs(result: DemoResult): Record<string, TopLevelSpec> {
  const w = result.options.warmupSteps;
  const schema = 'https://vega.github.io/schema/vega-lite/v6.json';
  const modeOrder = result.runs.map((r) => r.mode);
  const MODE_COLORS = modeColors(modeOrder);
  const SWEEP_COLORS = modeColors(['eval', 'deploy']);
  const finite = (v: number): number | null => (Number.isFinite(v) ? v : null);
  const lossCap = 4;
  const peakLoss = Math.max(...result.runs.flatMap((r) => r.losses.filter(Number.isFinite)));
  const lossRows = result.runs.flatMap((r) => r.losses.map((loss, step) => ({ mode: r.mode, step, loss: finite(loss) })));
  const summaries = result.runs.map((r) => summarizeRun(r, w));
  const memoryRows = summaries.flatMap((s) => [
    { mode: s.mode, measure: 'held for backward', KiB: s.heldBytes / 1024 },
    { mode: s.mode, measure: 'step peak', KiB: s.peakBytes / 1024 },
  ]);
  const timeRows = summaries.flatMap((s) => [
    { mode: s.mode, measure: 'whole step', median: s.msPerStep.median, p10: s.msPerStep.p10, p90: s.msPerStep.p90 },
    { mode: s.mode, measure: 'ConvBN calls', median: s.convbnMsPerStep.median, p10: s.convbnMsPerStep.p10, p90: s.convbnMsPerStep.p90 },
  ]);
  const t = result.tuneVsEval;
  const floor = 1e-9; // log scale: exact agreement is drawn at the floor
  const driftRows = [
    ...t.perStep.map((d, step) => ({ pair: 'tune vs eval', step, diff: Math.max(floor, Math.min(d, 10)) })),
    ...t.control.perStep.map((d, step) => ({ pair: 'control vs eval (weights 1 ulp off)', step, diff: Math.max(floor, Math.min(d, 10)) })),
  ];
  const all = sweepRuns(result);
  const sweepRows = all.map((r) => {
    const s = summarizeRun(r, w);
    return { mode: r.mode, lr: r.lr, loss: s.diverged ? null : s.finalLoss, testAccuracy: finite(s.testAccuracy), status: s.diverged ? `diverged at step ${s.diverged.step}` : 'finished' };
  });
  const sweepCurves = all.flatMap((r) => r.losses.map((loss, step) => ({ mode: r.mode, lr: `lr ${r.lr}`, step, loss: finite(loss) })));
  const lrLabels = [...new Set(all.map((r) => r.lr))].sort((a, b) => a - b).map((lr) => `lr ${lr}`);
  const rolling = [{ window: [{ op: 'mean' as const, field: 'loss', as: 'smoothed' }], frame: [-9, 0] as [number, number], groupby: ['mode'], sort: [{ field: 'step' }] }];

  return {
    loss: {
      $schema: schema,
      title: {
        text: `Fine-tuning loss per mode (lr ${result.options.lr})`,
        subtitle: ['thin: every step; thick: mean of the last 10 steps; tune (dashed) lies on eval',
          ...(peakLoss > lossCap ? [`y axis cut at ${lossCap}; the highest loss was ${peakLoss.toFixed(2)}`] : [])],
      },
      width: 520, height: 280,
      data: { values: lossRows },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        color: { field: 'mode', type: 'nominal', scale: MODE_COLORS, sort: modeOrder, legend: { symbolOpacity: 1, symbolStrokeWidth: 3 } },
        strokeDash: { condition: { test: "datum.mode === 'tune'", value: [6, 4] }, value: [1, 0] },
      },
      layer: [
        {
          mark: { type: 'line', strokeWidth: 1, opacity: 0.3, clip: true },
          encoding: { y: { field: 'loss', type: 'quantitative', title: 'training loss (cross-entropy)', scale: { domain: [0, Math.min(lossCap, Math.ceil(peakLoss))] } } },
        },
        { transform: rolling, mark: { type: 'line', strokeWidth: 2.5, clip: true }, encoding: { y: { field: 'smoothed', type: 'quantitative' } } },
      ],
    },
    memory: {
      $schema: schema,
      title: { text: 'ConvBN memory per training step', subtitle: 'summed over the layers, from layer.memory()' },
      width: 300, height: 220,
      data: { values: memoryRows },
      mark: 'bar',
      encoding: {
        x: { field: 'measure', type: 'nominal', title: null, axis: { labelAngle: 0 } },
        xOffset: { field: 'mode', type: 'nominal', sort: modeOrder },
        y: { field: 'KiB', type: 'quantitative', title: 'KiB' },
        color: { field: 'mode', type: 'nominal', scale: MODE_COLORS, sort: modeOrder },
        tooltip: [{ field: 'mode' }, { field: 'measure' }, { field: 'KiB', format: '.1f' }],
      },
    },
    time: {
      $schema: schema,
      title: { text: 'Time per training step', subtitle: `median, whisker p10 to p90; ${result.backend}` },
      width: 300, height: 220,
      data: { values: timeRows },
      encoding: {
        x: { field: 'measure', type: 'nominal', title: null, axis: { labelAngle: 0 }, sort: ['whole step', 'ConvBN calls'] },
        xOffset: { field: 'mode', type: 'nominal', sort: modeOrder },
        color: { field: 'mode', type: 'nominal', scale: MODE_COLORS, sort: modeOrder },
      },
      layer: [
        { mark: 'bar', encoding: { y: { field: 'median', type: 'quantitative', title: 'ms per step' } } },
        { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'p10', type: 'quantitative' }, y2: { field: 'p90' } } },
      ],
    },
    drift: {
      $schema: schema,
      title: { text: 'How far the loss curves drift apart', subtitle: '|a - b| / max(|a|, |b|) per step; float32 rounding grows through training' },
      width: 520, height: 200,
      layer: [
        {
          data: { values: driftRows },
          mark: { type: 'line', strokeWidth: 1.5 },
          encoding: {
            x: { field: 'step', type: 'quantitative' },
            y: { field: 'diff', type: 'quantitative', scale: { type: 'log', domain: [floor, 1] }, title: 'relative difference (log)' },
            color: {
              field: 'pair', type: 'nominal', title: null, legend: { labelLimit: 320, orient: 'bottom' },
              scale: { domain: ['tune vs eval', 'control vs eval (weights 1 ulp off)'], range: ['#ff7f0e', '#9467bd'] },
            },
          },
        },
        {
          data: { values: [{ tolerance: t.tolerance }] },
          mark: { type: 'rule', strokeDash: [4, 3], color: '#555' },
          encoding: { y: { field: 'tolerance', type: 'quantitative' } },
        },
      ],
    },
    scales: {
      $schema: schema,
      title: { text: 's = gamma / sqrt(running_var + eps) per channel', subtitle: "at the start of fine-tuning; deploy's W' gradient is eval's W gradient / s" },
      width: 520, height: 120,
      data: { values: result.bnChoice.scales.flatMap((s) => s.values.map((v) => ({ layer: `block ${s.layer + 1}`, s: v }))) },
      mark: { type: 'tick', thickness: 2 },
      encoding: {
        x: { field: 's', type: 'quantitative', scale: { type: 'log' }, title: 's (log scale)' },
        y: { field: 'layer', type: 'nominal', title: null },
      },
    },
    sweep: {
      $schema: schema,
      title: { text: `eval vs deploy across learning rates (${result.options.steps} steps)`, subtitle: 'final training loss (mean of the last 10 steps)' },
      width: 300, height: 220,
      data: { values: sweepRows },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'lr', type: 'quantitative', scale: { type: 'log' }, title: 'learning rate (log)' },
        y: { field: 'loss', type: 'quantitative', title: 'final training loss' },
        color: { field: 'mode', type: 'nominal', scale: SWEEP_COLORS },
        tooltip: [{ field: 'mode' }, { field: 'lr' }, { field: 'loss', format: '.3f' }, { field: 'testAccuracy', format: '.1%' }, { field: 'status' }],
      },
    },
    sweepCurves: {
      $schema: schema,
      title: { text: 'Loss curves of eval and deploy at each learning rate', subtitle: 'mean of the last 10 steps' },
      data: { values: sweepCurves },
      transform: [{ window: [{ op: 'mean', field: 'loss', as: 'smoothed' }], frame: [-9, 0], groupby: ['mode', 'lr'], sort: [{ field: 'step' }] }],
      facet: { field: 'lr', type: 'nominal', title: null, sort: lrLabels },
      columns: 4,
      spec: {
        width: 190, height: 120,
        mark: 'line',
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'smoothed', type: 'quantitative', title: 'loss', scale: { zero: true } },
          color: { field: 'mode', type: 'nominal', scale: SWEEP_COLORS },
        },
      },
    },
    pretrain: {
      $schema: schema,
      title: { text: 'Pretraining loss (train mode, batch statistics)' },
      width: 520, height: 160,
      data: { values: result.pretrain.losses.map((loss, step) => ({ step, loss })) },
      mark: { type: 'line', color: '#7f7f7f' },
      encoding: {
        x: { field: 'step', type: 'quantitative' },
        y: { field: 'loss', type: 'quantitative', title: 'training loss' },
      },
    },
  };
}

export async function renderCharts(result: DemoResult): Promise<Record<string, string>> {
  const svgs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(chartSpecs(result))) svgs[name] = await toSvg(spec);
  return svgs;
}

// ---------------------------------------------------------------------------
// Files

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlTable(header: string[], rows: string[][]): string {
  const head = header.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** A sentence on what deploy did at the main learning rate, from the numbers (never assumed). */
export function deployVerdict(result: DemoResult): string {
  const w = result.options.warmupSteps;
  const ev = result.runs.find((r) => r.mode === 'eval');
  const de = result.runs.find((r) => r.mode === 'deploy');
  if (!ev || !de) return '';
  const e = summarizeRun(ev, w);
  const d = summarizeRun(de, w);
  const classes = result.tasks.finetune.anglesDeg.length;
  const chance = Math.log(classes);
  const lead = `At lr ${result.options.lr}, eval reaches loss ${fmt(e.finalLoss, 3)} (test accuracy ${pct(e.testAccuracy)})`;
  if (d.diverged) return `${lead}; deploy diverged at step ${d.diverged.step} (${d.diverged.reason}).`;
  if (d.finalLoss >= 0.95 * chance && e.finalLoss < 0.8 * chance) {
    return `${lead}; deploy ends at loss ${fmt(d.finalLoss, 3)} (test accuracy ${pct(d.testAccuracy)}): chance level ` +
      `(ln ${classes} = ${fmt(chance, 3)}), it stopped learning.`;
  }
  const relation = d.finalLoss > e.finalLoss * 1.05 ? 'worse than' : d.finalLoss < e.finalLoss * 0.95 ? 'better than' : 'about the same as';
  return `${lead}; deploy reaches ${fmt(d.finalLoss, 3)} (test accuracy ${pct(d.testAccuracy)}): ${relation} eval.`;
}

export function renderHtml(result: DemoResult, svgs: Record<string, string>): string {
  const w = result.options.warmupSteps;
  const main = result.runs.map((r) => summarizeRun(r, w));
  const o = result.options;
  const t = result.tuneVsEval;
  const chart = (name: string): string => (svgs[name] ? `<figure class="chart" id="chart-${name}">${svgs[name]}</figure>` : '');
  const scales = result.bnChoice.scales.map((s) => `block ${s.layer + 1}: ${fmt(s.min, 2)} to ${fmt(s.max, 2)} (median ${fmt(s.median, 2)})`).join('; ');
  const within = (first: number): string => (first < 0 ? `all ${t.steps} steps` : `the first ${first} steps`);
  const ev = main.find((s) => s.mode === 'eval');
  const tu = main.find((s) => s.mode === 'tune');
  const [lo, hi] = result.bnChoice.scaleRange;
  const control = summarizeRun(result.control, w);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>convbn fine-tuning demo: eval, tune, deploy</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1180px; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
  h2 { font-size: 1.2rem; margin-top: 2rem; }
  .meta { color: #555; margin-top: 0; }
  table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-variant-numeric: tabular-nums; }
  th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
  td { white-space: nowrap; }
  th:first-child, td:first-child { text-align: left; }
  th { background: #f4f4f4; }
  .charts { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
  figure.chart { margin: 0; }
  .verdict { padding: 0.5rem 0.8rem; border-left: 4px solid #1f77b4; background: #f3f8fc; }
  .verdict.warn { border-color: #d62728; background: #fdf2f2; }
  code { background: #f4f4f4; padding: 0 0.2rem; }
</style>
</head>
<body>
<h1>ConvBN fine-tuning: eval vs tune vs deploy</h1>
<p class="meta">Backend <b>${escapeHtml(result.backend)}</b> (${escapeHtml(result.description)}); seed ${o.seed};
whole run ${(result.wallMs / 1000).toFixed(1)} s.</p>

<p>A ConvNet of ${o.spec.channels.length} ConvBN blocks from the convbn runtime (3x3 convolutions with ${o.spec.channels.join(', ')}
output channels), each followed by ReLU and 2x2 max pooling (global average pooling after the last), then a linear head and
softmax cross-entropy, trained with SGD (momentum ${o.momentum}) on batches of ${o.spec.batch} ${o.spec.size}x${o.spec.size} RGB
images. It was pretrained for ${o.pretrainSteps} steps in <b>train</b> mode (batch statistics) on
<i>${escapeHtml(result.tasks.pretrain.description)}</i> (test accuracy ${pct(result.pretrain.testAccuracyBefore)} before,
${pct(result.pretrain.testAccuracy)} after). It was then fine-tuned for ${o.steps} steps on a shifted task,
<i>${escapeHtml(result.tasks.finetune.description)}</i>, with a re-initialised head, in <b>eval</b>, <b>tune</b> and
<b>deploy</b> modes: same starting point, same batches, learning rate ${o.lr}.</p>

<div class="verdict${t.firstAbove >= 0 && t.firstAbove < t.steps / 4 ? ' warn' : ''}"><b>tune vs eval.</b> Their losses agree
within ${t.tolerance} relative for ${within(t.firstAbove)} (largest difference over the run ${t.maxRelativeDiff.toExponential(2)});
the control run, eval started from weights one float32 ulp away, stays within ${t.tolerance} of eval for ${within(t.control.firstAbove)}
(largest ${t.control.maxRelativeDiff.toExponential(2)}).
${ev && tu ? `Tune kept ${formatBytes(tu.heldBytes)} for backward where eval kept ${formatBytes(ev.heldBytes)}, peaked at
${formatBytes(tu.peakBytes)} against ${formatBytes(ev.peakBytes)}, and spent ${fmt(tu.convbnMsPerStep.median, 1)} ms per step in
the ConvBN layers against eval's ${fmt(ev.convbnMsPerStep.median, 1)} ms.` : ''}</div>

<h2>Per mode</h2>
${htmlTable(MAIN_HEADER, [...main.map(mainRow), mainRow(control)])}
<p>Loss: mean training loss of the last 10 steps. Test: ${o.testBatches * o.spec.batch} held-out images, evaluated in the run's
own mode. ms/step: median over steps after ${w} warm-up steps, the runs interleaved step by step; "ConvBN" counts only the time
awaiting the runtime's forward and backward calls (the rest is host-side ReLU, pooling, head, loss, SGD and parameter upload).
Bytes: the runtime's <code>layer.memory()</code> summed over the layers: <code>lastStepHeldBytes</code> (kept from forward for
backward) and <code>lastStepPeakBytes</code> (step buffers alive at once). The last row is the control run.</p>

<div class="charts">
${chart('loss')}
${chart('memory')}
${chart('time')}
</div>

<h2>Does tune compute what eval computes?</h2>
<p>Tune folds BN into the weights inside its kernels, so it rounds differently from eval's conv-then-BN at every step,
and training can amplify a float32 difference (one flipped ReLU or max-pool choice is enough) until the runs part. The
control run, eval from starting weights one ulp away (a one-off difference), ${t.control.firstAbove < 0
    ? 'stayed with eval for the whole run here: a one-off difference did not grow this time'
    : `parted from eval at step ${t.control.firstAbove + 1} here: even a one-ulp difference grows`}. Early on, where the
drift has not grown, the curves agree to float32 precision.</p>
${chart('drift')}

<h2>Deploy and the inverse scaling of its gradient</h2>
<p>Deploy folds BN into stored weights once, W' = W&middot;s with s = &gamma;/&radic;(running_var + &epsilon;) per output channel,
and then trains W'. Its gradient is dL/dW' = (dL/dW)/s. With g = dL/dW', an SGD step in deploy moves W' by lr&middot;g, while
eval's step on W (gradient s&middot;g) moves the same folded weight s&middot;W by lr&middot;s&sup2;&middot;g: deploy's effective
learning rate is eval's divided by s&sup2;, channel by channel. Where s is small, deploy takes far larger steps than eval; where
it is large, far smaller ones; no single learning rate matches eval for every channel.</p>
<p>The BN statistics were chosen to make this visible: after pretraining, each channel's conv weights were multiplied by c
(log-uniform in [${fmt(lo, 3)}, ${fmt(hi, 3)}]) and its running mean and variance by c and c&sup2;. This leaves eval's function
unchanged (pretraining test loss in eval mode ${fmt(result.bnChoice.evalLossBefore, 6)} before, ${fmt(result.bnChoice.evalLossAfter, 6)}
after) and deploy's W', b' too, but divides s by c: ${escapeHtml(scales)}.</p>
<p class="verdict warn">${escapeHtml(deployVerdict(result))}</p>
<div class="charts">
${chart('scales')}
${chart('sweep')}
</div>
${chart('sweepCurves')}
${htmlTable(['run', 'lr', 'loss (last 10)', 'test loss', 'test acc', 'status'], sweepRuns(result).map((r) => {
    const s = summarizeRun(r, w);
    return [r.mode, String(r.lr), fmt(s.finalLoss, 4), fmt(s.testLoss, 4), pct(s.testAccuracy), s.diverged ? `diverged at step ${s.diverged.step}: ${s.diverged.reason}` : 'finished'];
  }))}

<h2>Pretraining</h2>
${chart('pretrain')}

<p class="meta">Written by <code>npm start</code> (examples/demo.ts). Charts: Vega-Lite specs compiled and rendered to SVG in Node
with vega. Every number: <a href="summary.json">summary.json</a>.</p>
</body>
</html>
`;
}

/** The machine-readable report: options, every curve, the summaries and the checks. */
export function summaryJson(result: DemoResult): unknown {
  const w = result.options.warmupSteps;
  const nonFinite = (_key: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v);
  return JSON.parse(JSON.stringify({
    backend: result.backend,
    description: result.description,
    wallSeconds: result.wallMs / 1000,
    options: result.options,
    tasks: result.tasks,
    pretrain: { ...summarizeRun(result.pretrain, w), testAccuracyBefore: result.pretrain.testAccuracyBefore, losses: result.pretrain.losses },
    bnChoice: result.bnChoice,
    tuneVsEval: result.tuneVsEval,
    control: { ...summarizeRun(result.control, w), losses: result.control.losses },
    deployVerdict: deployVerdict(result),
    modes: result.runs.map((r) => ({ ...summarizeRun(r, w), losses: r.losses, accuracies: r.accuracies, stepMs: r.stepMs, convbnMs: r.convbnMs })),
    sweep: result.sweep.map((r) => ({ ...summarizeRun(r, w), losses: r.losses })),
  }, nonFinite));
}

export interface WrittenReport {
  readonly html: string;
  readonly json: string;
  readonly charts: string[];
}

export async function writeReport(result: DemoResult, outDir: string): Promise<WrittenReport> {
  await mkdir(outDir, { recursive: true });
  const svgs = await renderCharts(result);
  const html = path.join(outDir, 'index.html');
  const json = path.join(outDir, 'summary.json');
  await writeFile(html, renderHtml(result, svgs));
  await writeFile(json, `${JSON.stringify(summaryJson(result), null, 2)}\n`);
  return { html, json, charts: Object.keys(svgs) };
}
