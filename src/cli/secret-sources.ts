/**
 * Where each secret the commands ask for comes from: its environment variable, its file flag
 * (`--<flag>-file`, as step's --password-file) and its prompt. Shared by the commands (a PIN is
 * read the same way by `card`, `sign` and `warrant`), so they live here rather than in one
 * command that the others import.
 */
export interface SecretKind {
  readonly env: string;
  readonly prompt: string;
  /** The file flag is `--${flag}-file`. */
  readonly flag: string;
  /** Card secrets (PIN, PUK, new PIN) may also come from stdin with --pin-stdin. */
  readonly card?: boolean;
}

export const CA_PASSPHRASE = { env: 'QTM_CA_PASSPHRASE', prompt: 'CA passphrase', flag: 'ca-passphrase' } as const satisfies SecretKind;
export const KEY_PASSPHRASE = { env: 'QTM_KEY_PASSPHRASE', prompt: 'key passphrase', flag: 'key-passphrase' } as const satisfies SecretKind;
export const SAM_PASSPHRASE = { env: 'QTM_SAM_PASSPHRASE', prompt: 'SAM passphrase', flag: 'sam-passphrase' } as const satisfies SecretKind;
export const PIN = { env: 'QTM_PIN', prompt: 'card PIN', flag: 'pin', card: true } as const satisfies SecretKind;
export const PUK = { env: 'QTM_PUK', prompt: 'card PUK', flag: 'puk', card: true } as const satisfies SecretKind;
export const NEW_PIN = { env: 'QTM_NEW_PIN', prompt: 'new card PIN', flag: 'new-pin', card: true } as const satisfies SecretKind;
