import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { consoleRoute } from '../../lib/console/route.js';
import { serveHandler } from '../helpers/http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { testRuntime } from '../helpers/runtime.js';
import { describePg } from '../helpers/services.js';
import { JOB_REGISTRY } from '../../lib/jobs/registry.js';

const SECRET = 'console-http-secret-0123456789';
const PASSWORD = 'console-password-abcdefghij';
const form = { 'content-type': 'application/x-www-form-urlencoded' };

/** A sign-in with a chosen Host header (fetch does not let a caller set it). */
function signInAs(url: string, host: string, password: string): Promise<{ status: number; cookie: string | undefined }> {
  const body = new URLSearchParams({ op: 'signin', actor: 'Zoé', password }).toString();
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/cron`,
      { method: 'POST', headers: { ...form, host, origin: `https://${host}`, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0] }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describePg('console sign-in over real HTTP (real PostgreSQL)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('consolehttp');
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function serve(env: Record<string, string>) {
    const { rt } = testRuntime(env, t.handle);
    return serveHandler(consoleRoute(JOB_REGISTRY, () => rt));
  }
  const signIn = (url: string, password: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/cron`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...form, ...headers },
      body: new URLSearchParams({ op: 'signin', actor: 'Zoé', password }),
    });

  it('with CONSOLE_PASSWORD set, it signs in and CRON_SECRET does not; rotating it signs the session out', async () => {
    const s = await serve({ CRON_SECRET: SECRET, CONSOLE_PASSWORD: PASSWORD });
    let cookie: string;
    try {
      expect((await signIn(s.url, SECRET)).status).toBe(401);
      const ok = await signIn(s.url, PASSWORD);
      expect(ok.status).toBe(303);
      cookie = ok.headers.get('set-cookie')!.split(';')[0];
      const page = await fetch(`${s.url}/cron`, { headers: { cookie } });
      expect(await page.text()).toContain('Connecté : Zoé');
    } finally {
      await s.close();
    }
    const rotated = await serve({ CRON_SECRET: SECRET, CONSOLE_PASSWORD: `${PASSWORD}-new` });
    try {
      const page = await fetch(`${rotated.url}/cron`, { headers: { cookie } });
      expect(await page.text()).toContain('name="password"'); // back to the sign-in form
    } finally {
      await rotated.close();
    }
  });

  it('Secure outside localhost; a POST from another origin is refused; a production deployment without any password answers 500', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      const remote = await signInAs(s.url, 'lokario-cron.vercel.app', SECRET);
      expect(remote.status).toBe(303);
      expect(remote.cookie).toMatch(/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
      const foreign = await signIn(s.url, SECRET, { origin: 'https://evil.example' });
      expect(foreign.status).toBe(403);
      expect(foreign.headers.get('set-cookie')).toBeNull();
    } finally {
      await s.close();
    }
    const bare = await serve({ VERCEL_ENV: 'production' });
    try {
      const res = await fetch(`${bare.url}/cron`);
      expect(res.status).toBe(500);
      expect(await res.text()).toContain('Définissez CONSOLE_PASSWORD ou CRON_SECRET');
    } finally {
      await bare.close();
    }
  });

  it('an action without the confirmation box is refused, even with a valid session and token', async () => {
    const s = await serve({ CRON_SECRET: SECRET });
    try {
      const cookie = (await signIn(s.url, SECRET)).headers.get('set-cookie')!.split(';')[0];
      const page = await (await fetch(`${s.url}/cron`, { headers: { cookie } })).text();
      const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1];
      const res = await fetch(`${s.url}/cron`, {
        method: 'POST',
        redirect: 'manual',
        headers: { ...form, cookie },
        body: new URLSearchParams({ op: 'run', job: 'followups', csrf }),
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('Confirmation requise');
    } finally {
      await s.close();
    }
  });
});
