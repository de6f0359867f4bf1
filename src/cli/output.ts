/**
 * Terminal output rules: results on stdout, diagnostics and progress on stderr, colour only when
 * the stream is a TTY and NO_COLOR is unset (https://no-color.org).
 */
import { Chalk, type ChalkInstance } from 'chalk';

export function colourFor(stream: NodeJS.WriteStream): ChalkInstance {
  const enabled = Boolean(stream.isTTY) && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '');
  return new Chalk({ level: enabled ? 1 : 0 });
}

export type Verbosity = 'quiet' | 'normal' | 'verbose';
let verbosity: Verbosity = 'normal';

/** -q/--quiet: results and errors only; -v/--verbose: more detail. Set once from the global options. */
export function setVerbosity(v: Verbosity): void {
  verbosity = v;
}

export function getVerbosity(): Verbosity {
  return verbosity;
}

export const out = {
  get colour() {
    return colourFor(process.stdout);
  },
  line(text = ''): void {
    process.stdout.write(text + '\n');
  },
  json(value: unknown): void {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  },
};

export const diag = {
  get colour() {
    return colourFor(process.stderr);
  },
  line(text: string): void {
    process.stderr.write(text + '\n');
  },
  /** A note or progress line: left out under -q/--quiet. */
  info(text: string): void {
    if (verbosity !== 'quiet') process.stderr.write(text + '\n');
  },
  /** Detail shown only with -v/--verbose. */
  verbose(text: string): void {
    if (verbosity === 'verbose') process.stderr.write(text + '\n');
  },
};

/** A single-line progress indicator on stderr, drawn only on a TTY; silent otherwise. */
export class Progress {
  private readonly enabled: boolean;
  private lastDraw = 0;
  constructor(
    private readonly total: number,
    private readonly label: string,
  ) {
    this.enabled = Boolean(process.stderr.isTTY) && total > 1 && verbosity !== 'quiet';
  }

  tick(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (done < this.total && now - this.lastDraw < 80) return;
    this.lastDraw = now;
    const width = 24;
    const filled = Math.round((done / this.total) * width);
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total}`);
  }

  done(): void {
    if (this.enabled) process.stderr.write('\r\x1b[2K');
  }
}
