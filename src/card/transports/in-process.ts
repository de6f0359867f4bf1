import type { CardTransport } from '../transport.js';
import { VirtualCard } from '../virtual/virtual-card.js';
import { FileStorage, type CardStorage } from '../virtual/storage.js';

/** The virtual card in this process: the embedded default and the fast path for tests. */
export class InProcessTransport implements CardTransport {
  readonly card: VirtualCard;
  constructor(storage: CardStorage) {
    this.card = new VirtualCard(storage);
    this.card.reset();
  }

  static forFile(path: string): InProcessTransport {
    const storage = new FileStorage(path);
    storage.load(); // fail early, with a clear message, when the file is not a card
    return new InProcessTransport(storage);
  }

  get description(): string {
    return this.card.description;
  }

  async transmit(apdu: Buffer): Promise<Buffer> {
    return this.card.transmit(apdu);
  }

  async close(): Promise<void> {}
}
