/**
 * Where each secret the commands ask for comes from: its environment variable and its prompt.
 * Shared by the commands (a PIN is read the same way by `card`, `sign` and `warrant`), so they
 * live here rather than in one command that the others import.
 */
export const CA_PASSPHRASE = { env: 'QTM_CA_PASSPHRASE', prompt: 'CA passphrase' } as const;
export const KEY_PASSPHRASE = { env: 'QTM_KEY_PASSPHRASE', prompt: 'key passphrase' } as const;
export const SAM_PASSPHRASE = { env: 'QTM_SAM_PASSPHRASE', prompt: 'SAM passphrase' } as const;
export const PIN = { env: 'QTM_PIN', prompt: 'card PIN' } as const;
export const PUK = { env: 'QTM_PUK', prompt: 'card PUK' } as const;
export const NEW_PIN = { env: 'QTM_NEW_PIN', prompt: 'new card PIN' } as const;
