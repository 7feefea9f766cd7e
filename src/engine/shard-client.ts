import { ErrorCode, type NatsConnection, type NatsError } from 'nats';
import type { ShardCommand, ShardResult } from '../domain/commands.js';
import { DeadlineError, SentinelError } from '../errors.js';
import { decode, encode, shardSubject, type ShardReply } from './protocol.js';

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
}

/** A shard reported an error it could not decide around (not retryable, or retries exhausted). */
export class ShardError extends SentinelError {}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The client side of the shard protocol: request with a deadline, typed replies, and retries of
 * retryable failures (no responder during a hand-off, a fenced or draining owner, a lost reply)
 * with the SAME command — its idempotency key makes the retry safe. A loser's answer
 * (`unavailable`, …) is a result, returned at once, never retried.
 */
export class ShardClient {
  constructor(private readonly nc: NatsConnection) {}

  async send(eventId: string, shard: number, command: ShardCommand, options: ShardRequestOptions): Promise<ShardResult> {
    const subject = shardSubject(eventId, shard);
    const payload = encode({ command, ...(options.requestId ? { requestId: options.requestId } : {}) });
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
      try {
        const message = await this.nc.request(subject, payload, { timeout: Math.min(remaining, attemptTimeout) });
        const reply = decode<ShardReply>(message.data);
        if ('result' in reply) {
          if (reply.result.type !== 'not-serving') return reply.result;
          lastProblem = `shard ${reply.result.state}`;
        } else if (reply.error.retryable) {
          lastProblem = `${reply.error.code}: ${reply.error.message}`;
        } else {
          throw new ShardError(reply.error.code, reply.error.message);
        }
      } catch (error) {
        const code = (error as NatsError).code;
        if (code === ErrorCode.NoResponders) lastProblem = 'no responders (shard has no owner yet)';
        else if (code === ErrorCode.Timeout) lastProblem = 'request timed out';
        else if (code === ErrorCode.Disconnect || code === ErrorCode.ConnectionClosed || code === ErrorCode.ConnectionRefused)
          lastProblem = `NATS ${code}`;
        else throw error;
      }
      await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())));
      backoff = Math.min(backoff * 2, 250);
    }
  }
}
