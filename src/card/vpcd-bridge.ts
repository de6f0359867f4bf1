/**
 * Serves a VirtualCard to pcscd through the vsmartcard `vpcd` reader driver, so every PC/SC
 * client (pcsc_scan, opensc-tool, qtm --reader) sees a card in "Virtual PCD 00 00".
 * vpcd listens on TCP 35963; we connect to it. Frames both ways are u16 big-endian length ||
 * payload. A 1-byte payload from vpcd is a control code: 0 power off, 1 power on, 2 reset,
 * 4 send the ATR; anything longer is an APDU to answer.
 * Each reply is written as one buffer with Nagle off, so the card never adds a delayed-ACK wait.
 */
import { connect, type Socket } from 'node:net';
import type { VirtualCard } from './virtual/virtual-card.js';

export const VPCD_DEFAULT_PORT = 35963;

const CONTROL = { powerOff: 0, powerOn: 1, reset: 2, atr: 4 } as const;

export interface BridgeEvents {
  onConnected?(): void;
  onDisconnected?(reason: string): void;
  onApdu?(command: Buffer, response: Buffer): void;
}

function frame(payload: Buffer): Buffer {
  const out = Buffer.alloc(2 + payload.length);
  out.writeUInt16BE(payload.length, 0);
  payload.copy(out, 2);
  return out;
}

/** Handles one vpcd connection until it closes. */
export function serveConnection(socket: Socket, card: VirtualCard, events: BridgeEvents = {}): Promise<void> {
  socket.setNoDelay(true);
  let buffer = Buffer.alloc(0);
  return new Promise((resolve) => {
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 2) {
        const length = buffer.readUInt16BE(0);
        if (buffer.length < 2 + length) break;
        const payload = buffer.subarray(2, 2 + length);
        buffer = buffer.subarray(2 + length);
        if (length === 1) {
          const code = payload[0];
          // vpcd asks for the ATR to poll for the card: answer it without touching the card's RAM.
          if (code === CONTROL.atr) socket.write(frame(card.atr));
          else if (code === CONTROL.powerOn || code === CONTROL.reset || code === CONTROL.powerOff) card.reset();
          continue;
        }
        let response: Buffer;
        try {
          response = card.transmit(payload);
        } catch {
          response = Buffer.from([0x6f, 0x00]); // the card file stayed busy (E_CARD_BUSY): no precise diagnosis
        }
        events.onApdu?.(Buffer.from(payload), response);
        socket.write(frame(response));
      }
    });
    socket.on('close', () => resolve());
    socket.on('error', () => {});
  });
}

/**
 * Connects to vpcd and serves the card, reconnecting when pcscd restarts, until `signal` aborts.
 */
export async function runVpcdBridge(card: VirtualCard, opts: { host: string; port: number; signal: AbortSignal } & BridgeEvents): Promise<void> {
  while (!opts.signal.aborted) {
    const socket = await new Promise<Socket | Error>((resolve) => {
      const s = connect({ host: opts.host, port: opts.port });
      s.once('connect', () => resolve(s));
      s.once('error', (err) => resolve(err));
    });
    if (socket instanceof Error) {
      opts.onDisconnected?.(`cannot reach vpcd at ${opts.host}:${opts.port} (${(socket as NodeJS.ErrnoException).code ?? socket.message})`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (opts.signal.aborted) {
      // Aborted while connecting: a listener added now would never fire.
      socket.destroy();
      break;
    }
    opts.onConnected?.();
    const onAbort = () => socket.destroy();
    opts.signal.addEventListener('abort', onAbort, { once: true });
    await serveConnection(socket, card, opts);
    opts.signal.removeEventListener('abort', onAbort);
    if (!opts.signal.aborted) {
      opts.onDisconnected?.('vpcd closed the connection');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
