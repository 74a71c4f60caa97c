/**
 * Timing helpers shared by the benchmarks: interleaved tinybench rounds
 * (task order rotating every round, so drift on this noisy host hits every
 * task alike) and median / min–max summaries.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Bench } from 'tinybench';

export interface Stat { median: number; min: number; max: number; n: number }

export function stat(samples: number[]): Stat {
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

export const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));
export const cell = (st: Pick<Stat, 'median' | 'min' | 'max'>): string => `${fmt(st.median)} (${fmt(st.min)}–${fmt(st.max)})`;
export const gflops = (flops: number, ms: number): string => (flops / ms / 1e6).toFixed(1);

export type Fn = () => Promise<unknown>;

let fullGc: (() => void) | undefined;

/**
 * A full garbage collection now. Garbage left by what ran before (a peer's outputs, a previous section's
 * tensors: hundreds of MB) otherwise gets collected while the next figures are taken, on V8's helper
 * threads competing for this 2-vCPU host's cores: with 0.8 GB of dropped arrays behind it, our llvmpipe
 * forward of layer b measured 88 ms instead of 54 (tfjs: 132 vs 128).
 */
export function collectGarbage(): void {
  if (!fullGc) {
    v8.setFlagsFromString('--expose-gc');
    fullGc = vm.runInNewContext('gc') as () => void;
  }
  fullGc();
}

async function settleBefore(task: Fn, settle: Settle): Promise<void> {
  collectGarbage();
  if (settle.idleMs > 0) await new Promise((resolve) => setTimeout(resolve, settle.idleMs));
  if (settle.warm) await task();
}

/** How `interleaved` starts each task's samples in a round (after a full garbage collection). */
export interface Settle {
  /** Idle time before the task's first call of the round (untimed). */
  idleMs: number;
  /** One untimed call of the task before its timed ones. */
  warm: boolean;
}

/**
 * Runs `tasks` interleaved: `rounds` tinybench runs of `iterations` each, the task order rotating every round.
 * `settle`: before a task's samples in a round, an idle pause and one untimed call, so that the previous
 * task's tail (a peer's pool threads still spinning after its calls, caches holding its data) has ended,
 * and every task is timed in the steady state of its own repeated calls, as if it ran alone.
 */
export async function interleaved(
  tasks: Record<string, Fn>, rounds: number, iterations: number, settle?: Settle,
): Promise<Record<string, Stat>> {
  const names = Object.keys(tasks);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const name of names) await tasks[name](); // warm-up: pipelines compile at first dispatch on llvmpipe
  for (let r = 0; r < rounds; r++) {
    const bench = new Bench({ time: 0, iterations, warmup: false, retainSamples: true, throws: true });
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length];
      // async: true, or tinybench calls a task that is not an `async function` once when it is added, to see whether
      // it returns a promise, and does not await it: that call's work (on a GPU, queued kernels) then ran during the
      // round's first timed sample (the H100 runs' 2-20x slow first task of every round: train's step and kernels).
      bench.add(name, tasks[name], { async: true, ...(settle ? { beforeAll: () => settleBefore(tasks[name], settle) } : {}) });
    }
    await bench.run();
    for (const task of bench.tasks) {
      const result = task.result as { latency?: { samples?: number[] } };
      samples[task.name].push(...(result.latency?.samples ?? []));
    }
  }
  return Object.fromEntries(names.map((n) => [n, stat(samples[n])]));
}


/**
 * Timed runs per round for a layer: one of a few milliseconds a call (under 0.1 GFLOP: depthwise d) gets 4x as
 * many, the same for every peer, so that a few slow moments of this shared host cannot decide its median.
 */
export function runsForLayer(flops: number, iterations: number): number {
  return flops < 0.1e9 ? 4 * iterations : iterations;
}

/** Per-call figures of tasks whose samples each held `reps[name]` calls (absent: 1). */
export function perCall(stats: Record<string, Stat>, reps: Record<string, number>): Record<string, Stat> {
  return Object.fromEntries(Object.entries(stats).map(([name, st]) => {
    const k = reps[name] ?? 1;
    return [name, { median: st.median / k, min: st.min / k, max: st.max / k, n: st.n }];
  }));
}

/**
 * Whether the module at `moduleUrl` is the script Node was started with (`npx tsx bench/x.ts`). Never in a
 * bundle (scripts/bundle-node.mjs), where every module shares the bundle's URL.
 */
export function isEntryScript(moduleUrl: string): boolean {
  if (typeof CONVBN_NODE_BUNDLE !== 'undefined' && CONVBN_NODE_BUNDLE) return false;
  const script = globalThis.process?.argv?.[1];
  return !!script && moduleUrl.endsWith(script.replace(/\\/g, '/').split('/').pop()!);
}
