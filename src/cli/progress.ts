/**
 * Progress of long command-line work on stderr: on a terminal a bar with rate and ETA (cli-progress),
 * elsewhere a plain line at most every few seconds and at the end (logs stay readable), and with
 * `json` one JSON object per line for scripts: {"progress": label, "done", "total", "rate", "eta"}.
 */
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  /** JSON lines instead of a bar or text. */
  json?: boolean;
  /** Seconds between plain lines when stderr is not a terminal (default 10). */
  every?: number;
  stream?: NodeJS.WriteStream;
}

/** Progress of a piece of work named `label` ("samples", "scale 2"), its total known from the first update on. */
export class Progress {
  private readonly stream: NodeJS.WriteStream;
  /** The bar on a terminal (our own, or one of `parent`'s), made at the first update. */
  private bar?: cliProgress.SingleBar;
  private readonly started = performance.now();
  private lastLine = 0;

  constructor(readonly label: string, private readonly o: ProgressOptions = {}, private readonly parent?: cliProgress.MultiBar) {
    this.stream = o.stream ?? process.stderr;
  }

  /** `done` of `total` units finished, with a short note (e.g. the loss) shown beside the bar. */
  update(done: number, total: number, info = ''): void {
    if (!this.bar && (this.parent || (this.stream.isTTY && !this.o.json))) {
      this.bar = this.parent?.create(total, 0, { label: this.label, info: '' })
        ?? new cliProgress.SingleBar({ format: FORMAT, stream: this.stream, hideCursor: true, etaBuffer: 20, clearOnComplete: false }, cliProgress.Presets.shades_classic);
      if (!this.parent) this.bar.start(total, 0, { label: this.label, info: '' });
    }
    if (this.bar) {
      this.bar.setTotal(total);
      this.bar.update(done, { label: this.label, info });
      return;
    }
    const now = performance.now();
    if (done < total && now - this.lastLine < (this.o.every ?? 10) * 1000) return;
    this.lastLine = now;
    const seconds = (now - this.started) / 1000, rate = done / Math.max(seconds, 1e-9);
    const eta = done > 0 ? (total - done) / rate : undefined;
    if (this.o.json) this.stream.write(JSON.stringify({ progress: this.label, done, total, rate, eta: eta ?? null, info: info || undefined }) + '\n');
    else this.stream.write(`${this.label}: ${done}/${total} (${((100 * done) / total).toFixed(0)}%), ${formatRate(rate)}${eta !== undefined && done < total ? `, ETA ${formatSeconds(eta)}` : ''}${info ? `, ${info}` : ''}\n`);
  }

  /** Ends the bar (its final state stays on screen); plain output has written its last line at done = total. */
  stop(): void {
    this.bar?.stop();
  }
}

/** Several bars at once (e.g. the scales of a chain trained in parallel); plain lines when not a terminal. */
export class Progresses {
  private readonly multi?: cliProgress.MultiBar;
  private readonly bars = new Map<string, Progress>();

  constructor(private readonly o: ProgressOptions = {}) {
    const stream = o.stream ?? process.stderr;
    if (stream.isTTY && !o.json) this.multi = new cliProgress.MultiBar({ format: FORMAT, stream, hideCursor: true, etaBuffer: 20, clearOnComplete: false }, cliProgress.Presets.shades_classic);
  }

  /** The bar named `label`, made on first use. */
  get(label: string): Progress {
    let p = this.bars.get(label);
    if (!p) this.bars.set(label, (p = new Progress(label, this.o, this.multi)));
    return p;
  }

  /** A line of text above the bars (or on its own when there are none). */
  log(line: string): void {
    if (this.multi) this.multi.log(line.endsWith('\n') ? line : line + '\n');
    else (this.o.stream ?? process.stderr).write(line.endsWith('\n') ? line : line + '\n');
  }

  stop(): void {
    for (const p of this.bars.values()) p.stop();
    this.multi?.stop();
  }
}

const FORMAT = '{label} |{bar}| {value}/{total} {percentage}% · {eta_formatted} left · {info}';

export function formatSeconds(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

const formatRate = (r: number) => (r >= 1 ? `${r.toFixed(1)}/s` : `${(1 / r).toFixed(1)} s each`);
