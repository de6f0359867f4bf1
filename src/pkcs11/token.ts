/**
 * PKCS#11 tokens through the `pkcs11js` binding (an optional dependency, like pcsclite: on a
 * machine where it did not build, every token operation fails with one clear line).
 *
 * A module is loaded and C_Initialize'd once per process; a token is found by the attributes of
 * its URI (never by slot order), opened in one R/W session and logged in as the user once.
 * Every PKCS#11 failure a user can cause (wrong PIN, missing token or object, a library that is
 * not a PKCS#11 module) becomes an InputError (exit 2) naming what was wrong and what to do.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { InputError, RefusedError } from '../errors.js';
import { parsePkcs11Uri, redactPkcs11Uri, type Pkcs11Uri } from './uri.js';

export type Handle = Buffer;
export interface Attribute {
  type: number;
  value?: number | boolean | string | Buffer | null;
}
export type Template = Attribute[];
export interface Mechanism {
  mechanism: number;
  parameter?: Buffer;
}

/** The parts of pkcs11js's PKCS11 class qtm uses. */
export interface P11 {
  load(path: string): void;
  C_Initialize(): void;
  C_Finalize(): void;
  close(): void;
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetTokenInfo(slot: Handle): { label: string; manufacturerID: string; model: string; serialNumber: string; flags: number };
  C_InitToken(slot: Handle, pin?: string, label?: string): string;
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_Logout(session: Handle): void;
  C_InitPIN(session: Handle, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: Template): void;
  C_FindObjects(session: Handle, max: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Template): Attribute[];
  C_SetAttributeValue(session: Handle, object: Handle, template: Template): void;
  C_CreateObject(session: Handle, template: Template): Handle;
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Template): Handle;
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, pub: Template, priv: Template): { publicKey: Handle; privateKey: Handle };
  C_DestroyObject(session: Handle, object: Handle): void;
  C_SignInit(session: Handle, mechanism: Mechanism, key: Handle): void;
  C_Sign(session: Handle, data: Buffer, out: Buffer): Buffer;
  C_EncryptInit(session: Handle, mechanism: Mechanism, key: Handle): void;
  C_Encrypt(session: Handle, data: Buffer, out: Buffer): Buffer;
}

interface Binding {
  PKCS11: new () => P11;
  [constant: string]: unknown;
}

const BINDING_HINT = 'install python3, make and g++, then run npm ci again (the optional dependency pkcs11js builds from source)';
const MODULE_HINT = 'set --pkcs11-module or QTM_PKCS11_MODULE to the PKCS#11 module\'s path (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)';
export const PIN_ENV = 'QTM_PKCS11_PIN';
export const MODULE_ENV = 'QTM_PKCS11_MODULE';

let binding: Binding | undefined;

/** pkcs11js, or an InputError saying how to get it. */
export function loadBinding(): Binding {
  if (binding) return binding;
  try {
    binding = createRequire(import.meta.url)('pkcs11js') as Binding;
    return binding;
  } catch (err) {
    throw new InputError(`PKCS#11 is not available: the pkcs11js binding did not load (${(err as Error).message.split('\n')[0]})`, BINDING_HINT, 'E_PKCS11_BINDING');
  }
}

/** A PKCS#11 constant by name (CKA_LABEL ...); PKCS#11 3.0 names pkcs11js lacks are listed here. */
export function ck(name: string): number {
  const v = loadBinding()[name] ?? ({ CKM_EDDSA: 0x1057, CKM_EC_EDWARDS_KEY_PAIR_GEN: 0x1055 } as Record<string, number>)[name];
  if (typeof v !== 'number') throw new TypeError(`unknown PKCS#11 constant ${name}`);
  return v;
}

/** The PKCS#11 return value name in a pkcs11js error ("CKR_PIN_INCORRECT"), if it is one. */
export function ckr(err: unknown): string | undefined {
  return /\b(CKR_[A-Z_]+)/.exec((err as Error)?.message ?? '')?.[1];
}

const modules = new Map<string, P11>();

export function loadModule(path: string): P11 {
  const loaded = modules.get(path);
  if (loaded) return loaded;
  const { PKCS11 } = loadBinding();
  const p11 = new PKCS11();
  try {
    p11.load(path);
  } catch (err) {
    const msg = (err as Error).message;
    if (/undefined symbol: C_GetFunctionList/.test(msg)) throw new InputError(`${path} is not a PKCS#11 module (it has no C_GetFunctionList)`, MODULE_HINT, 'E_PKCS11_MODULE');
    if (/cannot open shared object file|No such file/.test(msg)) throw new InputError(`cannot load the PKCS#11 module ${path}: no such file`, MODULE_HINT, 'E_PKCS11_MODULE');
    throw new InputError(`cannot load the PKCS#11 module ${path}: ${msg.split('\n')[0]}`, MODULE_HINT, 'E_PKCS11_MODULE');
  }
  try {
    p11.C_Initialize();
  } catch (err) {
    if (ckr(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      throw new InputError(`the PKCS#11 module ${path} did not initialise (${ckr(err) ?? (err as Error).message})`, 'for SoftHSM2, check that SOFTHSM2_CONF names a readable configuration', 'E_PKCS11_MODULE');
    }
  }
  modules.set(path, p11);
  return p11;
}

/** Finalises and unloads every module this process loaded (tests, and the end of a command). */
export function closeModules(): void {
  for (const session of sessions.values()) {
    try {
      session.p11.C_CloseSession(session.handle);
    } catch { /* already closed */ }
  }
  sessions.clear();
  for (const p11 of modules.values()) {
    try {
      p11.C_Finalize();
      p11.close();
    } catch { /* already finalised */ }
  }
  modules.clear();
}

let moduleFlagDefault: string | undefined;

/** The CLI's --pkcs11-module, for every token opened in this process without an explicit module. */
export function setPkcs11Module(path: string | undefined): void {
  moduleFlagDefault = path;
}

/** The module for a URI: --pkcs11-module, then the URI's module-path, then QTM_PKCS11_MODULE. */
export function modulePathFor(uri: Pkcs11Uri, flag?: string): string {
  const path = flag ?? moduleFlagDefault ?? uri.modulePath ?? process.env[MODULE_ENV];
  if (!path) {
    if (uri.moduleName) throw new InputError(`the URI names a module by module-name (${uri.moduleName}); qtm needs its path`, MODULE_HINT, 'E_PKCS11_MODULE');
    throw new InputError('no PKCS#11 module given', MODULE_HINT, 'E_PKCS11_MODULE');
  }
  return path;
}

const TOKEN_INITIALIZED = 0x400; // CKF_TOKEN_INITIALIZED
const trim = (s: string) => s.replace(/[\s\0]+$/, '');

function tokenInfo(p11: P11, slot: Handle) {
  try {
    return p11.C_GetTokenInfo(slot);
  } catch (err) {
    if (ckr(err) !== 'CKR_GENERAL_ERROR') throw err;
    return p11.C_GetTokenInfo(slot); // SoftHSM answers CKR_GENERAL_ERROR about once in a hundred starts
  }
}

/** Token attributes qtm matches on; the others would be silently ignored, so they are refused. */
function checkSupported(uri: Pkcs11Uri, text: string): void {
  const unsupported = [
    uri.libraryManufacturer !== undefined && 'library-manufacturer', uri.libraryDescription !== undefined && 'library-description',
    uri.libraryVersion !== undefined && 'library-version', uri.slotDescription !== undefined && 'slot-description',
    uri.slotManufacturer !== undefined && 'slot-manufacturer', ...uri.vendor.map((v) => v.name),
  ].filter(Boolean);
  if (unsupported.length) throw new InputError(`${redactPkcs11Uri(text)}: qtm does not select tokens by ${unsupported.join(', ')}`, 'name the token with token=, serial=, manufacturer=, model= or slot-id=', 'E_PKCS11_URI');
  if (uri.pinValue !== undefined) throw new InputError('a PKCS#11 URI with pin-value puts the PIN where any user can read it (ps, shell history)', `give the PIN in ${PIN_ENV}, a masked prompt, or the URI's pin-source=file:/path`, 'E_PKCS11_URI');
}

export interface TokenRef {
  readonly text: string;
  readonly uri: Pkcs11Uri;
  readonly module: string;
}

export function tokenRef(text: string, moduleFlag?: string): TokenRef {
  const uri = parsePkcs11Uri(text);
  checkSupported(uri, text);
  return { text: redactPkcs11Uri(text), uri, module: modulePathFor(uri, moduleFlag) };
}

function describeToken(uri: Pkcs11Uri): string {
  const parts = [uri.token !== undefined && `token=${uri.token}`, uri.serial !== undefined && `serial=${uri.serial}`, uri.manufacturer !== undefined && `manufacturer=${uri.manufacturer}`,
    uri.model !== undefined && `model=${uri.model}`, uri.slotId !== undefined && `slot-id=${uri.slotId}`].filter(Boolean);
  return parts.length ? parts.join(';') : '(any token)';
}

/** The one initialised token the URI names, or an InputError. */
export function findSlot(p11: P11, ref: TokenRef): Handle {
  const { uri } = ref;
  const matches = p11.C_GetSlotList(true).filter((slot) => {
    const info = tokenInfo(p11, slot);
    if (!(info.flags & TOKEN_INITIALIZED)) return false;
    return (uri.token === undefined || trim(info.label) === uri.token)
      && (uri.manufacturer === undefined || trim(info.manufacturerID) === uri.manufacturer)
      && (uri.model === undefined || trim(info.model) === uri.model)
      && (uri.serial === undefined || trim(info.serialNumber) === uri.serial)
      && (uri.slotId === undefined || slot.readUIntLE(0, Math.min(slot.length, 6)) === uri.slotId);
  });
  if (matches.length === 0) throw new InputError(`no PKCS#11 token ${describeToken(uri)} in ${ref.module}`, 'list the tokens with `qtm hsm list` or `pkcs11-tool --module MODULE --list-token-slots`', 'E_PKCS11_TOKEN');
  if (matches.length > 1) throw new InputError(`${matches.length} PKCS#11 tokens match ${describeToken(uri)} in ${ref.module}`, 'add serial= to the URI to name one', 'E_PKCS11_TOKEN');
  return matches[0]!;
}

export interface TokenSession {
  readonly p11: P11;
  readonly handle: Handle;
  readonly ref: TokenRef;
  readonly label: string;
}

const sessions = new Map<string, TokenSession>();

/** The PIN for a token: the URI's pin-source, else what this process was given for it (a prompt), else QTM_PKCS11_PIN. */
const promptedPins = new Map<string, string>();

export function tokenKey(ref: TokenRef): string {
  return `${ref.module}|${describeToken(ref.uri)}`;
}

/** Records a PIN the CLI prompted for, so synchronous openers find it (never written anywhere). */
export function rememberPin(ref: TokenRef, pin: string): void {
  promptedPins.set(tokenKey(ref), pin);
}

/** The PIN without prompting, or undefined when only a prompt could give it. */
export function pinWithoutPrompt(ref: TokenRef): string | undefined {
  if (ref.uri.pinSource !== undefined) return readPinSource(ref.uri.pinSource);
  // A PIN this process was given for this token (a prompt, the demo's token) before the global one.
  return promptedPins.get(tokenKey(ref)) ?? process.env[PIN_ENV];
}

function readPinSource(source: string): string {
  let path = source;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(source)) {
    if (!/^file:/i.test(source)) throw new InputError(`pin-source ${source.split(':')[0]}: is not supported`, 'use pin-source=file:/path/to/pin-file', 'E_PKCS11_URI');
    path = decodeURIComponent(source.replace(/^file:(\/\/(localhost)?(?=\/))?/i, ''));
  }
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch {
    throw new InputError(`cannot read the PIN file ${path} named by the URI's pin-source`, 'write the user PIN alone in that file (mode 0600)', 'E_PKCS11_PIN');
  }
}

/** A logged-in R/W session on the token the reference names (one per token per process). */
export function openSession(ref: TokenRef): TokenSession {
  const key = tokenKey(ref);
  const open = sessions.get(key);
  // One session per token; the objects are the ones this reference names.
  if (open) return { ...open, ref };
  const p11 = loadModule(ref.module);
  const slot = findSlot(p11, ref);
  const label = trim(tokenInfo(p11, slot).label);
  const pin = pinWithoutPrompt(ref);
  if (pin === undefined) throw new InputError(`the user PIN of token "${label}" is needed`, `set ${PIN_ENV}, add pin-source=file:/path to the URI, or run on a terminal to be prompted`, 'E_PKCS11_PIN');
  const handle = p11.C_OpenSession(slot, ck('CKF_RW_SESSION') | ck('CKF_SERIAL_SESSION'));
  try {
    p11.C_Login(handle, ck('CKU_USER'), pin);
  } catch (err) {
    const code = ckr(err);
    if (code === 'CKR_USER_ALREADY_LOGGED_IN') return remember();
    try {
      p11.C_CloseSession(handle);
    } catch { /* nothing to close */ }
    if (code === 'CKR_PIN_INCORRECT' || code === 'CKR_PIN_LEN_RANGE') throw new InputError(`wrong user PIN for token "${label}" (${code})`, `check ${PIN_ENV} or the URI's pin-source; the token locks the PIN after a few wrong tries`, 'E_PKCS11_PIN');
    if (code === 'CKR_PIN_LOCKED') throw new RefusedError(`the user PIN of token "${label}" is locked (CKR_PIN_LOCKED)`, 'the token\'s security officer must reset it', 'E_PKCS11_PIN');
    if (code === 'CKR_USER_PIN_NOT_INITIALIZED') throw new InputError(`token "${label}" has no user PIN yet (CKR_USER_PIN_NOT_INITIALIZED)`, 'set one with softhsm2-util --init-token or pkcs11-tool --init-pin', 'E_PKCS11_PIN');
    throw new InputError(`cannot log in to token "${label}" (${code ?? (err as Error).message})`, undefined, 'E_PKCS11');
  }
  return remember();
  function remember(): TokenSession {
    const s: TokenSession = { p11, handle, ref, label };
    sessions.set(key, s);
    return s;
  }
}

export type ObjectClass = 'secret-key' | 'private' | 'public' | 'cert' | 'data';
const CLASS: Record<ObjectClass, string> = { 'secret-key': 'CKO_SECRET_KEY', private: 'CKO_PRIVATE_KEY', public: 'CKO_PUBLIC_KEY', cert: 'CKO_CERTIFICATE', data: 'CKO_DATA' };

export function findObjects(s: TokenSession, cls: ObjectClass, by: { label?: string; id?: Buffer }): Handle[] {
  const template: Template = [{ type: ck('CKA_CLASS'), value: ck(CLASS[cls]) }];
  if (by.label !== undefined) template.push({ type: ck('CKA_LABEL'), value: by.label });
  if (by.id !== undefined) template.push({ type: ck('CKA_ID'), value: by.id });
  s.p11.C_FindObjectsInit(s.handle, template);
  try {
    return s.p11.C_FindObjects(s.handle, 16);
  } finally {
    s.p11.C_FindObjectsFinal(s.handle);
  }
}

/** The one object of this class the URI names (object= and/or id=), or an InputError. */
export function findObject(s: TokenSession, cls: ObjectClass): Handle {
  const { uri } = s.ref;
  if (uri.type !== undefined && uri.type !== cls) throw new InputError(`${s.ref.text} names a ${uri.type} object; qtm needs a ${cls} one here`, `use type=${cls} or leave type out`, 'E_PKCS11_OBJECT');
  if (uri.object === undefined && uri.id === undefined) throw new InputError(`${s.ref.text} names no object`, 'add object=LABEL to the URI', 'E_PKCS11_OBJECT');
  const found = findObjects(s, cls, { ...(uri.object !== undefined ? { label: uri.object } : {}), ...(uri.id !== undefined ? { id: uri.id } : {}) });
  const what = [uri.object !== undefined && `object=${uri.object}`, uri.id !== undefined && `id=${uri.id.toString('hex')}`].filter(Boolean).join(';');
  if (found.length === 0) throw new InputError(`no ${cls} object ${what} in token "${s.label}"`, 'list its objects with `qtm hsm list`', 'E_PKCS11_OBJECT');
  if (found.length > 1) throw new InputError(`${found.length} ${cls} objects match ${what} in token "${s.label}"`, 'add id= to the URI to name one', 'E_PKCS11_OBJECT');
  return found[0]!;
}

export function attribute(s: TokenSession, object: Handle, name: string): Buffer {
  const [a] = s.p11.C_GetAttributeValue(s.handle, object, [{ type: ck(name) }]);
  return a!.value as Buffer;
}

/** A CK_ULONG array attribute value (CKA_ALLOWED_MECHANISMS), in the platform's byte order and width. */
export function ulongArray(values: readonly number[]): Buffer {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
  return b;
}

/** Refuses to create an object whose label is taken: keys in a token are never replaced. */
export function assertLabelFree(s: TokenSession, label: string): void {
  for (const cls of ['secret-key', 'private', 'public', 'cert'] as const) {
    if (findObjects(s, cls, { label }).length) throw new RefusedError(`token "${s.label}" already holds an object labelled "${label}"`, 'choose another object= label; qtm never replaces keys', 'E_PKCS11_EXISTS');
  }
}
