import { Command } from 'commander';
import { examples, parsePort } from '../cli/options.js';
import { diag } from '../cli/output.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { readIdentity } from '../pki/key-files.js';
import { loadTrustAnchors } from '../verify/trust.js';
import { startTtp } from '../fair/ttp-server.js';
import { KEY_PASSPHRASE } from '../cli/secret-sources.js';
import { TRAFFIC_HELP, trafficLimitsFrom, trafficOptions, type TrafficFlags } from '../cli/traffic-options.js';

export function ttpCommand(): Command {
  const ttp = new Command('ttp').description('the trusted third party of the fair exchange (claims 12-14)');
  trafficOptions(secretOptions(ttp.command('start'), [KEY_PASSPHRASE]))
    .description('serve abort and resolve requests over HTTPS (TLS 1.3) until stopped')
    .requiredOption('--identity <prefix>', 'the escrow key: role ttp, RSA-3072 (PREFIX.pem, PREFIX-key.pem)')
    .requiredOption('--tls <prefix>', 'the TLS identity, separate from the escrow key (role server)')
    .requiredOption('--trust <ca.pem>', 'CA that servers\' and cards\' certificates must chain to')
    .requiredOption('--store <dir>', 'where the TTP keeps its decisions (ttp.log, one line each); one TTP per folder')
    .option('--host <address>', 'bind address', '127.0.0.1')
    .option('--port <n>', 'TCP port (0 picks a free one)', parsePort, 8444)
    .addHelpText('after', TRAFFIC_HELP + `
Key passphrases come from QTM_KEY_PASSPHRASE (or a prompt). Logs one JSON line per request on
stderr. Every decision is on disk (DIR/ttp.log, fsync'd) before it is answered. A second TTP on
the same --store exits 2 naming the first one's PID. A DIR/ttp.json written by an earlier qtm
(lowdb) is converted on start and kept as DIR/ttp.json.migrated. See docs/FAIR-EXCHANGE.md.
` + examples('qtm ttp start --identity keys/ttp --tls keys/ttp-tls --trust ca/ca.pem --store ./ttp-store',
      'qtm ttp start --identity keys/ttp --tls keys/ttp-tls --trust ca/ca.pem --store ./ttp-store --rate 10 --max-connections-per-client 8'))
    .action(async (o: TrafficFlags & { identity: string; tls: string; trust: string; store: string; host: string; port: number }) => {
      const limits = trafficLimitsFrom(o);
      const pass = await readSecret(KEY_PASSPHRASE, o);
      const running = await startTtp({
        identity: readIdentity(o.identity, pass), tls: readIdentity(o.tls, pass), trustAnchors: loadTrustAnchors([o.trust]),
        storeDir: o.store, host: o.host, port: o.port, limits,
      });
      diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'listening', url: running.url, fingerprint: running.ttp.fingerprint.toString('hex') }));
      await new Promise<void>((resolve) => {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
      });
      await running.close();
      diag.line(JSON.stringify({ time: new Date().toISOString(), event: 'stopped' }));
    });
  return ttp;
}
