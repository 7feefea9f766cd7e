import { createInbox, ErrorCode, type Msg, type NatsConnection, type NatsError, type Subscription } from 'nats';
import { guardedCallback } from '../adapters/nats/guarded-callback.js';
import type { ShardCommand, ShardResult } from '../domain/commands.js';
import { DeadlineError, SentinelError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { decodeReplies, encode, MAX_BATCH, sendWithin, shardSubject, type ShardReply, type ShardRequest } from './protocol.js';

/** Options of one shard request. */
export interface ShardRequestOptions {
  /** Total time the caller is willing to wait, across retries (ms). */
  readonly deadlineMs: number;
  /** Correlation id, logged by the engine. */
  readonly requestId?: string;
  /**
   * Longest wait for one attempt (ms); default a quarter of the deadline, at least 250 ms. A
   * request delivered to an owner that then died is lost: the next attempt must not wait for the
   * whole deadline to find the new owner.
   */
  readonly attemptTimeoutMs?: number;
  /** Told when the shard answers with a replay: the result its key's first command got (ShardReply). */
  readonly onReplayed?: () => void;
}

/** A shard reported an error it could not decide around (not retryable, or retries exhausted). */
export class ShardError extends SentinelError {}

/** How one attempt ended: the owner's reply, a retryable loss (why), or a failure not worth retrying. */
type Attempt = { readonly reply: ShardReply } | { readonly lost: string } | { readonly failed: unknown };

interface Waiter {
  readonly expiresAt: number;
  readonly settle: (attempt: Attempt) => void;
  done: boolean;
}

/** A request message on its way: its commands' waiters, by index. */
interface SentBatch {
  readonly waiters: Waiter[];
  open: number;
  timer: NodeJS.Timeout | undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function lostReason(error: unknown): string | undefined {
  const code = (error as NatsError).code;
  if (
    code === ErrorCode.Disconnect ||
    code === ErrorCode.ConnectionClosed ||
    code === ErrorCode.ConnectionRefused ||
    code === ErrorCode.ConnectionDraining // shutting down: retryable through another ingress
  )
    return `NATS ${code}`;
  return undefined;
}

/**
 * The client side of the shard protocol: request with a deadline, typed replies, and retries of
 * retryable failures (no responder during a hand-off, a fenced or draining owner, a lost reply)
 * with the SAME command — its idempotency key makes the retry safe. A loser's answer
 * (`unavailable`, …) is a result, returned at once, never retried.
 *
 * Commands for one shard issued in the same turn of the event loop travel in one message, and
 * come back in as few as the owner can answer them in (see protocol.ts); all replies arrive on one
 * inbox subscription of this client.
 */
export class ShardClient {
  private readonly inbox = createInbox();
  private subscription: Subscription | undefined;
  private readonly queued = new Map<string, { requests: ShardRequest[]; waiters: Waiter[] }>();
  private flushScheduled = false;
  private readonly sent = new Map<number, SentBatch>();
  private nextBatch = 0;

  /** `log`: where replies it cannot use are reported (malformed ones, or a handler that threw). */
  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger = silentLogger,
  ) {}

  async send(eventId: string, shard: number, command: ShardCommand, options: ShardRequestOptions): Promise<ShardResult> {
    const subject = shardSubject(eventId, shard);
    const request: ShardRequest = options.requestId ? { command, requestId: options.requestId } : { command };
    const deadline = Date.now() + options.deadlineMs;
    let backoff = 10;
    let lastProblem = 'no reply';
    const attemptTimeout = options.attemptTimeoutMs ?? Math.max(250, Math.floor(options.deadlineMs / 4));
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new DeadlineError(
          `shard ${eventId}/${shard} did not answer within ${options.deadlineMs} ms (${attempt - 1} attempts; last: ${lastProblem})`,
        );
      }
      const outcome = await this.attempt(subject, request, Math.min(remaining, attemptTimeout));
      if ('failed' in outcome) throw outcome.failed;
      if ('lost' in outcome) {
        lastProblem = outcome.lost;
      } else if ('result' in outcome.reply) {
        const result = outcome.reply.result;
        if (result.type !== 'not-serving') {
          if (outcome.reply.replayed === true) options.onReplayed?.();
          return result;
        }
        lastProblem = `shard ${result.state}`;
      } else if (outcome.reply.error.retryable) {
        lastProblem = `${outcome.reply.error.code}: ${outcome.reply.error.message}`;
      } else {
        throw new ShardError(outcome.reply.error.code, outcome.reply.error.message);
      }
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
      backoff = Math.min(backoff * 2, 250);
    }
  }

  /** One attempt: queued for the next batch to the shard, settled by its reply or its timeout. */
  private attempt(subject: string, request: ShardRequest, timeoutMs: number): Promise<Attempt> {
    return new Promise<Attempt>((resolve) => {
      let queue = this.queued.get(subject);
      if (queue === undefined) {
        queue = { requests: [], waiters: [] };
        this.queued.set(subject, queue);
      }
      queue.requests.push(request);
      queue.waiters.push({ expiresAt: Date.now() + timeoutMs, settle: resolve, done: false });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    try {
      this.subscription ??= this.nc.subscribe(`${this.inbox}.*`, {
        callback: guardedCallback(this.log, 'Shard replies', (error, msg) => error === null && this.receive(msg)),
      });
    } catch (error) {
      // A closed connection: every queued attempt fails now rather than at its timeout.
      const lost = lostReason(error);
      for (const { waiters } of this.queued.values())
        for (const waiter of waiters) waiter.settle(lost === undefined ? { failed: error } : { lost });
      this.queued.clear();
      return;
    }
    for (const [subject, { requests, waiters }] of this.queued) {
      for (let from = 0; from < requests.length; from += MAX_BATCH)
        this.publish(subject, requests.slice(from, from + MAX_BATCH), waiters.slice(from, from + MAX_BATCH));
    }
    this.queued.clear();
  }

  private publish(subject: string, requests: ShardRequest[], waiters: Waiter[]): void {
    sendWithin(
      requests,
      (part) => encode({ requests: part }),
      this.nc.info?.max_payload,
      (data, from, to) => this.publishBatch(subject, data, from === 0 && to === waiters.length ? waiters : waiters.slice(from, to)),
    );
  }

  private publishBatch(subject: string, data: Uint8Array, waiters: Waiter[]): void {
    const id = this.nextBatch++;
    const batch: SentBatch = { waiters, open: waiters.length, timer: undefined };
    this.sent.set(id, batch);
    try {
      this.nc.publish(subject, data, { reply: `${this.inbox}.${id}` });
    } catch (error) {
      const lost = lostReason(error);
      this.settleAll(id, lost === undefined ? { failed: error } : { lost });
      return;
    }
    this.armTimer(id, batch);
  }

  /** Times out, at the earliest expiry among the batch's open waiters, every waiter due by then. */
  private armTimer(id: number, batch: SentBatch): void {
    let earliest = Infinity;
    for (const waiter of batch.waiters) if (!waiter.done && waiter.expiresAt < earliest) earliest = waiter.expiresAt;
    if (earliest === Infinity) return;
    batch.timer = setTimeout(
      () => {
        const now = Date.now();
        for (const waiter of batch.waiters)
          if (!waiter.done && waiter.expiresAt <= now + 1) this.settle(id, batch, waiter, { lost: 'request timed out' });
        if (batch.open > 0) this.armTimer(id, batch);
      },
      Math.max(0, earliest - Date.now()),
    );
  }

  private receive(msg: Msg): void {
    const id = Number(msg.subject.slice(this.inbox.length + 1));
    const batch = this.sent.get(id);
    if (batch === undefined) return; // answered (or timed out) already
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      this.settleAll(id, { lost: 'no responders (shard has no owner yet)' });
      return;
    }
    let replies, dropped;
    try {
      ({ replies, dropped } = decodeReplies(msg.data));
    } catch {
      // Not ours to understand: the waiters time out and retry.
      this.log.warn({ subject: msg.subject }, 'Shard reply is not a reply batch; dropped');
      return;
    }
    // Entries not of the protocol's shape are dropped: their waiters time out and retry.
    if (dropped > 0) this.log.warn({ subject: msg.subject, dropped }, 'Shard replies not of the protocol; dropped');
    for (const [index, reply] of replies) {
      const waiter = batch.waiters[index];
      // The first answer wins: a stale owner that answers late is ignored (ADR 0006).
      if (waiter !== undefined && !waiter.done) this.settle(id, batch, waiter, { reply });
    }
  }

  private settle(id: number, batch: SentBatch, waiter: Waiter, attempt: Attempt): void {
    waiter.done = true;
    waiter.settle(attempt);
    if (--batch.open === 0) {
      clearTimeout(batch.timer);
      this.sent.delete(id);
    }
  }

  private settleAll(id: number, attempt: Attempt): void {
    const batch = this.sent.get(id);
    if (batch === undefined) return;
    for (const waiter of batch.waiters) if (!waiter.done) this.settle(id, batch, waiter, attempt);
  }
}
