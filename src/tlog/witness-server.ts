/**
 * A C2SP tlog-witness over HTTP: POST <prefix>/add-checkpoint, one request at a time (the check of
 * the old size and the persisting of the new head are one step), the head of each log persisted
 * by rename before the answer. And the log's side: push a checkpoint with its consistency proof.
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { readHead, writeHead, LogMisbehaviourError, type TrustedHead } from './client-ops.js';
import type { Cosigner } from './cosignature.js';
import { consistencyProof } from './merkle.js';
import { decodeNote, type Vkey } from './note.js';
import { withTiles, type TileSource } from './tile-source.js';
import { addCheckpoint, decodeAddCheckpoint, encodeAddCheckpoint } from './witness-protocol.js';

const MAX_BODY = 64 * 1024;

function headFile(stateDir: string, origin: string): string {
  return join(stateDir, `${Buffer.from(origin).toString('base64url')}.json`);
}

export function createWitnessServer(o: { logs: readonly Vkey[]; cosigner: Cosigner; stateDir: string; log?: (l: Record<string, unknown>) => void }): Server {
  let queue: Promise<void> = Promise.resolve();
  return createServer((req, res) => {
    const answer = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
      o.log?.({ time: new Date().toISOString(), path: req.url, status });
    };
    if (req.method !== 'POST' || !/^\/(.*\/)?add-checkpoint$/.test(req.url ?? '')) return answer(404, 'not found\n');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      queue = queue.then(() => {
        let request;
        try {
          request = decodeAddCheckpoint(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
        } catch (err) {
          return answer(400, `${(err as Error).message}\n`);
        }
        const file = headFile(o.stateDir, request.parsed.checkpoint.origin);
        const a = addCheckpoint(request, o.logs, readHead(file), o.cosigner);
        if (a.status === 200) writeHead(file, request.parsed.checkpoint); // persisted before the answer
        return answer(a.status, a.body, a.status === 200 ? 'text/plain; charset=utf-8' : a.contentType);
      }).catch((err: Error) => answer(500, `${err.message}\n`));
    });
  });
}

/**
 * The log's side: send the checkpoint and a consistency proof from the witness's last cosigned
 * size (learnt from a 409 answer), and return the checkpoint with the witness's cosignature lines.
 */
export async function pushToWitness(src: TileSource, checkpointText: string, witnessUrl: string, known?: TrustedHead): Promise<string> {
  const note = decodeNote(checkpointText);
  const size = Number(note.text.split('\n')[1]);
  const url = new URL('add-checkpoint', witnessUrl.endsWith('/') ? witnessUrl : `${witnessUrl}/`);
  let old = known?.size ?? 0;
  for (let attempt = 0; attempt < 2; attempt++) {
    const proof = old === 0 || old === size ? [] : (await withTiles(src, size, (r) => consistencyProof(r, old, size))).map((p) => Buffer.from(p));
    let r: Response;
    try {
      r = await fetch(url, { method: 'POST', body: encodeAddCheckpoint({ oldSize: old, proof, checkpoint: checkpointText }), signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new InputError(`cannot reach the witness at ${url}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
    }
    const body = await r.text();
    if (r.status === 200) {
      decodeNote(`${note.text}\n${body}`); // the answer must be signature lines
      return `${checkpointText}${body}`;
    }
    if (r.status === 409 && r.headers.get('content-type') === 'text/x.tlog.size' && /^(0|[1-9][0-9]{0,15})\n$/.test(body) && attempt === 0) {
      old = Number(body.trim());
      if (old > size) throw new LogMisbehaviourError(`the witness at ${url} cosigned size ${old}, more than this checkpoint's ${size}: the log shrank`);
      continue;
    }
    throw new LogMisbehaviourError(`the witness at ${url} refused the checkpoint (HTTP ${r.status}): ${body.trim().slice(0, 300)}`);
  }
  throw new LogMisbehaviourError(`the witness at ${url} keeps answering with another size`);
}
