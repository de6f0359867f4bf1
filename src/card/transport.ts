/** One interface for every way of reaching a card: PC/SC reader, or the virtual card in-process. */
export interface CardTransport {
  readonly description: string;
  /** Sends one command APDU and returns the response APDU (data || SW1 SW2). */
  transmit(apdu: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}
