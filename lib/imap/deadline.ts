import type { ImapFlow } from 'imapflow';
import { ImapSyncError } from './errors.js';

/**
 * The run's deadline over one IMAP session: when it comes, the connection is closed, which settles
 * whatever was in flight (connect, greeting, login, SEARCH, a FETCH still streaming) at once.
 * Socket-idle timeouts alone never bound a link that keeps trickling bytes.
 */
export class ImapDeadline {
  /** Set when the deadline closed the connection: what fails afterwards failed because of it. */
  expired = false;
  private timer: NodeJS.Timeout | undefined;
  constructor(readonly at: number) {}
  remainingMs(now = Date.now()): number {
    return Math.max(0, this.at - now);
  }
  /** Closes `client` at the deadline (immediately when it has passed). */
  arm(client: ImapFlow): void {
    this.disarm();
    const fire = () => {
      this.expired = true;
      client.close();
    };
    const ms = this.remainingMs();
    if (ms <= 0) {
      fire();
      return;
    }
    this.timer = setTimeout(fire, ms);
  }
  disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
  /** The error to report instead of what imapflow threw, once the deadline closed the connection. */
  error(phase: string): ImapSyncError {
    return new ImapSyncError('deadline', `run deadline reached during ${phase}`);
  }
}
