import type { ShardCommand, ShardResult } from '../domain/commands.js';

/** The NATS subject a shard listens on: `sentinel.<event>.<shard>`. */
export function shardSubject(eventId: string, shard: number): string {
  return `sentinel.${eventId}.${shard}`;
}

/** Request envelope: the command plus the caller's request id (propagated into engine logs). */
export interface ShardRequest {
  readonly command: ShardCommand;
  readonly requestId?: string;
}

/**
 * Reply envelope. A `result` is the shard's decision (including not-serving). An `error` is a
 * failure to decide or to persist (e.g. fenced mid-commit, database down): `retryable` tells the
 * caller whether the same idempotency key may be sent again.
 */
export type ShardReply =
  { readonly result: ShardResult } | { readonly error: { readonly code: string; readonly message: string; readonly retryable: boolean } };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encode(value: ShardRequest | ShardReply): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decode<T extends ShardRequest | ShardReply>(data: Uint8Array): T {
  return JSON.parse(decoder.decode(data)) as T;
}
