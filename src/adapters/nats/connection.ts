import { connect, type NatsConnection } from 'nats';
import type { Logger } from '../../log.js';

export type { NatsConnection };

/** Connects to NATS with endless reconnects, logging status changes (disconnect, reconnect). */
export async function connectNats(options: { url: string; log: Logger; name: string }): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.url.split(','),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    timeout: 5000,
    // Do not capture a stack trace for every request: costly on the hot path, useless in logs.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') {
        options.log.info({ status: status.type, data: String(status.data) }, 'NATS connection status');
      }
    }
  })();
  return nc;
}
