/**
 * The log's side of witnessing, inside the server: after each checkpoint, push it to every witness
 * (C2SP tlog-witness) and serve the cosignatures they return with the checkpoint. Never on a
 * confirm's path: appends do not wait for witnesses. One push in flight per witness; a checkpoint
 * published meanwhile is pushed when it ends.
 */
import type { LogDir } from './log-dir.js';
import { dirSource } from './tile-source.js';
import { pushToWitness } from './witness-server.js';

export class WitnessPusher {
  private busy = new Set<string>();
  private pending = new Set<string>();
  private stopped = false;

  constructor(
    private readonly log: LogDir,
    private readonly witnesses: readonly string[],
    private readonly report: (line: Record<string, unknown>) => void,
  ) {
    log.onPublish = () => this.poke();
  }

  poke(): void {
    for (const w of this.witnesses) {
      if (this.busy.has(w)) this.pending.add(w);
      else void this.push(w);
    }
  }

  /** Resolves when no push is in flight. */
  async settle(): Promise<void> {
    while (this.busy.size) await new Promise((r) => setTimeout(r, 10));
  }

  stop(): void {
    this.stopped = true;
    this.log.onPublish = undefined;
  }

  private async push(w: string): Promise<void> {
    this.busy.add(w);
    try {
      do {
        this.pending.delete(w);
        if (this.stopped) return;
        const text = this.log.checkpointText();
        const cut = text.indexOf('\n\n') + 2;
        const logLine = text.slice(cut).split('\n')[0]!;
        try {
          const cosigned = await pushToWitness(dirSource(this.log.www), `${text.slice(0, cut)}${logLine}\n`, w);
          const added = this.log.addCosignatures(text, cosigned.slice(cut + logLine.length + 1));
          this.report({ time: new Date().toISOString(), event: 'log-cosigned', witness: w, size: Number(text.split('\n')[1]), served: added });
        } catch (err) {
          this.report({ time: new Date().toISOString(), event: 'log-witness-refused', witness: w, error: (err as Error).message });
        }
      } while (this.pending.has(w));
    } finally {
      this.busy.delete(w);
    }
  }
}
