import type { Msg, NatsError } from 'nats';
import type { Logger } from '../../log.js';

/** A subscription's callback, as nats.js calls it. */
export type MsgHandler = (error: NatsError | null, msg: Msg) => void;

/**
 * Wraps a subscription callback so that nothing it throws reaches nats.js: an exception is logged
 * (at warn, with the message's subject) and the message is dropped. nats.js (2.29) calls
 * subscription callbacks inside its socket reader loop, and an exception thrown there ends that
 * loop: the connection is not marked closed, but reads nothing more — every request of the
 * process times out — until the ping check notices and reconnects, 10–15 s later. One malformed
 * message must cost that message only. Every `subscribe(…, { callback })` goes through this.
 */
export function guardedCallback(log: Logger, what: string, handle: MsgHandler): MsgHandler {
  return (error, msg) => {
    try {
      handle(error, msg);
    } catch (err) {
      try {
        // With an error, nats.js passes an empty object for the message: no subject.
        log.warn({ err, subject: (msg as Partial<Msg> | undefined)?.subject }, `${what}: handling a NATS message failed; dropped`);
      } catch {
        // Not even the log may throw into the reader loop.
      }
    }
  };
}
