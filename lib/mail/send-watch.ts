/**
 * What the SMTP transport watches in nodemailer for the send protocol (docs/sending.md): the stage
 * of each message (queued → envelope → data) with the hand-over held before the body, and the
 * run's deadline as one timer per transport.
 */
import type { SendStage } from './transport.js';

/** Key of the per-send hooks inside nodemailer's message data (read by the stream plugin below). */
export const WATCH_KEY = 'lokarioSendWatch';
export type SendWatch = { stage: SendStage; beforeData?: () => Promise<void> };

type StreamLike = { pipe: (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => NodeJS.WritableStream; destroy(err?: Error): void };

/**
 * nodemailer calls `createReadStream` when a pooled connection starts the message's transaction
 * (MAIL FROM), and pipes that stream only after the server answered DATA. Both moments are
 * observed here: the first sets the stage to `envelope` and starts `beforeData` (the claim's
 * hand-over, written in the database), the second sets it to `data` and holds the body until
 * the hand-over has resolved.
 */
export function watchPlugin(
  mail: { data: Record<string, unknown>; message: { createReadStream(...a: unknown[]): StreamLike } },
  done: (err?: Error | null) => void,
) {
  const watch = mail.data[WATCH_KEY] as SendWatch | undefined;
  if (watch) {
    const message = mail.message;
    const create = message.createReadStream.bind(message);
    message.createReadStream = (...args: unknown[]) => {
      const source = create(...args);
      watch.stage = 'envelope';
      const pipe = source.pipe.bind(source);
      if (!watch.beforeData) {
        // nothing to wait for (the hand-over was written before the send): only the stage is watched
        source.pipe = (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => {
          watch.stage = 'data';
          return pipe(dest, opts);
        };
        return source;
      }
      const gate = watch.beforeData();
      gate.catch(() => {}); // observed below, or moot if the envelope fails first
      source.pipe = (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => {
        watch.stage = 'data';
        gate.then(
          () => {
            pipe(dest, opts);
          },
          (err: Error) => {
            source.destroy(err);
          },
        );
        return dest;
      };
      return source;
    };
  }
  done();
}

/**
 * The run's deadline for every send of one transport, as ONE timer: when it fires, the transport
 * is cut (closed with `force`: queued messages fail at once, busy connections are closed) and each
 * send it ended learns that the deadline did it. Cheaper than an abort signal per send (nodemailer
 * then adds and removes two listeners per message: ~5 % of a send's CPU, bench/followups.ts).
 *
 * One transport serves one run, so its sends share one deadline; if several are asked for, the
 * earliest cuts every send of the transport. After a cut the next send opens a new transport.
 */
export function deadlineCut(cutTransport: () => void) {
  let generation = 0;
  let armed: { at: number; timer: ReturnType<typeof setTimeout> } | undefined;
  const cutNow = () => {
    armed = undefined;
    generation++;
    cutTransport();
  };
  return {
    /** Arms the cut at `instant` (epoch ms) unless an earlier one is armed; the generation to check after a failure. */
    arm(instant: number): number {
      if (!armed || instant < armed.at) {
        if (armed) clearTimeout(armed.timer);
        const timer = setTimeout(cutNow, Math.max(0, instant - Date.now()));
        timer.unref(); // never what keeps a process alive
        armed = { at: instant, timer };
      }
      return generation;
    },
    /** The current generation (sends without a deadline). */
    current: () => generation,
    /** Whether a send that started in `g` was ended by a deadline cut. */
    wasCut: (g: number) => generation !== g,
    clear() {
      if (armed) clearTimeout(armed.timer);
      armed = undefined;
    },
  };
}
