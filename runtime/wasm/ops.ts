/**
 * The conv building blocks (forward, dgrad, wgrad, per-channel BN passes) as
 * sequences of kernel jobs: pick the path, pack, size the tasks, run.
 */
import { outputShape, type ConvBNConfig } from '../../codegen/config.js';
import { BN, CV, KERNELS, PARAM_SLOTS, PK, PWT, SC, TP, WG, WG_ACC_BYTES, WN, type KernelName } from './layout.js';
import type { WasmHeap } from './heap.js';
import type { ThreadPool } from './pool.js';
import type { KernelChoice } from './select.js';
import { axisPhases, type AxisPhase } from '../../codegen/stride-phases.js';

/** Allocation that a step counts (peak bytes); `free` gives it back. */
export interface Scratch {
  alloc(bytes: number): number;
  free(ptr: number): void;
}

/** Target number of tasks per job: enough to balance a few threads, independent of the thread count. */
const TASKS = 48;

const KERNEL_INDEX = new Map<KernelName, number>(KERNELS.map((name, i) => [name, i]));

interface Geom { R: number; S: number; PW: number; plane: number }

/** How a fused direct conv packs its input (see pack_input): source extent, zero insertion, padding. */
interface PackSource { srcH: number; srcW: number; upH: number; upW: number; padT: number; padL: number }

/**
 * One stride phase of a strided dgrad along one axis, in the form the direct
 * kernels correlate: tap j (from the last kernel index `first` down, every
 * `step`-th) reads dz at i + offset + j * dilation for phase position i.
 */
export interface AxisTaps { count: number; first: number; step: number; dilation: number; offset: number }
export interface PhaseTaps { h: Pick<AxisTaps, 'count' | 'first' | 'step'>; w: Pick<AxisTaps, 'count' | 'first' | 'step'> }

/**
 * The taps of kernel size k (stride s, dilation d, leading pad p) that reach gx positions ≡ phase (mod s)
 * (codegen/stride-phases.ts), last kernel index first so that their dz offsets ascend. count 0 when none
 * do (a 1x1 kernel at stride 2 reaches only the even positions).
 */
export function axisTaps(k: number, s: number, d: number, p: number, phase: number): AxisTaps {
  return correlationTaps(axisPhases(phase + 1, k, s, d, p)[phase]);
}

/** A phase's taps (codegen/stride-phases.ts: first tap the smallest kernel index) in correlation order. */
function correlationTaps(a: AxisPhase): AxisTaps {
  const last = a.count - 1;
  return { count: a.count, first: a.first + last * a.step, step: a.step, dilation: a.offsetStep, offset: a.offset - last * a.offsetStep };
}

/** Bytes of per-task partial weight gradients the nhwc wgrad may hold at once. */
export const NHWC_PARTIALS = 32 << 20;

/** A thread's transposed x and dz rows in the nhwc wgrad: about what stays in one core's L2. */
const NHWC_SCRATCH = 1 << 20;

/** Per-thread scratch a fused task may use; larger tasks pack the whole input first. */
const FUSE_LIMIT = 1 << 20;

const roundUp = (v: number, a: number): number => Math.ceil(v / a) * a;

/** Per-kernel wall time (ms) while profiling is on (benchmarks). */
let profile: Map<string, number> | undefined;
let profileClock: () => number = () => performance.now();
/** `cpu`: process CPU time (user + system) instead of wall time: steadier on a shared machine with one thread. */
export function setKernelProfiling(on: boolean, clock: 'wall' | 'cpu' = 'wall'): Map<string, number> | undefined {
  profile = on ? new Map() : undefined;
  profileClock = clock === 'cpu'
    ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }
    : () => performance.now();
  return profile;
}

export interface RunOptions {
  floats?: Record<number, number>;
  serial?: boolean;
  alongside?: () => void;
}

export class Runner {
  readonly heap: WasmHeap;
  readonly pool: ThreadPool;
  private readonly block: number;

  constructor(heap: WasmHeap, pool: ThreadPool) {
    this.heap = heap;
    this.pool = pool;
    this.block = heap.alloc(PARAM_SLOTS * 4);
  }

  /**
   * Writes a parameter block (integers as i32, `floats` slots as f32) and runs `tasks` tasks;
   * `serial`: on this thread only; `alongside`: host work overlapping the job (ThreadPool.run).
   */
  async run(kernel: KernelName, ints: Record<number, number>, tasks: number, options: RunOptions = {}): Promise<void> {
    const { floats = {}, serial = false, alongside } = options;
    if (tasks <= 0) {
      alongside?.();
      return;
    }
    const i32 = this.heap.i32(this.block, PARAM_SLOTS);
    i32.fill(0);
    for (const [k, v] of Object.entries(ints)) i32[Number(k)] = v;
    const f32 = this.heap.f32(this.block, PARAM_SLOTS);
    for (const [k, v] of Object.entries(floats)) f32[Number(k)] = v;
    if (!profile) {
      await this.pool.run(KERNEL_INDEX.get(kernel)!, this.block, tasks, serial, alongside);
      return;
    }
    const t0 = profileClock();
    await this.pool.run(KERNEL_INDEX.get(kernel)!, this.block, tasks, serial, alongside);
    profile.set(kernel, (profile.get(kernel) ?? 0) + profileClock() - t0);
  }
}

/** Where the epilogue writes: out = conv + bias; out2 = (out - m2) * s2 + b2 when out2 is set. */
export interface ConvOut {
  out: number;
  /** Floats between output pixels, rows and channel planes (default: a dense [N][CO][Ho][Wo] tensor). */
  pitch?: { step: number; row: number; plane: number };
  bias?: number;
  out2?: number;
  m2?: number;
  s2?: number;
  b2?: number;
}

export class ConvOps {
  readonly c: ConvBNConfig;
  readonly choice: KernelChoice;
  private readonly r: Runner;
  readonly Ho: number;
  readonly Wo: number;
  private readonly Cig: number;
  private readonly Cog: number;

  constructor(c: ConvBNConfig, choice: KernelChoice, runner: Runner) {
    this.c = c;
    this.choice = choice;
    this.r = runner;
    const o = outputShape(c);
    this.Ho = o.H;
    this.Wo = o.W;
    this.Cig = c.Cin / c.groups;
    this.Cog = c.Cout / c.groups;
  }

  /** Pack inside the conv tasks (per-thread scratch) unless forced off or a task's rows would not fit FUSE_LIMIT. */
  private fuse(g: Geom, C: number, Ho: number, kH: number, sH: number, dH: number): boolean {
    if (this.choice.fusePack === false) return false;
    const rpt = Math.min(Ho, Math.max(1, Math.floor((this.c.N * this.c.groups * Ho) / TASKS)));
    const rows = (rpt - 1) * sH + (kH - 1) * dH + 1;
    return C * rows * g.S * g.PW * 4 <= FUSE_LIMIT;
  }

  /** Packed-input geometry of the forward conv (also read by wgrad). */
  private forwardGeom(): Geom {
    const c = this.c;
    const S = c.strideW;
    const R = (this.Ho - 1) * c.strideH + (c.kH - 1) * c.dilationH + 1;
    const PW = roundUp(this.Wo, 16) + Math.floor(((c.kW - 1) * c.dilationW) / S);
    return { R, S, PW, plane: R * S * PW };
  }

  private async packInput(
    s: Scratch, src: number, planes: number, srcH: number, srcW: number,
    upH: number, upW: number, padT: number, padL: number, g: Geom,
  ): Promise<number> {
    const dst = s.alloc(planes * g.plane * 4);
    const ppt = Math.max(1, Math.ceil(planes / TASKS));
    await this.r.run('pack_input', {
      [PK.PLANES]: planes, [PK.SRCH]: srcH, [PK.SRCW]: srcW, [PK.UPH]: upH, [PK.UPW]: upW,
      [PK.PADT]: padT, [PK.PADL]: padL, [PK.R]: g.R, [PK.S]: g.S, [PK.PW]: g.PW,
      [PK.SRC]: src, [PK.DST]: dst, [PK.PPT]: ppt,
    }, Math.ceil(planes / ppt));
    return dst;
  }

  /**
   * layout 0: OIHW (scaled); 1: forward blocks of `blk` out-channels; 2: transposed, flipped blocks (dgrad),
   * of the taps `taps` picks (default: all of them; a strided dgrad's stride phase takes a strided subset).
   */
  private async packWeights(s: Scratch, src: number, scale: number, layout: 0 | 1 | 2, blk: number,
    taps: PhaseTaps = { h: { count: this.c.kH, first: this.c.kH - 1, step: 1 }, w: { count: this.c.kW, first: this.c.kW - 1, step: 1 } },
  ): Promise<number> {
    const c = this.c;
    const G = c.groups;
    const [CO, C] = layout === 2 ? [this.Cig, this.Cog] : [this.Cog, this.Cig];
    const nb = Math.ceil(CO / blk);
    const [kH, kW] = layout === 2 ? [taps.h.count, taps.w.count] : [c.kH, c.kW];
    const count = layout === 0 ? c.Cout * this.Cig * kH * kW : G * nb * blk * C * kH * kW;
    const dst = s.alloc(count * 4);
    await this.r.run('pack_weights', {
      [PWT.G]: G, [PWT.CO]: CO, [PWT.C]: C, [PWT.KH]: kH, [PWT.KW]: kW,
      [PWT.SRC]: src, [PWT.SCALE]: scale, [PWT.DST]: dst, [PWT.LAYOUT]: layout, [PWT.BLK]: blk,
      [PWT.SKH]: c.kH, [PWT.SKW]: c.kW, [PWT.KH0]: taps.h.first, [PWT.KHS]: taps.h.step,
      [PWT.KW0]: taps.w.first, [PWT.KWS]: taps.w.step,
    }, G, { serial: count < 1 << 18 });
    return dst;
  }

  /**
   * `src` set: x is unpacked and each task packs the rows it reads into its
   * thread's scratch (no packed copy of the whole input in memory);
   * otherwise x is already packed with geometry g.
   */
  private async direct(
    s: Scratch, kind: 'direct4' | 'direct1', x: number, g: Geom, w: number, C: number, CO: number,
    kH: number, kW: number, sH: number, dH: number, dW: number, Ho: number, Wo: number, o: ConvOut,
    src?: PackSource,
  ): Promise<void> {
    const G = this.c.groups;
    const N = this.c.N;
    const rpt = Math.min(Ho, Math.max(1, Math.floor((N * G * Ho) / TASKS)));
    const rowTasks = N * G * Math.ceil(Ho / rpt);
    const colChunks = src ? 1 : Math.max(1, Math.ceil(TASKS / rowTasks));
    const cpt = src ? roundUp(Wo, 16) : roundUp(Math.ceil(Wo / colChunks), 16);
    const units = rowTasks * Math.ceil(Wo / cpt);
    const upt = Math.max(1, Math.floor(units / TASKS));
    const tasks = Math.ceil(units / upt);
    let plane = g.plane;
    let scratch = 0;
    let stride = 0;
    if (src) {
      // Channel pitch in scratch: the input rows of the tallest row chunk.
      plane = ((rpt - 1) * sH + (kH - 1) * dH + 1) * g.S * g.PW;
      stride = roundUp(C * plane * 4 + 64, 64);
      scratch = s.alloc(stride * this.r.pool.threads);
    }
    // Byte offsets of the taps, in packed-weight order, from the output row's input base: per (kh, kw)
    // with the channels looped inside (direct4, C >= 4), else one flat list of every (kh, kw, c).
    const inner = kind === 'direct4' && C >= 4 ? C : 1;
    const entries = (kH * kW * C) / inner;
    const tab = s.alloc(entries * 4);
    const offsets = this.r.heap.i32(tab, entries);
    for (let kh = 0, k = 0; kh < kH; kh++) {
      for (let kw = 0; kw < kW; kw++) {
        const q = kw * dW;
        const base = kh * dH * g.S * g.PW + (q % g.S) * g.PW + Math.floor(q / g.S);
        for (let c = 0; c < C / inner; c++) offsets[k++] = (c * plane + base) * 4;
      }
    }
    await this.r.run(kind === 'direct4' ? 'conv_direct4' : 'conv_direct1', {
      [CV.N]: N, [CV.G]: G, [CV.C]: C, [CV.CO]: CO, [CV.R]: g.R, [CV.S]: g.S, [CV.PW]: g.PW,
      [CV.KH]: kH, [CV.KW]: kW, [CV.SH]: sH, [CV.DH]: dH, [CV.DW]: dW, [CV.HO]: Ho, [CV.WO]: Wo,
      [CV.X]: x, [CV.W]: w, [CV.OUT]: o.out, [CV.BIAS]: o.bias ?? 0,
      [CV.OUT2]: o.out2 ?? 0, [CV.M2]: o.m2 ?? 0, [CV.S2]: o.s2 ?? 0, [CV.B2]: o.b2 ?? 0,
      [CV.RPT]: rpt, [CV.CPT]: cpt, [CV.PLANE]: plane, [CV.TAB]: tab, [CV.INNER]: inner,
      [CV.FUSE]: src ? 1 : 0, [CV.SRCH]: src?.srcH ?? 0, [CV.SRCW]: src?.srcW ?? 0, [CV.UPH]: src?.upH ?? 1,
      [CV.UPW]: src?.upW ?? 1, [CV.PADT]: src?.padT ?? 0, [CV.PADL]: src?.padL ?? 0,
      [CV.SCRATCH]: scratch, [CV.SSTRIDE]: stride, [CV.UPT]: upt, [CV.UNITS]: units,
      [CV.OSTEP]: o.pitch?.step ?? 1, [CV.OROW]: o.pitch?.row ?? Wo, [CV.OPLANE]: o.pitch?.plane ?? Ho * Wo,
    }, tasks);
    s.free(tab);
    if (scratch) s.free(scratch);
  }

  private scalarParams(a: number, b: number, o: ConvOut): Record<number, number> {
    const c = this.c;
    return {
      [SC.N]: c.N, [SC.CIN]: c.Cin, [SC.COUT]: c.Cout, [SC.H]: c.H, [SC.W]: c.W, [SC.KH]: c.kH, [SC.KW]: c.kW,
      [SC.SH]: c.strideH, [SC.SW]: c.strideW, [SC.PT]: c.padTop, [SC.PL]: c.padLeft,
      [SC.DH]: c.dilationH, [SC.DW]: c.dilationW, [SC.G]: c.groups, [SC.HO]: this.Ho, [SC.WO]: this.Wo,
      [SC.A]: a, [SC.B]: b, [SC.OUT]: o.out, [SC.BIAS]: o.bias ?? 0,
      [SC.OUT2]: o.out2 ?? 0, [SC.M2]: o.m2 ?? 0, [SC.S2]: o.s2 ?? 0, [SC.B2]: o.b2 ?? 0,
    };
  }

  /** out = conv(x, W * scale) (+ epilogue). `scale` is a per-out-channel pointer or 0. */
  async forward(s: Scratch, x: number, w: number, scale: number, o: ConvOut): Promise<void> {
    const c = this.c;
    const path = this.choice.forward;
    if (path === 'scalar') {
      const wp = scale !== 0 ? await this.packWeights(s, w, scale, 0, 1) : w;
      await this.r.run('conv_scalar', this.scalarParams(x, wp, o), c.N * c.Cout);
      if (wp !== w) s.free(wp);
      return;
    }
    const blk = path === 'direct1' ? 1 : 4;
    const wp = await this.packWeights(s, w, scale, 1, blk);
    if (path === 'gemm') {
      const plane = c.H * c.W;
      await this.direct(s, 'direct4', x, { R: 1, S: 1, PW: plane, plane }, wp, this.Cig, this.Cog, 1, 1, 1, 1, 1, 1, plane, o);
    } else {
      const g = this.forwardGeom();
      const src: PackSource = { srcH: c.H, srcW: c.W, upH: 1, upW: 1, padT: c.padTop, padL: c.padLeft };
      if (this.fuse(g, this.Cig, this.Ho, c.kH, c.strideH, c.dilationH)) {
        await this.direct(s, path, x, g, wp, this.Cig, this.Cog, c.kH, c.kW, c.strideH, c.dilationH, c.dilationW,
          this.Ho, this.Wo, o, src);
      } else {
        const xp = await this.packInput(s, x, c.N * c.Cin, c.H, c.W, 1, 1, c.padTop, c.padLeft, g);
        await this.direct(s, path, xp, g, wp, this.Cig, this.Cog, c.kH, c.kW, c.strideH, c.dilationH, c.dilationW,
          this.Ho, this.Wo, o);
        s.free(xp);
      }
    }
    s.free(wp);
  }

  /** gx = conv_transpose(dz, W * scale). */
  async dgrad(s: Scratch, dz: number, w: number, scale: number, gx: number): Promise<void> {
    const c = this.c;
    const path = this.choice.dgrad;
    if (path === 'scalar') {
      const wp = scale !== 0 ? await this.packWeights(s, w, scale, 0, 1) : w;
      await this.r.run('dgrad_scalar', this.scalarParams(dz, wp, { out: gx }), c.N * c.Cin);
      if (wp !== w) s.free(wp);
      return;
    }
    const blk = path === 'direct1' ? 1 : 4;
    if (path !== 'gemm' && (c.strideH > 1 || c.strideW > 1) && this.choice.dgradPhases) {
      // Each phase packs its own taps' weights.
      await this.dgradPhases(s, dz, w, scale, gx, blk);
      return;
    }
    const wt = await this.packWeights(s, w, scale, 2, blk);
    if (path === 'gemm') {
      const plane = c.H * c.W;
      await this.direct(s, 'direct4', dz, { R: 1, S: 1, PW: plane, plane }, wt, this.Cog, this.Cig, 1, 1, 1, 1, 1, 1, plane,
        { out: gx });
    } else {
      // Zero-insert dz by the stride, pad by (k-1)*d - pad, correlate with the flipped kernel at stride 1.
      const R = c.H + (c.kH - 1) * c.dilationH;
      const PW = roundUp(c.W, 16) + (c.kW - 1) * c.dilationW;
      const g: Geom = { R, S: 1, PW, plane: R * PW };
      const src: PackSource = {
        srcH: this.Ho, srcW: this.Wo, upH: c.strideH, upW: c.strideW,
        padT: (c.kH - 1) * c.dilationH - c.padTop, padL: (c.kW - 1) * c.dilationW - c.padLeft,
      };
      if (this.fuse(g, this.Cog, c.H, c.kH, 1, c.dilationH)) {
        await this.direct(s, path, dz, g, wt, this.Cog, this.Cig, c.kH, c.kW, 1, c.dilationH, c.dilationW, c.H, c.W,
          { out: gx }, src);
      } else {
        const dp = await this.packInput(s, dz, c.N * c.Cout, src.srcH, src.srcW, src.upH, src.upW, src.padT, src.padL, g);
        await this.direct(s, path, dp, g, wt, this.Cog, this.Cig, c.kH, c.kW, 1, c.dilationH, c.dilationW, c.H, c.W, { out: gx });
        s.free(dp);
      }
    }
    s.free(wt);
  }

  /**
   * Strided dgrad without zero insertion: each stride phase (ph, pw) of gx, the positions
   * (ph + sH*i, pw + sW*j), is a stride-1 correlation of dz with the taps that reach it
   * (axisTaps), written in place with a strided output pitch. Zero insertion would spend
   * (sH*sW - 1) of every sH*sW multiply-adds on inserted zeros.
   */
  private async dgradPhases(s: Scratch, dz: number, w: number, scale: number, gx: number, blk: number): Promise<void> {
    const c = this.c;
    const path = this.choice.dgrad as 'direct4' | 'direct1';
    const { H, W } = c;
    const rows = axisPhases(H, c.kH, c.strideH, c.dilationH, c.padTop);
    const cols = axisPhases(W, c.kW, c.strideW, c.dilationW, c.padLeft);
    // Positions no tap reaches have gradient 0: one clear of gx serves every such phase.
    const unreached = (axis: AxisPhase[]) => axis.some((a) => a.positions > 0 && a.count === 0);
    if (unreached(rows) || unreached(cols)) this.r.heap.f32(gx, c.N * c.Cin * H * W).fill(0);
    const pitch = { step: c.strideW, row: c.strideH * W, plane: H * W };
    for (const [ph, row] of rows.entries()) {
      if (row.positions === 0 || row.count === 0) continue;
      const th = correlationTaps(row);
      for (const [pw, col] of cols.entries()) {
        if (col.positions === 0 || col.count === 0) continue;
        const tw = correlationTaps(col);
        const [Hp, Wp] = [row.positions, col.positions];
        const wt = await this.packWeights(s, w, scale, 2, blk, { h: th, w: tw });
        const R = Hp + (th.count - 1) * th.dilation;
        const PW = roundUp(Wp, 16) + (tw.count - 1) * tw.dilation;
        const g: Geom = { R, S: 1, PW, plane: R * PW };
        const src: PackSource = { srcH: this.Ho, srcW: this.Wo, upH: 1, upW: 1, padT: -th.offset, padL: -tw.offset };
        const o: ConvOut = { out: gx + (ph * W + pw) * 4, pitch };
        if (this.fuse(g, this.Cog, Hp, th.count, 1, th.dilation)) {
          await this.direct(s, path, dz, g, wt, this.Cog, this.Cig, th.count, tw.count, 1, th.dilation, tw.dilation, Hp, Wp, o, src);
        } else {
          const dp = await this.packInput(s, dz, c.N * c.Cout, src.srcH, src.srcW, 1, 1, src.padT, src.padL, g);
          await this.direct(s, path, dp, g, wt, this.Cog, this.Cig, th.count, tw.count, 1, th.dilation, tw.dilation, Hp, Wp, o);
          s.free(dp);
        }
        s.free(wt);
      }
    }
  }

  /**
   * gw[o][ci][kh][kw] = sum over n and output pixels of dz * x. `alongside`: host work that overlaps
   * the main job (see ThreadPool.run). `channelSums`: also out[c] = sum of dz over n and pixels
   * (the bias gradient), fused into the nhwc path's transpose of dz.
   */
  async wgrad(s: Scratch, x: number, dz: number, gw: number, options: { alongside?: () => void; channelSums?: number } = {}): Promise<void> {
    const c = this.c;
    const path = this.choice.wgrad;
    const { alongside, channelSums } = options;
    if (path === 'nhwc') {
      await this.wgradNhwc(s, x, dz, gw, alongside, channelSums);
      return;
    }
    if (channelSums !== undefined) await this.channelSums(dz, channelSums);
    if (path === 'scalar') {
      await this.r.run('wgrad_scalar', this.scalarParams(x, dz, { out: gw }), c.Cout, { alongside });
      return;
    }
    const unpadded = c.padTop === 0 && c.padBottom === 0 && c.padLeft === 0 && c.padRight === 0 && c.strideW === 1;
    let g: Geom;
    let xp = x;
    if (unpadded) {
      g = { R: c.H, S: 1, PW: c.W, plane: c.H * c.W };
    } else {
      g = this.forwardGeom();
      xp = await this.packInput(s, x, c.N * c.Cin, c.H, c.W, 1, 1, c.padTop, c.padLeft, g);
    }
    const K = this.Cig * c.kH * c.kW;
    const G = c.groups;
    const ints: Record<number, number> = {
      [WG.N]: c.N, [WG.G]: G, [WG.C]: this.Cig, [WG.CO]: this.Cog, [WG.R]: g.R, [WG.S]: g.S, [WG.PW]: g.PW,
      [WG.KH]: c.kH, [WG.KW]: c.kW, [WG.SH]: c.strideH, [WG.DH]: c.dilationH, [WG.DW]: c.dilationW,
      [WG.HO]: this.Ho, [WG.WO]: this.Wo, [WG.X]: xp, [WG.DZ]: dz, [WG.GW]: gw, [WG.PLANE]: g.plane,
    };
    if (path === 'simd4') {
      const outer = G * Math.ceil(this.Cog / 4);
      const units = Math.ceil(K / 2);
      // At most 48 pairs per task: their x rows for one band stay in L1.
      const kpt = Math.min(48, Math.ceil(units / Math.max(1, Math.ceil(TASKS / outer))));
      const tasks = outer * Math.ceil(units / kpt);
      const acc = s.alloc(tasks * kpt * WG_ACC_BYTES);
      ints[WG.KPT] = kpt;
      ints[WG.ACC] = acc;
      ints[WG.BAND] = 2; // output rows per cache band
      await this.r.run('wgrad4', ints, tasks, { alongside });
      s.free(acc);
    } else {
      const outer = c.Cout;
      const units = Math.ceil(K / 4);
      const kpt = Math.ceil(units / Math.max(1, Math.ceil(TASKS / outer)));
      ints[WG.KPT] = kpt;
      await this.r.run('wgrad1', ints, outer * Math.ceil(units / kpt), { alongside });
    }
    if (xp !== x) s.free(xp);
  }

  /**
   * wgrad with channels innermost: each task transposes the x and dz rows of its chunk of output rows
   * into its thread's scratch and sums them into its own partial gradient; then the partials are added.
   */
  private async wgradNhwc(s: Scratch, x: number, dz: number, gw: number, alongside?: () => void, channelSums?: number): Promise<void> {
    const c = this.c;
    const G = c.groups;
    const Cp = Math.ceil(this.Cig / 8) * 8;
    const Cq = Math.ceil(this.Cog / 4) * 4;
    const T = c.kH * c.kW;
    const Wp = (this.Wo - 1) * c.strideW + (c.kW - 1) * c.dilationW + 1;
    const partBytes = G * Cq * T * Cp * 4;
    // One task's transposed rows: the x rows its output rows read (8-channel blocks), and its dz rows.
    const scratchBytes = (rows: number) =>
      (Cp * ((rows - 1) * c.strideH + (c.kH - 1) * c.dilationH + 1) * Wp + Cq * rows * this.Wo) * 4;
    // Half the usual task count: each task's passes run over its whole row chunk, so longer chunks run faster,
    // and fewer partial gradients are summed afterwards; 24 tasks still balance a few threads. Smaller chunks
    // where a task's rows would not stay in L2, as far as the partials' memory allows.
    const maxPerImage = Math.max(1, Math.min(this.Ho, Math.floor(NHWC_PARTIALS / partBytes / c.N)));
    let perImage = Math.max(1, Math.min(maxPerImage, Math.ceil(TASKS / 2 / c.N)));
    while (perImage < maxPerImage && scratchBytes(Math.ceil(this.Ho / perImage)) > NHWC_SCRATCH) perImage++;
    const ohc = Math.ceil(this.Ho / perImage);
    const tasks = c.N * Math.ceil(this.Ho / ohc);
    const stride = roundUp(scratchBytes(ohc), 64);
    const scratch = s.alloc(stride * this.r.pool.threads);
    const part = s.alloc(tasks * partBytes);
    const rowSums = channelSums !== undefined ? s.alloc(c.N * G * this.Ho * Cq * 4) : 0;
    const ints = {
      [WN.N]: c.N, [WN.G]: G, [WN.C]: this.Cig, [WN.CO]: this.Cog, [WN.CP]: Cp, [WN.CQ]: Cq, [WN.SSTRIDE]: stride, [WN.WP]: Wp,
      [WN.KH]: c.kH, [WN.KW]: c.kW, [WN.SH]: c.strideH, [WN.SW]: c.strideW, [WN.DH]: c.dilationH, [WN.DW]: c.dilationW,
      [WN.HO]: this.Ho, [WN.WO]: this.Wo, [WN.X]: x, [WN.DZ]: dz, [WN.SCRATCH]: scratch, [WN.PART]: part,
      [WN.OHC]: ohc, [WN.GW]: gw, [WN.PADT]: c.padTop, [WN.PADL]: c.padLeft, [WN.H]: c.H, [WN.W]: c.W, [WN.TASKS]: tasks,
      [WN.SUMS]: rowSums, [WN.SUMS_OUT]: channelSums ?? 0,
    };
    await this.r.run('wgrad_nhwc', ints, tasks, { alongside });
    s.free(scratch);
    if (rowSums) {
      await this.r.run('wgrad_nhwc_chan_sums', ints, c.Cout, { serial: true });
      s.free(rowSums);
    }
    // Add the partials in task order (chunks of the partial, multiples of 4 floats), then reorder into OIHW.
    const partFloats = partBytes / 4;
    const chunk = Math.ceil(partFloats / TASKS / 4) * 4;
    await this.r.run('wgrad_nhwc_sum', { ...ints, [WN.OPT]: chunk }, Math.ceil(partFloats / chunk));
    await this.r.run('wgrad_nhwc_gather', ints, c.Cout);
    s.free(part);
  }

  private bnInts(extra: Record<number, number>): Record<number, number> {
    return { [BN.N]: this.c.N, [BN.C]: this.c.Cout, [BN.HW]: this.Ho * this.Wo, ...extra };
  }

  /** Batch statistics, running-stat update, y = (z - mean) invstd gamma + beta. */
  async bnTrainForward(p: {
    z: number; y: number; gamma: number; beta: number; rm: number; rv: number; mean: number; invstd: number;
  }): Promise<void> {
    await this.r.run('bn_train_fwd', this.bnInts({
      [BN.Z]: p.z, [BN.Y]: p.y, [BN.GAMMA]: p.gamma, [BN.BETA]: p.beta, [BN.RM]: p.rm, [BN.RV]: p.rv,
      [BN.MEAN]: p.mean, [BN.INVSTD]: p.invstd, [BN.UPDATE]: 1,
    }), this.c.Cout, { floats: { [BN.MOM]: this.c.momentum, [BN.EPS]: this.c.eps } });
  }

  async bnTrainBackward(p: {
    z: number; dy: number; dz: number; mean: number; invstd: number; gamma: number; gbeta: number; ggamma: number;
  }): Promise<void> {
    await this.r.run('bn_train_bwd', this.bnInts({
      [BN.Z]: p.z, [BN.DY]: p.dy, [BN.DZ]: p.dz, [BN.MEAN]: p.mean, [BN.INVSTD]: p.invstd, [BN.GAMMA]: p.gamma,
      [BN.GBETA]: p.gbeta, [BN.GGAMMA]: p.ggamma,
    }), this.c.Cout);
  }

  async bnEvalBackward(p: {
    z: number; dy: number; dz: number; rm: number; rv: number; gamma: number; gbeta: number; ggamma: number; gbias: number;
  }): Promise<void> {
    await this.r.run('bn_eval_bwd', this.bnInts({
      [BN.Z]: p.z, [BN.DY]: p.dy, [BN.DZ]: p.dz, [BN.RM]: p.rm, [BN.RV]: p.rv, [BN.GAMMA]: p.gamma,
      [BN.GBETA]: p.gbeta, [BN.GGAMMA]: p.ggamma, [BN.GBIAS]: p.gbias,
    }), this.c.Cout, { floats: { [BN.EPS]: this.c.eps } });
  }

  /** out[c] = sum over n and pixels of src (an output-shaped tensor). */
  async channelSums(src: number, out: number): Promise<void> {
    await this.r.run('chan_sum', this.bnInts({ [BN.DY]: src, [BN.GBETA]: out }), this.c.Cout);
  }

  /** dst[n][c][r] = src[n][r][c] for `images` images of rows x cols floats (NHWC <-> NCHW). */
  async transpose(src: number, dst: number, images: number, rows: number, cols: number): Promise<void> {
    // About TASKS tasks in all, each a run of whole 4-row groups (the kernel's SIMD blocks).
    const perImage = Math.max(1, Math.min(Math.ceil(rows / 4), Math.ceil(TASKS / images)));
    const rpt = roundUp(Math.ceil(rows / perImage), 4);
    const chunks = Math.ceil(rows / rpt);
    await this.r.run('transpose_images', { [TP.ROWS]: rows, [TP.COLS]: cols, [TP.SRC]: src, [TP.DST]: dst, [TP.RPT]: rpt }, images * chunks);
  }
}
