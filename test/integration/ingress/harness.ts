/**
 * Runs the real ingress app in-process against the real local Redis, NATS and Postgres, with a
 * provisioned event — and either real engines (test/support/stack.ts) or a fake shard that answers
 * on the shard's NATS subject with whatever a test scripts.
 */
import type { AddressInfo } from 'node:net';
import type { NatsConnection, Subscription } from 'nats';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import type { ShardCommand, ShardResult } from '../../../src/domain/commands.js';
import type { EventSpec } from '../../../src/engine/provision.js';
import { decodeRequests, encode, shardSubject, type ShardReply } from '../../../src/engine/protocol.js';
import { createIngressApp, type IngressApp, type IngressDependencies } from '../../../src/ingress/app.js';
import { createTokenVerifier, mintToken } from '../../../src/ingress/auth.js';
import { serveIngress, type RunningIngress } from '../../../src/ingress/server.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig } from '../../support/env.js';
import { provisionTestEvent, testDatabase } from '../../support/stack.js';

export const config = testConfig();

export interface Harness {
  readonly url: string;
  readonly app: IngressApp;
  readonly running: RunningIngress;
  readonly redis: Redis;
  readonly nc: NatsConnection;
  token(customer: string, ttlS?: number): Promise<string>;
  close(): Promise<void>;
}

/**
 * A test file's stack with fake shards: its own database, an event provisioned with `event`, the
 * ingress, and a fake owner for every shard of the event — all closed when the file's tests end.
 */
export async function fakeShardStack(
  t: { teardown(fn: () => unknown): void },
  event: Parameters<typeof provisionTestEvent>[1] & { shardCount: number },
  overrides: Partial<IngressDependencies> = {},
): Promise<{ pool: pg.Pool; spec: EventSpec; harness: Harness; shards: FakeShards }> {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, event);
  const harness = await startHarness(pool, overrides);
  t.teardown(() => harness.close());
  const shards = new FakeShards(harness.nc, spec.eventId, event.shardCount);
  t.teardown(() => shards.close());
  return { pool, spec, harness, shards };
}

/** The ingress settings of the tests: a short shard deadline, and a short settling time after a close. */
export const HARNESS_SETTINGS = { shardTimeoutMs: 1500, idempotencyTtlS: 600, closeSettleMs: 3000 };

/** Starts the ingress on a free port. */
export async function startHarness(pool: pg.Pool, overrides: Partial<IngressDependencies> = {}): Promise<Harness> {
  const redis = createRedis({ url: config.redisUrl, log: silentLogger, name: 'ingress-test' });
  await connectRedis(redis);
  const nc = await connectNats({ url: config.natsUrl, log: silentLogger, name: 'ingress-test' });
  const app = createIngressApp({
    log: silentLogger,
    redis,
    nc,
    pg: pool,
    tokens: createTokenVerifier({ secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience }),
    settings: HARNESS_SETTINGS,
    ...overrides,
  });
  const running = await serveIngress(app, { port: 0, host: '127.0.0.1', log: silentLogger });
  return {
    url: running.url,
    app,
    running,
    redis,
    nc,
    token: (customer, ttlS = 3600) =>
      mintToken({ secret: config.jwtSecret, issuer: config.jwtIssuer, audience: config.jwtAudience, subject: customer, ttlS }),
    async close() {
      await running.close({ graceMs: 1000 });
      await nc.close();
      redis.disconnect();
    },
  };
}

/** A JSON-ish HTTP exchange. */
export interface Exchange {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly text: string;
}

/** Sends one request; `body` objects are JSON-encoded, strings sent as they are. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string; key?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Exchange> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  if (options.key !== undefined) headers['idempotency-key'] = options.key;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(base + path, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** What a fake shard was asked. */
export interface FakeCall {
  readonly shard: number;
  readonly command: ShardCommand;
  readonly requestId: string | undefined;
}

/** What a fake shard answers a call: a result, an error reply, or 'silence' to let the request time out. */
type FakeAnswer = ShardResult | ShardReply | 'silence';

function toReply(answer: ShardResult | ShardReply): ShardReply {
  return 'ok' in answer ? { result: answer } : answer;
}

/**
 * A fake shard owner for every shard of an event: answers each request with what `answer` returns,
 * or with what the promise it returns resolves to (a shard that takes its time; the batch's other
 * requests are answered when they are ready, and later messages are not held up).
 */
export class FakeShards {
  readonly calls: FakeCall[] = [];
  private readonly subscriptions: Subscription[] = [];
  answer: (call: FakeCall) => FakeAnswer | Promise<FakeAnswer> = () => ({
    ok: false,
    type: 'invalid',
    field: 'x',
    message: 'unscripted',
  });

  constructor(
    private readonly nc: NatsConnection,
    eventId: string,
    shardCount: number,
  ) {
    for (let shard = 0; shard < shardCount; shard++) {
      const sub = nc.subscribe(shardSubject(eventId, shard));
      this.subscriptions.push(sub);
      void (async () => {
        for await (const message of sub) {
          const replies: [number, ShardReply][] = [];
          decodeRequests(message.data).requests.forEach((request, index) => {
            const call: FakeCall = { shard, command: request.command, requestId: request.requestId };
            this.calls.push(call);
            const answer = this.answer(call);
            if (answer instanceof Promise) {
              // Answered on its own once ready: the shard's reply messages may answer any part of a batch.
              void answer.then((late) => {
                if (late !== 'silence') message.respond(encode({ replies: [[index, toReply(late)]] }));
              });
            } else if (answer !== 'silence') {
              replies.push([index, toReply(answer)]);
            }
          });
          if (replies.length > 0) message.respond(encode({ replies }));
        }
      })();
    }
  }

  async close(): Promise<void> {
    for (const sub of this.subscriptions) sub.unsubscribe();
    await this.nc.flush();
  }
}

export function eventPath(spec: EventSpec, rest: string): string {
  return `/v1/events/${spec.eventId}${rest}`;
}

export function portOf(running: RunningIngress): number {
  return (running.server.address() as AddressInfo).port;
}
