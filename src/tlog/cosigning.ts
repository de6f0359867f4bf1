/**
 * The log's side of witnessing, inside the server: after each checkpoint, push it to every witness
 * (C2SP tlog-witness) and keep the cosignatures they return (log-dir.ts: cosigned/<size> for good,
 * and with the served checkpoint while it is the latest). Never on a confirm's path: appends do
 * not wait for witnesses. Pushes go in rounds: one checkpoint to all witnesses at once, so that k
 * of n can cosign the same size; a checkpoint published during a round is pushed when it ends.
 */
import type { TileSource } from './tile-source.js';
import { pushToWitness } from './witness-server.js';

/** A log the server keeps (log-dir.ts, or store/pg-tlog.ts), as the pusher sees it. */
export interface WitnessedLog {
  /** The latest checkpoint this process signed, with the log's signature only. */
  readonly signedCheckpoint: string;
  /** The log's tiles, for the consistency proof a witness asks for. */
  readonly source: TileSource;
  /** Called after each checkpoint is signed. */
  onPublish?: ((checkpoint: string, size: number) => void) | undefined;
  /** Keeps the cosignature lines for that checkpoint; whether the served checkpoint carries them. */
  addCosignatures(checkpoint: string, lines: string): boolean | Promise<boolean>;
}

export class WitnessPusher {
  private round: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly log: WitnessedLog,
    private readonly witnesses: readonly string[],
    private readonly report: (line: Record<string, unknown>) => void,
  ) {
    log.onPublish = () => this.poke();
  }

  poke(): void {
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = this.rounds().finally(() => { this.round = undefined; });
  }

  /** Resolves when no push is in flight. */
  async settle(): Promise<void> {
    while (this.round) await this.round;
  }

  stop(): void {
    this.stopped = true;
    this.log.onPublish = undefined;
  }

  private async rounds(): Promise<void> {
    do {
      this.again = false;
      if (this.stopped) return;
      const text = this.log.signedCheckpoint;
      if (!text) return;
      const size = Number(text.split('\n')[1]);
      const cut = text.indexOf('\n\n') + 2;
      await Promise.all(this.witnesses.map(async (w) => {
        try {
          const cosigned = await pushToWitness(this.log.source, text, w);
          const lines = cosigned.slice(cut).split('\n').filter((l) => l.length && !text.slice(cut).split('\n').includes(l)).join('\n');
          const served = await this.log.addCosignatures(text, lines);
          this.report({ time: new Date().toISOString(), event: 'log-cosigned', witness: w, size, served });
        } catch (err) {
          this.report({ time: new Date().toISOString(), event: 'log-witness-refused', witness: w, size, error: (err as Error).message });
        }
      }));
    } while (this.again && !this.stopped);
  }
}
