import pg from 'pg';
import type { Logger } from '../../log.js';
import { translatePgError } from './errors.js';

export type { Pool, PoolClient } from 'pg';

/**
 * Longest a query of a pool made here can take (ms, client side): a statement the server has not
 * finished by then never commits (its own limit is 10 s).
 */
export const QUERY_TIMEOUT_MS = 15_000;

/**
 * Longest a session of a pool made here may sit idle inside a transaction before the server ends it
 * (ms). A client stopped mid-transaction — a paused process, a link that went quiet — would
 * otherwise keep its row locks until TCP keepalive notices, two hours by default: a claim's shard
 * row, and with it every commit of that shard. A transaction that waits on something else on
 * purpose (the outbox relay's Kafka send) sets its own limit.
 */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 15_000;

/** Creates a connection pool. Idle-client errors (a restarted server) are logged, never thrown. */
export function createPgPool(options: {
  url: string;
  max: number;
  log: Logger;
  applicationName?: string;
  /** node-postgres's pipeline mode: a client writes a query without waiting for the answer to the one before (default off). */
  pipeline?: boolean;
  /** How long an idle connection stays open (ms; 0: for good). Default 30 s. */
  idleTimeoutMs?: number;
  /** IDLE_IN_TRANSACTION_TIMEOUT_MS unless told (tests). */
  idleInTransactionTimeoutMs?: number;
}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: 5000,
    // A connection the server dropped mid-query (restart, failover) must fail the query, not hang
    // it: bound every query on the client side, and statements on the server side.
    query_timeout: QUERY_TIMEOUT_MS,
    statement_timeout: 10_000,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? IDLE_IN_TRANSACTION_TIMEOUT_MS,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
    application_name: options.applicationName ?? 'sentinel',
    ...(options.pipeline ? { pipeline: true } : {}),
  });
  pool.on('error', (error) => options.log.warn({ err: error }, 'Postgres idle client failed'));
  return pool;
}

const ignoreClientError = () => undefined;

/**
 * Checks a client out of the pool. A checked-out client whose server goes away emits 'error'
 * (and node would crash on an unhandled one); the failure reaches the caller through the
 * rejected query instead, so the event itself is ignored while the client is out.
 */
export async function checkout(pool: pg.Pool, what: string): Promise<pg.PoolClient> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw translatePgError(error, what);
  }
  if (!client.listeners('error').includes(ignoreClientError)) client.on('error', ignoreClientError);
  return client;
}

/** Runs `work` in one transaction on a pooled client; rolls back on any error and rethrows it translated. */
export async function inTransaction<T>(pool: pg.Pool, what: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await checkout(pool, what);
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    throw translatePgError(error, what);
  } finally {
    client.release(broken);
  }
}
