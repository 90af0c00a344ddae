import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FernetError,
  decryptStoredSecret,
  deriveLokarioKey,
  encryptSecret,
  fernetDecrypt,
  fernetEncrypt,
  passwordForHost,
} from '../../lib/crypto/fernet.js';

/**
 * The vectors live in the shared fixtures; a copy is committed in tests/fixtures so the test runs
 * on any clone. The repo copy wins; the shared one is the fallback (and they must agree).
 */
function loadFixture<T>(name: string): T {
  const candidates = [new URL(`../fixtures/${name}`, import.meta.url), new URL(`../../../shared/fixtures/${name}`, import.meta.url)];
  for (const url of candidates) {
    if (fs.existsSync(url)) return JSON.parse(fs.readFileSync(url, 'utf8')) as T;
  }
  throw new Error(`fixture ${name} not found (tests/fixtures or ../shared/fixtures)`);
}

type SpecVectors = {
  generate: { token: string; now: string; iv: number[]; src: string; secret: string }[];
  verify: { token: string; now: string; ttl_sec: number; src: string; secret: string }[];
  invalid: { desc: string; token: string; secret: string }[];
};
type LokarioVectors = {
  master_key: string;
  derived_fernet_key: string;
  valid: { plaintext: string; token: string }[];
  wrong_key_tokens: string[];
  legacy_plaintext_values: string[];
};

const spec = loadFixture<SpecVectors>('fernet-spec-vectors.json');
const lokario = loadFixture<LokarioVectors>('lokario-encryption-vectors.json');

describe('Fernet (spec vectors)', () => {
  it('has vectors to check (the fixture was read)', () => {
    expect(spec.generate.length).toBeGreaterThan(0);
    expect(spec.verify.length).toBeGreaterThan(0);
    expect(spec.invalid.length).toBeGreaterThanOrEqual(6);
  });

  for (const v of spec.generate) {
    it(`generate: "${v.src}" gives the exact spec token`, () => {
      expect(fernetEncrypt(v.secret, v.src, { now: new Date(v.now), iv: Buffer.from(v.iv) })).toBe(v.token);
    });
  }

  for (const v of spec.verify) {
    it(`verify: decrypts "${v.src}" within its ttl`, () => {
      expect(fernetDecrypt(v.secret, v.token, { ttlSec: v.ttl_sec, now: new Date(v.now) })).toBe(v.src);
    });
    it('verify: the same token is rejected once the ttl has passed', () => {
      const late = new Date(new Date(v.now).getTime() + (v.ttl_sec + 5) * 1000);
      expect(() => fernetDecrypt(v.secret, v.token, { ttlSec: v.ttl_sec, now: late })).toThrow(FernetError);
    });
  }

  for (const v of spec.invalid) {
    it(`invalid: ${v.desc} is rejected`, () => {
      expect(() => fernetDecrypt(v.secret, v.token)).toThrow(FernetError);
    });
  }

  it('a key that is not 32 bytes is rejected', () => {
    expect(() => fernetEncrypt('c2hvcnQ=', 'x')).toThrow(FernetError);
  });
});

describe('Lokario encryption (PBKDF2-derived Fernet key, SPEC §3)', () => {
  it('derives the same Fernet key as the original backend', () => {
    expect(deriveLokarioKey(lokario.master_key)).toBe(lokario.derived_fernet_key);
  });

  for (const v of lokario.valid) {
    it(`decrypts a stored password: ${JSON.stringify(v.plaintext)}`, () => {
      expect(decryptStoredSecret(v.token, lokario.master_key)).toEqual({ value: v.plaintext, legacyPlaintext: false });
    });
  }

  it('a token encrypted with another key fails, never passes through as the password', () => {
    for (const token of lokario.wrong_key_tokens) {
      expect(() => decryptStoredSecret(token, lokario.master_key)).toThrow(FernetError);
    }
  });

  it('a tampered token fails (one character of the MAC changed)', () => {
    const t = lokario.valid[0].token;
    const i = t.length - 5;
    const tampered = t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1);
    expect(() => decryptStoredSecret(tampered, lokario.master_key)).toThrow(FernetError);
  });

  it('a legacy plaintext value is used as is and flagged', () => {
    for (const p of lokario.legacy_plaintext_values) {
      expect(decryptStoredSecret(p, lokario.master_key)).toEqual({ value: p, legacyPlaintext: true });
      expect(decryptStoredSecret(p, undefined)).toEqual({ value: p, legacyPlaintext: true });
    }
  });

  it('a Fernet token without ENCRYPTION_MASTER_KEY is an error, not a password', () => {
    expect(() => decryptStoredSecret(lokario.valid[0].token, undefined)).toThrow(FernetError);
  });

  it('encrypts new values the same way (round trip through the original format)', () => {
    const token = encryptSecret('nouveau mot de passe', lokario.master_key);
    expect(token.startsWith('gAAAAA')).toBe(true);
    expect(decryptStoredSecret(token, lokario.master_key).value).toBe('nouveau mot de passe');
  });

  it('removes spaces only for Gmail hosts', () => {
    expect(passwordForHost('abcd efgh ijkl mnop', 'smtp.gmail.com')).toBe('abcdefghijklmnop');
    expect(passwordForHost('abcd efgh ijkl mnop', 'imap.googlemail.com')).toBe('abcdefghijklmnop');
    expect(passwordForHost('abcd efgh', 'ssl0.ovh.net')).toBe('abcd efgh');
    expect(passwordForHost('abcd efgh', 'notgmail.com.example')).toBe('abcd efgh');
  });
});
