import { DependencyError, SentinelError } from '../../errors.js';

// SQLSTATE classes that mean "the server or the connection is unwell", worth a retry:
// 08 connection exception, 53 insufficient resources (53300 too_many_connections among them),
// 57P operator intervention (shutdown), 57014 query_canceled (statement_timeout, or a cancel),
// 40001 serialization failure, 40P01 deadlock.
const RETRYABLE_SQLSTATE = /^(08|53|57P|57014|40001|40P01)/;
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
// Driver messages without a code: a dropped connection; no connection from the pool within
// connectionTimeoutMillis (pg-pool: "timeout exceeded when trying to connect", pg: "Connection
// terminated due to connection timeout"); no answer within query_timeout ("Query read timeout").
const RETRYABLE_MESSAGE =
  /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|Query read timeout/i;

/** Translates a driver error into the project's errors: connection trouble becomes retryable DependencyError. */
export function translatePgError(error: unknown, what: string): SentinelError {
  if (error instanceof SentinelError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === 'string' && (RETRYABLE_SQLSTATE.test(code) || NETWORK_CODES.has(code))) {
    return new DependencyError('postgres', `${what}: ${message}`, error);
  }
  if (RETRYABLE_MESSAGE.test(message)) {
    return new DependencyError('postgres', `${what}: ${message}`, error);
  }
  return new SentinelError('postgres_error', `${what}: ${message}`, { cause: error });
}
