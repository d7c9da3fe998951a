import type { Tally } from './tally.ts';

/**
 * Where the live progress line goes. On a terminal (`tty`) one line is rewritten in place with `\r` every second;
 * otherwise (a pipe, a CI log) a plain line is written every 5 s.
 */
export interface ProgressOutput {
  tty: boolean;
  /** Raw text on a terminal (no newline added); one whole line otherwise. */
  write(text: string): void;
  /** The terminal's width: a longer line is cut, since a wrapped one cannot be rewritten. */
  columns?: number;
}

/** What the line says. */
export interface ProgressSample {
  elapsedS: number;
  /** Seconds the load is planned to last, when known. */
  totalS?: number;
  sent: number;
  answered: number;
  errors: number;
  /** p99 of the answers of the last RECENT_S seconds, in ms. */
  p99Ms: number | null;
  inFlight: number;
  /** More to say, e.g. "applied 1200". */
  extra?: string;
}

export interface Progress {
  /** Prints a line of its own while the progress line is showing (on a terminal, above it). */
  log(line: string): void;
  stop(): void;
}

/** The window of the progress line's p99. */
export const RECENT_S = 5;

export function formatProgress(label: string, s: ProgressSample): string {
  const elapsed = `${s.elapsedS.toFixed(0)}${s.totalS === undefined ? '' : `/${s.totalS}`} s`;
  const p99 = s.p99Ms === null ? '-' : `${s.p99Ms.toFixed(1)} ms`;
  return (
    `${label}: ${elapsed}, sent ${s.sent}, answered ${s.answered}, errors ${s.errors}, ` +
    `p99 ${p99} (last ${RECENT_S} s), in flight ${s.inFlight}${s.extra ? `, ${s.extra}` : ''}`
  );
}

/** The progress of an open-model run, from its tally. */
export function tallySample(tally: Tally, totalS: number): ProgressSample {
  let sent = 0;
  let answered = 0;
  let errors = 0;
  for (const k of Object.values(tally.kinds)) {
    sent += k.sent;
    answered += k.completed;
    errors += k.failed;
  }
  return {
    elapsedS: tally.timeline.elapsedMs() / 1_000,
    totalS,
    sent,
    answered,
    errors,
    p99Ms: tally.timeline.recentP99(RECENT_S),
    inFlight: tally.timeline.inFlight(),
  };
}

/**
 * The output a command's progress line goes to: `progress` when the caller gives one; else the process's stderr
 * when it is a terminal; else `err`, one line at a time.
 */
export function progressOutput(io: { err(line: string): void; progress?: ProgressOutput }): ProgressOutput {
  if (io.progress) return io.progress;
  const stderr = process.stderr;
  if (stderr.isTTY) return { tty: true, write: (text) => void stderr.write(text), columns: stderr.columns };
  return { tty: false, write: (line) => io.err(line) };
}

const CLEAR_LINE = '\r\x1b[2K';

/**
 * Prints `sample()` every second on a terminal (rewriting one line), every 5 s elsewhere, until `stop()`; on a
 * terminal, the last state stays on screen. `err` prints the lines `log` is given.
 * @example const progress = startProgress('loadtest', () => tallySample(tally, 60), progressOutput(io), io.err);
 */
export function startProgress(
  label: string,
  sample: () => ProgressSample,
  output: ProgressOutput,
  err: (line: string) => void,
  everyMs = output.tty ? 1_000 : 5_000,
): Progress {
  let shown = '';
  const fit = (line: string) =>
    output.columns && line.length >= output.columns ? `${line.slice(0, output.columns - 2)}…` : line;
  const draw = () => {
    const line = formatProgress(label, sample());
    if (output.tty) {
      shown = fit(line);
      output.write(`${CLEAR_LINE}${shown}`);
    } else {
      output.write(line);
    }
  };
  const timer = setInterval(draw, everyMs);
  timer.unref();
  let stopped = false;
  return {
    log(line) {
      if (!output.tty || stopped || !shown) return err(line);
      output.write(CLEAR_LINE);
      err(line);
      output.write(shown);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (output.tty) {
        draw();
        output.write('\n');
      }
    },
  };
}
