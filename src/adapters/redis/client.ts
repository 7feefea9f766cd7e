import { Redis } from 'ioredis';
import { urlForDisplay } from '../../config.js';
import { DependencyError, errorLine } from '../../errors.js';
import type { Logger } from '../../log.js';

export type { Redis };

/** The URL each client was made with, without credentials: named when it cannot connect. */
const displayUrls = new WeakMap<Redis, string>();

/** How long `connectRedis` waits for a connected Redis to be ready (done loading its data), ms. */
const READY_TIMEOUT_MS = 10_000;

/**
 * Creates a Redis client that reconnects forever with capped backoff and fails commands fast
 * while disconnected (no offline queue), so callers see a retryable error instead of a hang.
 */
export function createRedis(options: {
  url: string;
  log: Logger;
  name?: string;
  /** Send the commands issued in one event-loop tick in one write (busy request paths). */
  autoPipelining?: boolean;
  /**
   * Fail a command not answered within this many ms. A Redis that stops answering without
   * closing the connection (paused, or behind a link that drops packets) otherwise leaves every
   * command waiting for TCP to give up, hours later.
   */
  commandTimeoutMs?: number;
}): Redis {
  const client = new Redis(options.url, {
    connectionName: options.name ?? 'sentinel',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    lazyConnect: true,
    enableAutoPipelining: options.autoPipelining ?? false,
    // ioredis runs one auto-pipeline at a time: a health PING caught in one when Redis goes silent
    // held the next pipeline — a request's — until the PING's own timeout, doubling its wait. Sent
    // on its own, a PING holds up nothing.
    autoPipeliningIgnoredCommands: ['ping'],
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
    // Reconnect soon: on loopback or in a cluster a refused connection costs nothing, and a shard
    // owner whose lease extensions wait for this client must learn quickly if Redis lost its key.
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), 500),
    // A Redis that restarts loads its AOF before it answers, and the client polls it until done:
    // by default after Redis's own estimate of the time left, which at the start of the load can be
    // seconds too long (in `sentinel chaos`, the ingress came back 6 s after Redis was ready).
    maxLoadingRetryTime: 250,
  });
  displayUrls.set(client, urlForDisplay(options.url));
  // One line when an outage begins, one when it ends. A connection Redis closed (a restart) is
  // `reconnecting` without any `error` — a restarted Redis accepts connections at once, answering
  // LOADING while it loads its data — and a connection that could not be made is an `error`.
  let down = false;
  client.on('reconnecting', () => {
    if (!down) options.log.warn('Redis connection lost; reconnecting');
    down = true;
  });
  client.on('error', (error: Error) => {
    if (!down) options.log.warn({ err: error.message }, 'Redis connection failed');
    down = true;
  });
  client.on('ready', () => {
    if (down) options.log.info('Redis connection restored');
    down = false;
  });
  return client;
}

/**
 * Follows whether `client` can take commands, as its events say: `onChange(true)` once it is ready
 * (connected, and Redis done loading its data), `onChange(false)` once its connection closes (lost,
 * or the client ended; the failed attempts of an outage say nothing more). Told the state at once,
 * then each change. It cannot tell a Redis that stops answering on an open connection: commands time
 * out then, the connection stays. Returns a function that stops following.
 */
export function followRedisReady(client: Redis, onChange: (ready: boolean) => void): () => void {
  let ready = client.status === 'ready';
  const changed = (now: boolean) => {
    if (now === ready) return;
    ready = now;
    onChange(now);
  };
  const onReady = () => changed(true);
  const onClose = () => changed(false);
  client.on('ready', onReady);
  client.on('close', onClose);
  onChange(ready);
  return () => {
    client.off('ready', onReady);
    client.off('close', onClose);
  };
}

/**
 * Connects (the client is lazy) and waits until it is ready. A Redis that cannot be reached — or
 * is not ready within 10 s — is a DependencyError naming its URL (without credentials) and why
 * (ioredis says only "Connection is closed."). The client goes on reconnecting, as ever: a later
 * call waits for it again; a caller that gives up disconnects it.
 */
export async function connectRedis(client: Redis): Promise<void> {
  const status = (): string => client.status;
  if (status() === 'ready') return;
  // The reason of a failed connection comes in an `error` event; `connect()` itself rejects with
  // ioredis's "Connection is closed.", which says nothing of where or why.
  let failure: Error | undefined;
  const onError = (error: Error) => (failure ??= error);
  client.on('error', onError);
  try {
    if (status() === 'wait' || status() === 'end') await client.connect();
    if (status() !== 'ready') await readyWithin(client, READY_TIMEOUT_MS);
  } catch (error) {
    const where = displayUrls.get(client) ?? `${client.options.host ?? '?'}:${client.options.port ?? '?'}`;
    const reason = failure ?? error;
    throw new DependencyError('redis', `cannot connect to Redis at ${where} (REDIS_URL): ${errorLine(reason)}`, reason);
  } finally {
    client.off('error', onError);
  }
}

/** Resolves once `client` is ready; rejects when it ends first, or after `ms`. */
function readyWithin(client: Redis, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('end', onEnd);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onReady = () => done();
    const onEnd = () => done(new Error('the connection ended'));
    const timer = setTimeout(() => done(new Error(`not ready after ${ms / 1000} s (status ${client.status})`)), ms);
    client.once('ready', onReady);
    client.once('end', onEnd);
  });
}
