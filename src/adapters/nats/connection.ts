import { connect, type NatsConnection } from 'nats';
import { urlForDisplay } from '../../config.js';
import { withDeadline } from '../../deadline.js';
import type { Logger } from '../../log.js';

export type { NatsConnection };

/**
 * How long a first connection may take before `connectNats` says that it is waiting (ms): on a
 * reachable server it takes milliseconds; an attempt that times out takes `timeout` (5 s).
 */
export const NATS_WAIT_NOTICE_MS = 2000;

/**
 * Connects to NATS with endless reconnects and a ping every 5 s, logging status changes (disconnect,
 * reconnect). A NATS not reached at first is waited for, for ever (a pod may start before NATS
 * does): said once, as a warning naming the servers (without credentials), when the first
 * connection takes longer than `NATS_WAIT_NOTICE_MS` — and once more when it is made.
 */
export async function connectNats(options: { url: string; log: Logger; name: string }): Promise<NatsConnection> {
  const servers = options.url
    .split(',')
    .map((server) => server.trim())
    .filter((server) => server !== '');
  const shown = servers.map(urlForDisplay).join(',');
  let waiting = false;
  const notice = setTimeout(() => {
    waiting = true;
    options.log.warn({ servers: shown }, `Waiting for NATS at ${shown} (NATS_URL): not reachable yet; still trying`);
  }, NATS_WAIT_NOTICE_MS);
  const connecting = connect({
    servers,
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    timeout: 5000,
    // A link that silently drops packets is noticed when two pings in a row go unanswered — within
    // 10–15 s, not the client's default of 4–6 minutes — and the client reconnects.
    pingInterval: 5000,
    maxPingOut: 2,
    // Do not capture a stack trace for every request: costly on the hot path, useless in logs.
    noAsyncTraces: true,
    // nats.js closes a connection for good on the same authentication error twice in a row: a
    // server whose credentials are being rotated would close every process's connection at once.
    // Keep reconnecting instead; the connection recovers once the credentials agree again.
    ignoreAuthErrorAbort: true,
  });
  const nc = await connecting.finally(() => clearTimeout(notice));
  if (waiting) options.log.info({ servers: shown, server: nc.getServer() }, 'NATS connected');
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') {
        options.log.info({ status: status.type, data: String(status.data) }, 'NATS connection status');
      }
    }
  })();
  return nc;
}

/** How long a stop waits for NATS to drain before closing the connection (ms). */
export const NATS_DRAIN_MS = 2000;

/**
 * Drains the connection (subscriptions finish what they hold, publications are flushed) for up to
 * `NATS_DRAIN_MS`, then makes sure it is closed: a drain over a link that silently drops packets
 * never ends, and one started while the client is reconnecting can end without closing it (nats.js
 * 2.29 swallows the failure of its final flush), leaving the reconnect loop to keep the process
 * alive.
 */
export async function closeNats(nc: NatsConnection): Promise<void> {
  await withDeadline(nc.drain(), NATS_DRAIN_MS).catch(() => undefined);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}
