/** The URL a `qtm server start` child announces on stderr (its "listening" line); the rest of its log is drained. */
import type { ChildProcess } from 'node:child_process';

export function listeningUrl(server: ChildProcess): Promise<string> {
  let head = '';
  return new Promise<string>((ok, fail) => {
    const onData = (d: Buffer) => {
      head += d;
      const m = /"event":"listening","url":"https:\/\/127\.0\.0\.1:(\d+)"/.exec(head);
      if (m) {
        server.stderr!.off('data', onData);
        server.stderr!.resume(); // keep draining the request log
        ok(`https://localhost:${m[1]}`);
      }
    };
    server.stderr!.on('data', onData);
    server.once('exit', (code) => fail(new Error(`server exited ${code}: ${head}`)));
  });
}
