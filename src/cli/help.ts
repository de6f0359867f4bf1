/**
 * Help that spans commands: examples on the group commands (`qtm card --help`), as on every
 * leaf command, so a user who stops at the group still sees how it is used.
 */
import type { Command } from 'commander';
import { examples } from './options.js';

export const GROUP_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  ca: ['qtm ca init --out ./ca', 'qtm ca issue --ca ./ca --role signer --subject "CN=Shop receipts,O=Shop" --out ./keys/receipts'],
  key: ['qtm key rewrap keys/receipts-key.pem --passphrase-file ~/.config/qtm/key.pass'],
  sam: ['qtm sam init --out shop.sam', 'qtm sam info shop.sam'],
  card: ['qtm card list-readers', 'qtm card emulate --card alice.card.json --create &', 'qtm card issue --ca ./ca --sam shop.sam --holder "CN=Alice Example" -r 0', 'qtm card info -r "pcd 00 00" --wait'],
  'card pin': ['qtm card pin change --card alice.card.json', 'qtm card pin unblock -r 0 --puk-file puk.txt --new-pin-file pin.txt'],
  server: ['qtm server start --tls keys/tls --signer keys/receipts --sam shop.sam --trust ca/ca.pem --store ./store', 'qtm server audit --store ./store --signer-cert keys/receipts.pem --trust ca/ca.pem'],
  warrant: ['qtm warrant request --dir ./warrants --name xavier', 'qtm warrant list --dir ./warrants', 'qtm warrant revoke --dir ./warrants 5A3C... --reason "contract ended"'],
  ttp: ['qtm ttp start --identity keys/ttp --tls keys/ttp-tls --trust ca/ca.pem --store ./ttp-store'],
  receipts: ['qtm receipts list --card alice.card.json', 'qtm receipts show 1 -r 0 --json', 'qtm receipts fetch --server https://127.0.0.1:8443 --trust ca/ca.pem -r 0'],
  package: ['qtm package sizes', 'qtm package sizes --profile v1   # the patent\'s 473 and 29 bytes', 'qtm package decode receipt.json'],
  hsm: ['qtm hsm list --pkcs11-module /usr/lib/softhsm/libsofthsm2.so', 'qtm hsm list "pkcs11:token=shop"   # its objects (PIN from QTM_PKCS11_PIN)'],
  log: ['qtm log init --out keys/log --origin shop.example/log', 'qtm log prove receipt.json --log ./tlog/www --log-key keys/log.vkey --out logged.json', 'qtm log monitor --log https://shop.example/log/ --log-key keys/log.vkey --state mon.json', 'qtm log audit --store ./store --log ./tlog/www --log-key keys/log.vkey'],
  completion: ['qtm completion bash > ~/.local/share/bash-completion/completions/qtm', 'qtm completion zsh > "${fpath[1]}/_qtm"', 'qtm completion fish > ~/.config/fish/completions/qtm.fish'],
};

/** The command's path below the root: "card pin" for `qtm card pin`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function addGroupExamples(root: Command): void {
  const visit = (cmd: Command) => {
    const ex = GROUP_EXAMPLES[commandPath(cmd)];
    if (ex && cmd.commands.length) cmd.addHelpText('after', examples(...ex));
    cmd.commands.forEach(visit);
  };
  root.commands.forEach(visit);
}

export const EXIT_CODES_HELP = `0 ok/valid, 1 invalid proof or refused operation, 2 unusable input or usage, 3 internal error,
130 cancelled (Ctrl-C at a prompt, or an interrupted qtm verify archive run). Errors are one line on
stderr, "qtm: error: ..."; with --json also {"error":{"code","message","exitCode"}} on stdout.`;

export const ENVIRONMENT_HELP = `QTM_CA_PASSPHRASE, QTM_KEY_PASSPHRASE, QTM_SAM_PASSPHRASE   passphrases (or --*-passphrase-file, a prompt)
QTM_PIN, QTM_PUK, QTM_NEW_PIN   card secrets (or --pin-file, --pin-stdin, a prompt)
QTM_READER, QTM_CARD            the card: a PC/SC reader, or a virtual card file (--reader, --card)
QTM_SERVER, QTM_TRUST           the server and the trust anchors (--server, --trust) for sign and verify
QTM_STORE                       the server's store: a directory, or postgres://... shared by many instances (--store)
QTM_ARCHIVE                     the client archive of proofs (--archive; default
                                $XDG_DATA_HOME/qtm/archive, XDG_DATA_HOME defaulting to ~/.local/share)
QTM_DEBUG=1                     stack traces with errors (--debug)
NO_COLOR                        no colour, even on a terminal
PCSCLITE_CSOCK_NAME             pcscd's socket (read by libpcsclite)
QTM_PKCS11_MODULE, QTM_PKCS11_PIN   the PKCS#11 module and a token's user PIN for pkcs11: key URIs
                                (--pkcs11-module; the PIN also from the URI's pin-source, or a prompt)
SOFTHSM2_CONF                   the SoftHSM2 configuration qtm demo --pkcs11 uses (a throwaway one if unset)
QTM_TEST_VERIFY_HOLD_AFTER=N    tests only: an archive run of qtm verify stops after N bundles and waits
                                for a signal, as if interrupted there (the resume tests use it)`;
