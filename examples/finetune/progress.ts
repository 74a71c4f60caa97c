/**
 * A progress bar on stderr: one line redrawn in place on a terminal, plain
 * lines (at most one per 10%, and at phase changes) when stderr is not a TTY.
 */

export interface Progress {
  /** Sets the total amount of work (units are training steps and eval batches). */
  start(total: number): void;
  /** `done` units finished so far; `phase` names what runs; `detail` is a short status. */
  update(done: number, phase: string, detail?: string): void;
  finish(message?: string): void;
}

export const silentProgress: Progress = {
  start() {},
  update() {},
  finish() {},
};

interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class ProgressBar implements Progress {
  private total = 1;
  private readonly startedAt = performance.now();
  private lastPhase = '';
  private lastDecile = -1;
  private lastDraw = 0;

  constructor(private readonly stream: Stream = process.stderr, private readonly tty = stream.isTTY === true) {}

  start(total: number): void {
    this.total = Math.max(1, total);
  }

  update(done: number, phase: string, detail = ''): void {
    const fraction = Math.min(1, done / this.total);
    const elapsed = (performance.now() - this.startedAt) / 1000;
    const eta = fraction > 0.02 ? elapsed * (1 / fraction - 1) : NaN;
    const timing = `${elapsed.toFixed(0)}s${Number.isFinite(eta) ? `, ~${eta.toFixed(0)}s left` : ''}`;
    if (this.tty) {
      const now = performance.now();
      if (now - this.lastDraw < 50 && fraction < 1 && phase === this.lastPhase) return;
      this.lastDraw = now;
      this.lastPhase = phase;
      const width = 24;
      const filled = Math.round(fraction * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      let line = `${bar} ${(fraction * 100).toFixed(0).padStart(3)}% ${phase}${detail ? ` · ${detail}` : ''} (${timing})`;
      const columns = this.stream.columns ?? 120;
      if (line.length > columns - 1) line = line.slice(0, columns - 1);
      this.stream.write(`\r\x1b[2K${line}`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (phase === this.lastPhase && decile === this.lastDecile) return;
    this.lastPhase = phase;
    this.lastDecile = decile;
    this.stream.write(`[${(fraction * 100).toFixed(0).padStart(3)}%] ${phase}${detail ? ` · ${detail}` : ''} (${timing})\n`);
  }

  finish(message?: string): void {
    if (this.tty) this.stream.write('\r\x1b[2K');
    if (message) this.stream.write(`${message}\n`);
  }
}
