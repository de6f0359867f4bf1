import { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import { withCard, type CardChoice } from '../card/open-card.js';
import { cardOptions, examples, parsePositiveInt, parseTime } from '../cli/options.js';
import { out } from '../cli/output.js';
import { readSecret, secretOptions } from '../cli/secrets.js';
import { certificatesFromPemBundle, parseDistinguishedName } from '../crypto/x509.js';
import { InputError, RefusedError } from '../errors.js';
import { ensureParentDir, writeFileAtomic } from '../util/fs.js';
import type { CustomerRef } from '../warrant/policy.js';
import { createRequest, readRequest, WarrantRegistry } from '../warrant/registry.js';
import { describeCustomers, issueWarrant, issueWarrantWithCard } from '../warrant/warrant.js';
import { keyFingerprint } from '../crypto/keys.js';
import { crlPem, crlSignatureProblem, evenHex, issueCrl, issueCrlWithSigner, readCrlFile, verifyCrl, type CrlContent, type CrlEntry, type RevocationList } from '../warrant/crl.js';
import { Revocations } from '../warrant/revocations.js';
import { KEY_PASSPHRASE, PIN } from '../cli/secret-sources.js';
import { PKCS11_HELP, pkcs11ModuleOption, preparePkcs11, readSigningIdentity, requireUri } from '../cli/pkcs11.js';
import { createTokenRequest } from '../pki/token-keys.js';

const DAY_MS = 86_400_000;
const collect = (v: string, prev: string[] = []) => [...prev, v];

function customersFrom(o: { customer?: string[]; customerSubject?: string[]; customerCa?: string }): CustomerRef[] {
  const refs: CustomerRef[] = (o.customer ?? []).map((file) => {
    const cert = certificatesFromPemBundle(readFileSync(file, 'utf8'), file)[0]!;
    return { fingerprint: keyFingerprint(cert.publicKey) };
  });
  if (o.customerSubject?.length) {
    if (!o.customerCa) throw new InputError('--customer-subject needs --customer-ca (the CA that issues the customers\' cards)');
    const ca = certificatesFromPemBundle(readFileSync(o.customerCa, 'utf8'), o.customerCa)[0]!;
    for (const dn of o.customerSubject) {
      const subject = parseDistinguishedName(dn).map((a) => `${a.shortName ?? a.name}=${a.value}`);
      refs.push({ subject, issuer: keyFingerprint(ca.publicKey) });
    }
  }
  if (refs.length === 0) throw new InputError('a warrant must name at least one customer', 'give --customer CARD.pem or --customer-subject DN with --customer-ca CA.pem');
  return refs;
}

function state(w: ReturnType<WarrantRegistry['all']>[number], revokedAt: Date | undefined, at: Date): string {
  if (revokedAt && revokedAt <= at) return `revoked ${revokedAt.toISOString()}`;
  if (at < w.warrant.notBefore) return 'not yet valid';
  if (at > w.warrant.notAfter) return 'expired';
  return 'valid';
}

export function warrantCommand(): Command {
  const warrant = new Command('warrant').description('warrants: a manager lets the server sign by proxy for named customers (claims 10-11)');

  secretOptions(warrant.command('request'), [KEY_PASSPHRASE])
    .description('make a proxy signing key S in the server\'s warrants folder, and the request to give the manager')
    .requiredOption('--dir <dir>', 'the server\'s warrants folder')
    .requiredOption('--name <name>', 'a name for the key (files NAME-key.pem, NAME.request.pem)')
    .option('--pkcs11 <uri>', 'generate S in this PKCS#11 token object instead (never extractable); NAME-key.pkcs11 holds its URI')
    .addOption(pkcs11ModuleOption())
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
S's private key is written encrypted with QTM_KEY_PASSPHRASE (or a prompt) and never leaves the
folder; the request is its public key.
` + PKCS11_HELP + examples('qtm warrant request --dir ./warrants --name sales-2026', 'QTM_PKCS11_PIN=... qtm warrant request --dir ./warrants --name sales-2026 --pkcs11 "pkcs11:token=shop;object=proxy-sales-2026"'))
    .action(async (o: { dir: string; name: string; pkcs11?: string; pkcs11Module?: string; json?: boolean }) => {
      await preparePkcs11([requireUri(o.pkcs11)], o.pkcs11Module);
      const r = o.pkcs11 ? createTokenRequest(o.dir, o.name, o.pkcs11) : createRequest(o.dir, o.name, await readSecret({ ...KEY_PASSPHRASE, confirm: true, minLength: 8 }, o));
      if (o.json) return out.json(r);
      out.line(`request ${r.requestFile} (key ${r.fingerprint}); give it to the manager for \`qtm warrant issue\``);
    });

  secretOptions(cardOptions(warrant.command('issue')), [KEY_PASSPHRASE])
    .description('as manager X: sign a warrant (RFC 3820 proxy certificate) for the server\'s key S')
    .option('--issuer <prefix|uri>', 'X\'s identity in files: PREFIX.pem and PREFIX-key.pem (role manager), or its key\'s PKCS#11 URI (certificate stored beside it)')
    .addOption(pkcs11ModuleOption())
    .option('--issuer-card', 'X\'s key is on a manager\'s card (--card FILE or --reader NAME); PIN from QTM_PIN, --pin-stdin or a prompt')
    .option('--pin-stdin', 'with --issuer-card: read the PIN from the first line of standard input')
    .option('--pin-file <file>', 'with --issuer-card: read the PIN from the first line of FILE')
    .requiredOption('--request <file>', 'the server\'s request (NAME.request.pem)')
    .option('--customer <card.pem>', 'a customer\'s card certificate (repeatable)', collect)
    .option('--customer-subject <dn>', 'customers by subject, any card of theirs from --customer-ca (repeatable)', collect)
    .option('--customer-ca <ca.pem>', 'the CA that issues the customers\' cards, for --customer-subject')
    .option('--days <n>', 'validity in days (default 30)', parsePositiveInt)
    .option('--not-before <time>', 'start of validity (default now)', parseTime)
    .requiredOption('--out <file>', 'the warrant to write, NAME.warrant.pem (put it in the server\'s warrants folder)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
X's key passphrase comes from QTM_KEY_PASSPHRASE (or a prompt). With --issuer-card the card
checks that what it signs is a warrant it issues, and signs nothing else this way. The server can
sign for X only with the customers named here; every verifier checks that too.
` + examples(
      'qtm warrant issue --issuer keys/xavier --request warrants/sales.request.pem --customer alice-card.pem --out warrants/alice.warrant.pem',
      'qtm warrant issue --issuer-card --reader "Virtual PCD 00 00" --request sales.request.pem --customer alice-card.pem --out alice.warrant.pem',
      'qtm warrant issue --issuer keys/xavier --request sales.request.pem --customer-subject "CN=Bob Buyer,O=Bob BV" --customer-ca ca/ca.pem --days 90 --out bob.warrant.pem'))
    .action(async (o: CardChoice & { issuer?: string; issuerCard?: boolean; pinStdin?: boolean; request: string; customer?: string[]; customerSubject?: string[]; customerCa?: string; days?: number; notBefore?: Date; out: string; pkcs11Module?: string; json?: boolean }) => {
      if (Boolean(o.issuer) === Boolean(o.issuerCard)) throw new InputError('give X\'s key as --issuer PREFIX (files) or --issuer-card (a manager\'s card), one of the two');
      if (!o.out.endsWith('.warrant.pem')) throw new InputError(`--out ${o.out} must end in .warrant.pem`, 'the server picks up warrants by that ending');
      if (existsSync(o.out)) throw new RefusedError(`${o.out} already exists`, 'choose another --out; warrants are never overwritten');
      const customers = customersFrom(o);
      const subjectKey = readRequest(o.request);
      const notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
      const validity = { subjectKey, customers, notBefore, notAfter: new Date(notBefore.getTime() + (o.days ?? 30) * DAY_MS) };
      let w: X509Certificate;
      let chain: X509Certificate[];
      if (o.issuer) {
        await preparePkcs11([o.issuer], o.pkcs11Module);
        const x = await readSigningIdentity(o.issuer, o);
        w = issueWarrant({ ...validity, issuer: { certificate: x.certificates[0]!, privateKey: x.privateKey } });
        chain = x.certificates;
      } else {
        const pin = await readSecret(PIN, o);
        [w, chain] = await withCard(o, async (card) => {
          await card.select();
          const certificate = await card.readCertificate();
          await card.verifyPin(pin);
          return [await issueWarrantWithCard({ ...validity, issuer: { certificate, sign: (tbs) => card.signWarrant(tbs) } }), [certificate]] as const;
        });
      }
      ensureParentDir(o.out);
      writeFileAtomic(o.out, [w, ...chain].map((c) => c.toString()).join(''));
      const result = { file: o.out, serial: w.serialNumber.toUpperCase(), onBehalfOf: chain[0]!.subject.replace(/\n/g, ', '), validFrom: new Date(w.validFrom).toISOString(), validTo: new Date(w.validTo).toISOString(), customers };
      if (o.json) return out.json(result);
      out.line(`warrant ${result.serial} for "${result.onBehalfOf}" written to ${o.out}, valid ${result.validFrom} to ${result.validTo}`);
      out.line(`covers: ${describeCustomers({ version: 1, customers })}`);
    });

  warrant.command('list')
    .description('the warrants in a server\'s folder, with what they cover and their state')
    .requiredOption('--dir <dir>', 'the server\'s warrants folder')
    .option('--at <time>', 'state at this time (default now)', parseTime)
    .option('--json', 'print as JSON')
    .addHelpText('after', `
A warrant's state counts its issuer's revocation list (DIR/*.crl) when one signed by the issuer
is there; "revocations unknown" when none is.
` + examples('qtm warrant list --dir ./warrants', 'qtm warrant list --dir ./warrants --json | jq \'.[] | select(.state == "valid")\''))
    .action((o: { dir: string; at?: Date; json?: boolean }) => {
      const registry = WarrantRegistry.open(o.dir);
      const lists = registry.revocationFiles().flatMap((f) => (f.crl ? [f.crl] : []));
      const at = o.at ?? new Date();
      const rows = registry.all().map((w) => {
        const issuer = w.issuerChain[0]!;
        const own = lists.filter((l) => !crlSignatureProblem(l, issuer)).sort((a, b) => (a.crlNumber < b.crlNumber ? 1 : -1))[0];
        const revokedAt = own ? verifyCrl(own, issuer).lookup(w.warrant.serial, keyFingerprint(issuer.publicKey)) : undefined;
        const st = state(w, revokedAt, at);
        return {
          serial: w.warrant.serial, file: w.file, onBehalfOf: issuer.subject.replace(/\n/g, ', '),
          validFrom: w.warrant.notBefore.toISOString(), validTo: w.warrant.notAfter.toISOString(),
          state: st === 'valid' && !own ? 'revocations unknown' : st, customers: w.warrant.policy.customers,
          ...(own ? { crlNumber: own.crlNumber.toString() } : {}),
        };
      });
      if (o.json) return out.json(rows);
      if (rows.length === 0) return out.line(`no warrants in ${o.dir}`);
      for (const r of rows) out.line(`${r.serial}  ${r.state.padEnd(13)}  for "${r.onBehalfOf}"  ${r.validFrom} to ${r.validTo}  covers ${describeCustomers({ version: 1, customers: r.customers })}`);
    });

  cardOptions(warrant.command('revoke'))
    .description('as issuer X: sign the next revocation list (an X.509 CRL), revoking the given warrants')
    .argument('[serial...]', 'serial numbers of X\'s warrants to revoke now (none: renew the list as it is)')
    .requiredOption('--crl <file>', 'X\'s revocation list: read (when it exists) and replaced by the next one')
    .option('--issuer <prefix>', 'X\'s identity in files: PREFIX.pem and PREFIX-key.pem')
    .option('--issuer-card', 'X\'s key is on its card (--card FILE or --reader NAME); PIN from QTM_PIN, --pin-stdin or a prompt')
    .option('--pin-stdin', 'with --issuer-card: read the PIN from the first line of standard input')
    .option('--next-update-days <n>', 'days until the list must be renewed (default 7): a server refuses to sign for X with a list past it', parsePositiveInt)
    .option('--import-json <file>', 'migration: also sign in X\'s entries of an old unsigned revocations.json, with their times')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Only X's key makes X's list: cRLNumber one above the previous list's, thisUpdate now, every
earlier entry kept, the new warrants revoked as of now (in whole seconds). Put the file in the
server's warrants folder (any NAME.crl) before its nextUpdate: without a current list from X
signed by X the server signs nothing for X by proxy, and it refuses a list that is older, has lost
an entry or backdates one. Give the same file to auditors: \`qtm verify --revocations X.crl\`;
\`openssl crl -in X.crl -CAfile X.pem -noout -text\` shows and checks it.
` + examples(
      'qtm warrant revoke --issuer keys/xavier --crl warrants/xavier.crl 5A3C...',
      'qtm warrant revoke --issuer keys/xavier --crl warrants/xavier.crl            # renew, nothing new revoked',
      'qtm warrant revoke --issuer-card --reader "Virtual PCD 00 00" --crl warrants/xavier.crl 5A3C...',
      'qtm warrant revoke --issuer keys/xavier --crl warrants/xavier.crl --import-json warrants/revocations.json'))
    .action(async (serials: string[], o: CardChoice & { crl: string; issuer?: string; issuerCard?: boolean; pinStdin?: boolean; nextUpdateDays?: number; importJson?: string; json?: boolean }) => {
      if (Boolean(o.issuer) === Boolean(o.issuerCard)) throw new InputError('give X\'s key as --issuer PREFIX (files) or --issuer-card (its card), one of the two');
      for (const s of serials) if (!/^[0-9A-Fa-f]{1,40}$/.test(s)) throw new InputError(`"${s}" is not a warrant serial (hex, as \`qtm warrant list\` prints it)`);
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      const next = (certificate: X509Certificate): CrlContent => {
        const previous = existsSync(o.crl) ? readCrlFile(o.crl, certificate) : undefined;
        const fp = keyFingerprint(certificate.publicKey);
        const entries: CrlEntry[] = [...(previous?.entries ?? [])];
        const add = (serial: string, revocationDate: Date) => {
          if (!previous?.lookup(serial, fp) && !entries.some((e) => BigInt('0x' + e.serial) === BigInt('0x' + serial))) entries.push({ serial: evenHex(BigInt('0x' + serial)), revocationDate });
        };
        if (o.importJson) for (const e of Revocations.read(o.importJson).entries) if (e.issuer === fp) add(e.serial, new Date(Math.floor(Date.parse(e.revokedAt) / 1000) * 1000));
        for (const s of serials) add(s, now);
        return { crlNumber: (previous?.crlNumber ?? 0n) + 1n, thisUpdate: now, nextUpdate: new Date(now.getTime() + (o.nextUpdateDays ?? 7) * DAY_MS), entries };
      };
      let list: RevocationList;
      if (o.issuer) {
        await preparePkcs11([o.issuer]);
        const x = await readSigningIdentity(o.issuer, o);
        list = issueCrl(next(x.certificates[0]!), { certificate: x.certificates[0]!, privateKey: x.privateKey });
      } else {
        const pin = await readSecret({ ...PIN, fromStdin: Boolean(o.pinStdin) });
        list = await withCard(o, async (card) => {
          await card.select();
          const certificate = await card.readCertificate();
          const content = next(certificate);
          await card.verifyPin(pin);
          return issueCrlWithSigner(content, { certificate, sign: (tbs) => card.signCrl(tbs) });
        });
      }
      ensureParentDir(o.crl);
      writeFileAtomic(o.crl, crlPem(list.der), 0o644);
      const result = {
        file: o.crl, crlNumber: list.crlNumber.toString(), thisUpdate: list.thisUpdate.toISOString(), nextUpdate: list.nextUpdate.toISOString(),
        revoked: list.entries.map((e) => ({ serial: e.serial, revocationDate: e.revocationDate.toISOString() })),
      };
      if (o.json) return out.json(result);
      out.line(`revocation list number ${result.crlNumber} written to ${o.crl}: ${result.revoked.length} warrant(s) revoked${serials.length ? ` (${serials.map((s) => s.toUpperCase()).join(', ')} as of ${result.thisUpdate})` : ''}`);
      out.line(`renew it before ${result.nextUpdate}: \`qtm warrant revoke --crl ${o.crl}\` with X's key`);
    });
  return warrant;
}
