import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describe } from 'vitest';
import { parseConfig } from '../../lib/config.js';
import { createMailFactory, MailError } from '../../lib/mail/transport.js';
import { startLocalServer } from '../../devtools/server.js';

const SECRET = 'local-server-secret-0123456789';

describe('local server (npm start) on the embedded database', () => {
  let srv: Awaited<ReturnType<typeof startLocalServer>>;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-server-'));
    srv = await startLocalServer({
      PORT: '0',
      SCHEDULER: 'off',
      CRON_SECRET: SECRET,
      PGLITE_DIR: 'memory://',
      OUTBOX_DIR: path.join(dataDir, 'outbox'),
    });
  }, 60_000);
  afterAll(async () => {
    if (srv?.child.exitCode === null) {
      const exited = new Promise((r) => srv.child.once('exit', r));
      srv.child.kill('SIGINT');
      await exited;
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves /cron/status with the secret, migrated on start', async () => {
    const r = await fetch(`${srv.url}/cron/status`, { headers: { authorization: `Bearer ${SECRET}` } });
    expect(r.status).toBe(200);
    const body = await r.json();
    expect(body.jobs).toHaveLength(4);
  });

  it('serves /api/<path> and the bare <path> through the same handler; 403 and 405 as specified', async () => {
    const a = await fetch(`${srv.url}/api/cron/check-overdue-and-reminders?secret=${SECRET}&dryRun=1`);
    const b = await fetch(`${srv.url}/cron/check-overdue-and-reminders?dryRun=1`, { headers: { authorization: `Bearer ${SECRET}` } });
    const ba = await a.json();
    const bb = await b.json();
    expect(a.status).toBe(b.status);
    expect(ba.job).toBe('overdue-reminders');
    expect(bb.job).toBe('overdue-reminders');
    expect((await fetch(`${srv.url}/followups/process-automatic?secret=wrong`)).status).toBe(403);
    const put = await fetch(`${srv.url}/followups/process-automatic`, { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST');
    expect((await fetch(`${srv.url}/nope`)).status).toBe(404);
  });

  it('stops cleanly on Ctrl-C (SIGINT)', async () => {
    const exited = new Promise<number | null>((r) => srv.child.once('exit', (code) => r(code)));
    srv.child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(srv.output()).toContain('stopping');
  });
});

describe('mail transport factory', () => {
  it('embedded default: writes the email as an .eml file in the outbox', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lokario-outbox-'));
    try {
      const f = createMailFactory(parseConfig({ OUTBOX_DIR: dir }));
      const res = await f.platform().send({
        from: 'Lokario <noreply@lokario.fr>',
        to: 'a@example.com',
        subject: 'Sujet accentué',
        text: 'Bonjour é',
        messageId: '<x.1@lokario.fr>',
      });
      expect(res.via).toBe('outbox');
      const eml = fs.readFileSync(res.file!, 'utf8');
      expect(eml).toContain('Message-ID: <x.1@lokario.fr>');
      expect(eml).toContain('To: a@example.com');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('production without SMTP_URL: every send fails clearly with smtp_not_configured', async () => {
    const f = createMailFactory(parseConfig({ NODE_ENV: 'production', CRON_SECRET: 'x' }));
    await expect(f.platform().send({ from: 'a@b.fr', to: 'c@d.fr', subject: 's', text: 't', messageId: '<m@b.fr>' })).rejects.toMatchObject(
      { code: 'smtp_not_configured' },
    );
    await expect(
      f.platform().send({ from: 'a@b.fr', to: 'c@d.fr', subject: 's', text: 't', messageId: '<m@b.fr>' }),
    ).rejects.toBeInstanceOf(MailError);
  });
});

describe('local scheduler (npm start with SCHEDULER on)', () => {
  it('runs every job from vercel.json on its own (accelerated with SCHEDULER_EVERY_SECONDS)', async () => {
    const srv = await startLocalServer({
      PORT: '0',
      SCHEDULER: 'on',
      SCHEDULER_EVERY_SECONDS: '1',
      CRON_SECRET: SECRET,
      PGLITE_DIR: 'memory://',
      OUTBOX_DIR: path.join(os.tmpdir(), 'lokario-sched-outbox'),
    });
    try {
      expect(srv.output()).toMatch(/scheduler: inbox-sync "\*\/1 \* \* \* \* \*"/);
      let jobs: { job: string; lastRun: unknown }[] = [];
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const body = await (await fetch(`${srv.url}/cron/status`, { headers: { authorization: `Bearer ${SECRET}` } })).json();
        jobs = body.jobs;
        if (jobs.every((j) => j.lastRun !== null)) break;
      }
      expect(jobs.filter((j) => j.lastRun === null)).toEqual([]);
    } finally {
      const exited = new Promise((r) => srv.child.once('exit', r));
      srv.child.kill('SIGINT');
      await exited;
    }
  }, 60_000);
});
