import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

export type LocalServer = { url: string; child: ChildProcess; output: () => string };

/**
 * `npm start`'s entry point as a child process (real HTTP), with only the given environment, and
 * the URL from its "listening on" line (start it with PORT=0 for a free port).
 */
export async function startLocalServer(env: Record<string, string>): Promise<LocalServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/server.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: 'none', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 45_000);
    const check = () => {
      const m = /listening on (http:\/\/localhost:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return { url, child, output: () => out };
}

/** Ctrl-C, and the exit code. */
export async function stopLocalServer(server: LocalServer): Promise<number | null> {
  if (server.child.exitCode !== null) return server.child.exitCode;
  const exited = new Promise<number | null>((r) => server.child.once('exit', (code) => r(code)));
  server.child.kill('SIGINT');
  return exited;
}
