/**
 * Loading the kernels' .wasm and running kernel tasks on threads.
 *
 * One shared WebAssembly.Memory is imported by an instance on the calling
 * thread and one in each worker (Node worker_threads, or Web Workers when the
 * page is crossOriginIsolated). A job is (kernel, params pointer, task count);
 * every thread, the caller included, claims tasks from one atomic counter of
 * unclaimed tasks until none are left. Which thread runs a task never changes
 * what the task computes, so results do not depend on the thread count.
 */
import { assemblySlotsSource, KERNELS } from './layout.js';
import { importNode } from '../nodeImport.js';

/**
 * Control block slots (Int32Array over a SharedArrayBuffer). GEN: job
 * counter, bumped to wake the workers. FN, PARAMS, TASKS: the job. LEFT:
 * tasks not yet claimed (task TASKS - LEFT is next; 0 or less: none). DONE:
 * tasks finished.
 */
const GEN = 0, FN = 1, PARAMS = 2, TASKS = 3, LEFT = 4, DONE = 5, QUIT = 6, FAILED = 7;
const CTL_SLOTS = 16;

export const MAX_PAGES = 65536;

/** (params block, task index, thread index: 0 is the caller, workers 1..threads-1). */
type KernelFn = (params: number, task: number, tid: number) => void;

const isNode = typeof process !== 'undefined' && typeof process.versions === 'object' && !!process.versions.node;

const wasmUrl = (threads: boolean): URL =>
  new URL(threads ? './build/convbn.wasm' : './build/convbn-st.wasm', import.meta.url);

let compiledThreads: Promise<WebAssembly.Module> | undefined;
let compiledSingle: Promise<WebAssembly.Module> | undefined;

/** The compiled kernels: the shared-memory build, or the single-threaded one. */
export function loadModule(shared: boolean): Promise<WebAssembly.Module> {
  if (shared) return (compiledThreads ??= compileFrom(wasmUrl(true), 'threads'));
  return (compiledSingle ??= compileFrom(wasmUrl(false), 'single'));
}

async function compileFrom(url: URL, target: string): Promise<WebAssembly.Module> {
  let bytes: Uint8Array;
  if (isNode) bytes = await readNode(url, target);
  else {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`convbn wasm: fetching ${url.href} gave HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  }
  const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  checkKernelExports(module, url.href);
  return module;
}

/** The module's exported functions must be exactly KERNELS: a stale build fails here, not mid-step. */
export function checkKernelExports(module: WebAssembly.Module, source: string): void {
  const exported = WebAssembly.Module.exports(module).filter((e) => e.kind === 'function').map((e) => e.name);
  const missing = KERNELS.filter((k) => !exported.includes(k));
  const unknown = exported.filter((e) => !(KERNELS as readonly string[]).includes(e));
  if (missing.length || unknown.length) {
    throw new Error(`convbn wasm: ${source} does not match runtime/wasm/layout.ts (missing: ${missing.join(', ') || 'none'}; ` +
      `not listed: ${unknown.join(', ') || 'none'}); rebuild it with \`npm run build:wasm\``);
  }
}

/** Reads the .wasm beside this module; when it was never built (a fresh clone run without `npm run build:wasm`), builds it. */
async function readNode(url: URL, target: string): Promise<Uint8Array> {
  const fs = await importNode<typeof import('node:fs/promises')>('node:fs/promises');
  const { fileURLToPath } = await importNode<typeof import('node:url')>('node:url');
  const file = fileURLToPath(url);
  try {
    return await fs.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await buildWithAsc(fileURLToPath(new URL('../../asconfig.json', import.meta.url)), target);
  return fs.readFile(file);
}

async function buildWithAsc(config: string, target: string): Promise<void> {
  const fs = await importNode<typeof import('node:fs')>('node:fs');
  if (!fs.existsSync(config)) {
    throw new Error(`convbn wasm: the kernels are not built and ${config} is missing; run \`npm run build:wasm\``);
  }
  const path = await importNode<typeof import('node:path')>('node:path');
  // The kernels import their parameter slots from a file generated from layout.ts (as build:wasm does).
  fs.writeFileSync(path.join(path.dirname(config), 'runtime/wasm/assembly/slots.ts'), assemblySlotsSource());
  const ascModule = 'assemblyscript/asc';
  const asc = (await import(ascModule)) as {
    main(argv: string[], options?: Record<string, unknown>): Promise<{ error: Error | null; stderr: { toString(): string } }>;
  };
  const cwd = process.cwd();
  process.chdir(path.dirname(config));
  try {
    const result = await asc.main(['--config', path.basename(config), '--target', target]);
    if (result.error) throw new Error(`convbn wasm: asc failed: ${result.error.message}\n${result.stderr.toString()}`);
  } finally {
    process.chdir(cwd);
  }
}

/** Whether this environment can share wasm memory between threads. */
export function canShareMemory(): boolean {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  if (isNode) return true;
  return (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

interface WorkerLike {
  terminate(): unknown;
}

/**
 * Worker body, shared by Node (eval'd CommonJS) and browsers (classic script
 * from a Blob). A worker claims a task by compare-exchanging LEFT from r > 0
 * to r - 1, and only then reads the job (FN, PARAMS, TASKS) and runs task
 * TASKS - r: a claimed task pins its job, because the caller rewrites the
 * job only after DONE has counted every task of it, and LEFT is opened (set
 * to the task count) only after the job is written. So a worker that wakes
 * late, or is descheduled anywhere in this loop for any number of jobs, runs
 * exactly a task of the job it claimed from, with that job's fields, and
 * counts it in that job's DONE. (Reading the job before claiming, as this
 * loop once did, let a late worker pair the finished job's counter with the
 * next job's fields, run a task of the next job twice and count it in the
 * wrong job.) The caller waits for DONE (tasks finished), not for every
 * worker to check in: an idle worker that the OS has not scheduled yet never
 * delays a job. `jitter` (tests only; 0 otherwise) makes the worker spin for
 * a random 0..jitter-1 rounds at each step of the loop, so that tests meet
 * the interleavings a loaded machine produces only rarely.
 */
const WORKER_LOOP = `
function convbnWorkerLoop(module, memory, ctlBuffer, names, tid, jitter, ready) {
  const ctl = new Int32Array(ctlBuffer);
  const instance = new WebAssembly.Instance(module, { env: { memory, abort() { throw new Error('wasm abort'); } } });
  const fns = names.map((n) => instance.exports[n]);
  let seed = (tid * 0x9e3779b9) | 1;
  const pause = jitter > 0 ? () => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    for (let i = (seed >>> 0) % jitter; i > 0; i--) Atomics.load(ctl, ${GEN});
  } : null;
  let seen = Atomics.load(ctl, ${GEN});
  ready();
  for (;;) {
    Atomics.wait(ctl, ${GEN}, seen);
    if (pause) pause();
    const g = Atomics.load(ctl, ${GEN});
    if (g === seen) continue;
    seen = g;
    if (Atomics.load(ctl, ${QUIT}) !== 0) return;
    for (;;) {
      if (pause) pause();
      const r = Atomics.load(ctl, ${LEFT});
      if (r <= 0) break;
      if (pause) pause();
      if (Atomics.compareExchange(ctl, ${LEFT}, r, r - 1) !== r) continue;
      // Claimed: the job cannot change until this task is counted in DONE.
      if (pause) pause();
      const fn = fns[Atomics.load(ctl, ${FN})], p = Atomics.load(ctl, ${PARAMS}), n = Atomics.load(ctl, ${TASKS});
      try { fn(p, n - r, tid); } catch (e) { Atomics.store(ctl, ${FAILED}, 1); }
      if (pause) pause();
      if (Atomics.add(ctl, ${DONE}, 1) + 1 === n) Atomics.notify(ctl, ${DONE});
    }
  }
}
`;

const NODE_WORKER = `${WORKER_LOOP}
const { parentPort, workerData } = typeof require === 'function' ? require('node:worker_threads') : process.getBuiltinModule('node:worker_threads');
convbnWorkerLoop(workerData.module, workerData.memory, workerData.ctl, workerData.names, workerData.tid, workerData.jitter,
  () => parentPort.postMessage('ready'));
`;

const BROWSER_WORKER = `${WORKER_LOOP}
self.onmessage = (e) => {
  const d = e.data;
  convbnWorkerLoop(d.module, d.memory, d.ctl, d.names, d.tid, d.jitter, () => self.postMessage('ready'));
};
`;

export class ThreadPool {
  readonly threads: number;
  private readonly fns: KernelFn[];
  private readonly ctl: Int32Array;
  private readonly workers: WorkerLike[];
  /** Tests only (see create): a random spin between the caller's steps, or null. */
  private readonly pause: (() => void) | null;
  private destroyed = false;

  private constructor(fns: KernelFn[], ctl: Int32Array, workers: WorkerLike[], jitter: number) {
    this.fns = fns;
    this.ctl = ctl;
    this.workers = workers;
    this.threads = workers.length + 1;
    let seed = 0x2545f491;
    this.pause = jitter > 0 ? () => {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
      for (let i = (seed >>> 0) % jitter; i > 0; i--) Atomics.load(ctl, GEN);
    } : null;
  }

  /**
   * Instantiates the kernels here and in threads - 1 workers, all on `memory`.
   * `jitter` (tests only): random spins of up to that many rounds between the
   * steps of the workers' loop (see WORKER_LOOP) and of `run`, so that a test
   * meets the interleavings that a loaded machine produces only rarely (a
   * thread descheduled between two of its steps); 0, the default, adds none.
   */
  static async create(module: WebAssembly.Module, memory: WebAssembly.Memory, threads: number, jitter = 0): Promise<ThreadPool> {
    const instance = await WebAssembly.instantiate(module, {
      env: { memory, abort() { throw new Error('wasm abort'); } },
    });
    const fns = KERNELS.map((name) => instance.exports[name] as KernelFn);
    const ctl = new Int32Array(new SharedArrayBuffer(CTL_SLOTS * 4));
    const workers: WorkerLike[] = [];
    try {
      for (let i = 1; i < threads; i++) workers.push(await startWorker(module, memory, ctl.buffer as SharedArrayBuffer, i, jitter));
    } catch (error) {
      for (const w of workers) void w.terminate();
      throw error;
    }
    return new ThreadPool(fns, ctl, workers, jitter);
  }

  /**
   * Runs tasks 0..tasks-1 of `kernel` (`serial`: all on this thread, for
   * jobs too small to be worth waking the workers). In Node the caller blocks until all are
   * done; in a browser window (no Atomics.wait) it returns a promise.
   * `alongside`: host work (a copy out of the heap) that this thread does after waking the workers
   * and before it claims tasks, so that it overlaps the job; it must not touch what the job reads or writes.
   */
  run(kernel: number, params: number, tasks: number, serial = false, alongside?: () => void): void | Promise<void> {
    if (this.destroyed) throw new Error('convbn wasm: the engine was destroyed');
    const fn = this.fns[kernel];
    if (this.workers.length === 0 || tasks <= 1 || serial) {
      alongside?.();
      for (let t = 0; t < tasks; t++) fn(params, t, 0);
      return;
    }
    const ctl = this.ctl;
    const pause = this.pause;
    // The previous job's tasks are all claimed (LEFT <= 0) and counted done, so no worker reads the
    // job fields until LEFT opens the new job: write the job first, then open it, then wake the workers.
    Atomics.store(ctl, FN, kernel);
    if (pause) pause();
    Atomics.store(ctl, PARAMS, params);
    if (pause) pause();
    Atomics.store(ctl, TASKS, tasks);
    if (pause) pause();
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, FAILED, 0);
    if (pause) pause();
    Atomics.store(ctl, LEFT, tasks);
    if (pause) pause();
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    let error: unknown;
    if (alongside) {
      try {
        alongside();
      } catch (e) {
        error = e;
      }
    }
    for (;;) {
      // Once LEFT reaches 0 only this thread takes it below (workers never claim at r <= 0).
      const r = Atomics.sub(ctl, LEFT, 1);
      if (r <= 0) break;
      if (pause) pause();
      try {
        fn(params, tasks - r, 0);
      } catch (e) {
        error ??= e;
      }
      Atomics.add(ctl, DONE, 1);
    }
    if (isNode) {
      let spins = 0;
      let d: number;
      while ((d = Atomics.load(ctl, DONE)) < tasks) {
        if (++spins < 2000) continue;
        Atomics.wait(ctl, DONE, d, 1000);
      }
      this.finish(error);
      return;
    }
    return this.waitAsync(tasks).then(() => this.finish(error));
  }

  /** Browser main thread: wait for DONE to reach `want` without blocking. */
  private async waitAsync(want: number): Promise<void> {
    const ctl = this.ctl;
    const waitAsync = (Atomics as unknown as {
      waitAsync?: (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string };
    }).waitAsync;
    let d: number;
    while ((d = Atomics.load(ctl, DONE)) < want) {
      if (waitAsync) {
        const r = waitAsync(ctl, DONE, d);
        if (r.async) await r.value;
      } else {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
  }

  private finish(error: unknown): void {
    if (error !== undefined) throw error;
    if (Atomics.load(this.ctl, FAILED) !== 0) throw new Error('convbn wasm: a kernel failed in a worker thread');
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    Atomics.store(this.ctl, QUIT, 1);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) void w.terminate();
  }
}

async function startWorker(
  module: WebAssembly.Module, memory: WebAssembly.Memory, ctl: SharedArrayBuffer, tid: number, jitter: number,
): Promise<WorkerLike> {
  const names = [...KERNELS];
  if (isNode) {
    const { Worker } = await importNode<typeof import('node:worker_threads')>('node:worker_threads');
    const worker = new Worker(NODE_WORKER, { eval: true, execArgv: [], workerData: { module, memory, ctl, names, tid, jitter } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`convbn wasm: worker exited with code ${code} before it was ready`)));
    });
    worker.removeAllListeners('exit');
    worker.removeAllListeners('error');
    worker.on('error', () => { /* reported through the control block */ });
    worker.unref();
    return worker;
  }
  const blob = new Blob([BROWSER_WORKER], { type: 'text/javascript' });
  const url = URL.createObjectURL(blob);
  const worker = new Worker(url);
  await new Promise<void>((resolve, reject) => {
    worker.onmessage = () => resolve();
    worker.onerror = (e) => reject(new Error(`convbn wasm: worker failed: ${e.message}`));
    worker.postMessage({ module, memory, ctl, names, tid, jitter });
  });
  URL.revokeObjectURL(url);
  return worker;
}
