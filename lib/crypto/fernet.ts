import { createCipheriv, createDecipheriv, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Fernet (spec: version 0x80 ‖ 8-byte big-endian timestamp ‖ 16-byte IV ‖ AES-128-CBC/PKCS7
 * ciphertext ‖ HMAC-SHA256 of all that), compatible with Python's `cryptography.fernet`, which the
 * original backend used for mailbox passwords (docs/security.md).
 */
export class FernetError extends Error {
  readonly code = 'fernet_invalid';
}

const VERSION = 0x80;
// Key derivation of the original backend: PBKDF2-HMAC-SHA256, static salt, 100 000 iterations.
const SALT = Buffer.from('lokario_encryption_salt');
const ITERATIONS = 100_000;

function fromBase64Url(s: string): Buffer {
  if (!/^[A-Za-z0-9_\-+/]*={0,2}$/.test(s)) throw new FernetError('invalid base64');
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}
const toBase64Url = (b: Buffer) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');

/** A Fernet key: 32 bytes, urlsafe base64 (first half signs, second half encrypts). */
export function parseFernetKey(key: string): { signing: Buffer; encryption: Buffer } {
  const raw = fromBase64Url(key);
  if (raw.length !== 32) throw new FernetError('a Fernet key is 32 bytes');
  return { signing: raw.subarray(0, 16), encryption: raw.subarray(16) };
}

const derived = new Map<string, string>();
/** The Fernet key the original derived from ENCRYPTION_MASTER_KEY (cached: PBKDF2 costs ~50 ms). */
export function deriveLokarioKey(masterKey: string): string {
  let k = derived.get(masterKey);
  if (!k) {
    k = toBase64Url(pbkdf2Sync(Buffer.from(masterKey, 'utf8'), SALT, ITERATIONS, 32, 'sha256'));
    derived.set(masterKey, k);
  }
  return k;
}

export function fernetEncrypt(key: string, plaintext: string, opts: { now?: Date; iv?: Buffer } = {}): string {
  const { signing, encryption } = parseFernetKey(key);
  const iv = opts.iv ?? randomBytes(16);
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(Math.floor((opts.now ?? new Date()).getTime() / 1000)));
  const cipher = createCipheriv('aes-128-cbc', encryption, iv);
  const body = Buffer.concat([Buffer.from([VERSION]), ts, iv, cipher.update(Buffer.from(plaintext, 'utf8')), cipher.final()]);
  const mac = createHmac('sha256', signing).update(body).digest();
  return toBase64Url(Buffer.concat([body, mac]));
}

/** Verifies the HMAC before decrypting; throws FernetError on anything wrong. `ttlSec` checks age. */
export function fernetDecrypt(key: string, token: string, opts: { ttlSec?: number; now?: Date } = {}): string {
  const { signing, encryption } = parseFernetKey(key);
  const data = fromBase64Url(token);
  if (data.length < 1 + 8 + 16 + 16 + 32 || (data.length - 57) % 16 !== 0) throw new FernetError('token too short or misaligned');
  if (data[0] !== VERSION) throw new FernetError('unknown version');
  const body = data.subarray(0, data.length - 32);
  const mac = data.subarray(data.length - 32);
  if (!timingSafeEqual(createHmac('sha256', signing).update(body).digest(), mac)) throw new FernetError('incorrect mac');
  if (opts.ttlSec !== undefined) {
    const ts = Number(data.readBigUInt64BE(1));
    const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
    if (ts + opts.ttlSec < now) throw new FernetError('token expired');
  }
  try {
    const decipher = createDecipheriv('aes-128-cbc', encryption, data.subarray(9, 25));
    return Buffer.concat([decipher.update(data.subarray(25, data.length - 32)), decipher.final()]).toString('utf8');
  } catch {
    throw new FernetError('payload padding error');
  }
}

export type StoredSecret = { value: string; legacyPlaintext: boolean };

/**
 * A mailbox password as stored by the original backend (docs/security.md): a Fernet token (`gAAAAA…`) is decrypted
 * and must verify, else the integration fails (never sent as if it were the password); anything
 * else is a legacy plaintext password, used and flagged.
 */
export function decryptStoredSecret(stored: string, masterKey: string | undefined): StoredSecret {
  if (!stored.startsWith('gAAAAA')) return { value: stored, legacyPlaintext: true };
  if (!masterKey) throw new FernetError('ENCRYPTION_MASTER_KEY is not set; cannot decrypt a stored password');
  return { value: fernetDecrypt(deriveLokarioKey(masterKey), stored), legacyPlaintext: false };
}

export function encryptSecret(plaintext: string, masterKey: string): string {
  return fernetEncrypt(deriveLokarioKey(masterKey), plaintext);
}

/** The original removed spaces only for Gmail (app passwords are shown in groups of four). */
export function passwordForHost(password: string, host: string): string {
  return /(^|\.)(gmail|googlemail)\.com$/i.test(host.trim()) ? password.replace(/\s+/g, '') : password;
}
