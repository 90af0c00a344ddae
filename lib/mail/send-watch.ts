/**
 * What the SMTP transport watches in nodemailer for the send protocol (docs/sending.md): the stage
 * of each message (queued → envelope → data) with the hand-over held before the body, and the
 * run's deadline as one abort signal.
 */
import { setMaxListeners } from 'node:events';
import type { SendStage } from './transport.js';

/** Key of the per-send hooks inside nodemailer's message data (read by the stream plugin below). */
export const WATCH_KEY = 'lokarioSendWatch';
export type SendWatch = { stage: SendStage; beforeData?: () => Promise<void>; gate?: Promise<void> };

type StreamLike = { pipe: (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => NodeJS.WritableStream; destroy(err?: Error): void };

/**
 * nodemailer calls `createReadStream` when a pooled connection starts the message's transaction
 * (MAIL FROM), and pipes that stream only after the server answered DATA. Both moments are
 * observed here: the first sets the stage to `envelope` and starts `beforeData` (the claim's
 * hand-over, written in the database), the second sets it to `data` and holds the body until
 * the hand-over has resolved.
 */
export function watchPlugin(mail: { data: Record<string, unknown>; message: { createReadStream(...a: unknown[]): StreamLike } }, done: (err?: Error | null) => void) {
  const watch = mail.data[WATCH_KEY] as SendWatch | undefined;
  if (watch) {
    const message = mail.message;
    const create = message.createReadStream.bind(message);
    message.createReadStream = (...args: unknown[]) => {
      const source = create(...args);
      watch.stage = 'envelope';
      const gate = watch.beforeData ? watch.beforeData() : Promise.resolve();
      gate.catch(() => {}); // observed below, or moot if the envelope fails first
      watch.gate = gate;
      const pipe = source.pipe.bind(source);
      source.pipe = (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => {
        watch.stage = 'data';
        gate.then(() => { pipe(dest, opts); }, (err: Error) => { source.destroy(err); });
        return dest;
      };
      return source;
    };
  }
  done();
}

/**
 * One abort signal per deadline instant, shared by every send that has it (all the sends of a
 * run): one timer per run instead of one timer and one controller per email.
 */
export function deadlineSignals() {
  const byInstant = new Map<number, { controller: AbortController; timer: ReturnType<typeof setTimeout> }>();
  return {
    at(instant: number): AbortSignal {
      let d = byInstant.get(instant);
      if (!d) {
        const controller = new AbortController();
        // every send in flight listens to it, and removes its listener when it ends
        setMaxListeners(0, controller.signal);
        const timer = setTimeout(() => { byInstant.delete(instant); controller.abort(); }, Math.max(0, instant - Date.now()));
        timer.unref(); // never what keeps a process alive
        d = { controller, timer };
        byInstant.set(instant, d);
      }
      return d.controller.signal;
    },
    clear() {
      for (const d of byInstant.values()) clearTimeout(d.timer);
      byInstant.clear();
    },
  };
}

