/**
 * The shard protocol on NATS. A client sends a shard's commands in batches — every command it
 * has for that shard in one turn of its event loop, in one message — and the owner answers each
 * command by its index in the batch, in as many reply messages as it needs: the losers of a batch
 * at once in one message, the winners of each group commit in one more. One message per batch
 * instead of one per command is what lets one engine and one ingress move tens of thousands of
 * decisions per second on two cores (ADR 0006).
 */
import type { CustomerId, SeatId, ShardCommand, ShardResult } from '../domain/commands.js';

/** The NATS subject a shard listens on: `sentinel.<event>.<shard>`. */
export function shardSubject(eventId: string, shard: number): string {
  return `sentinel.${eventId}.${shard}`;
}

/** One command plus the caller's request id (propagated into engine logs). */
export interface ShardRequest {
  readonly command: ShardCommand;
  readonly requestId?: string;
}

/** A request message: commands for one shard. */
export interface ShardRequestBatch {
  readonly requests: readonly ShardRequest[];
}

/**
 * The answer to one command. A `result` is the shard's decision (including not-serving). An
 * `error` is a failure to decide or to persist (e.g. fenced mid-commit, database down):
 * `retryable` tells the caller whether the same idempotency key may be sent again.
 */
export type ShardReply =
  /** `replayed`: the result is the one the key's first command got, given again (a retry). */
  | { readonly result: ShardResult; readonly replayed?: true }
  | { readonly error: { readonly code: string; readonly message: string; readonly retryable: boolean } };

/** A reply message: answers to some of a batch's commands, each as `[index in the batch, reply]`. */
export interface ShardReplyBatch {
  readonly replies: readonly (readonly [number, ShardReply])[];
}

/** Most commands in one request message (a batch stays far below NATS's 1 MB payload limit). */
export const MAX_BATCH = 256;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Where the owners of an event's shards announce the seats each commit sold:
 * `sentinel-sales.<event>`. Every ingress listens (`ALL_SALES`) and refuses later buyers of those
 * seats itself (SoldSeats), whichever replica the sale went through. Not `sentinel.sold.<event>`:
 * that would be shard `<event>` of an event named `sold` (an id may be all digits).
 */
export function salesSubject(eventId: string): string {
  return `sentinel-sales.${eventId}`;
}

/** Every event's sales. */
export const ALL_SALES = 'sentinel-sales.*';

/** The seats one commit sold and, at the same index, each one's buyer. */
export interface SalesAnnouncement {
  readonly seats: readonly SeatId[];
  readonly buyers: readonly CustomerId[];
}

export function encode(value: ShardRequestBatch | ShardReplyBatch | SalesAnnouncement): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Decodes a request message; throws on anything that is not a batch of requests. */
export function decodeRequests(data: Uint8Array): ShardRequestBatch {
  const value = JSON.parse(decoder.decode(data)) as Partial<ShardRequestBatch> | null;
  if (value === null || typeof value !== 'object' || !Array.isArray(value.requests)) throw new Error('not a shard request batch');
  for (const request of value.requests as unknown[]) {
    const command = (request as { command?: unknown } | null)?.command;
    if (typeof request !== 'object' || typeof command !== 'object' || command === null) throw new Error('not a shard request batch');
  }
  return value as ShardRequestBatch;
}

/** Decodes a reply message; throws on anything that is not a batch of replies. */
export function decodeReplies(data: Uint8Array): ShardReplyBatch {
  const value = JSON.parse(decoder.decode(data)) as Partial<ShardReplyBatch> | null;
  if (value === null || typeof value !== 'object' || !Array.isArray(value.replies)) throw new Error('not a shard reply batch');
  return value as ShardReplyBatch;
}

/** Decodes an announcement of sales; undefined for anything else (nothing is learned from it). */
export function decodeSales(data: Uint8Array): SalesAnnouncement | undefined {
  let value: Partial<SalesAnnouncement> | null;
  try {
    value = JSON.parse(decoder.decode(data)) as Partial<SalesAnnouncement> | null;
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const { seats, buyers } = value;
  if (!Array.isArray(seats) || !Array.isArray(buyers) || seats.length !== buyers.length) return undefined;
  if (!seats.every((s) => typeof s === 'string') || !buyers.every((b) => typeof b === 'string')) return undefined;
  return { seats, buyers };
}

/**
 * Sends `items` in as few messages as fit `maxBytes` (NATS's max_payload; undefined: one message):
 * `encodeItems` makes a message of the items [from, to), `send` sends it. A batch is cut in halves until
 * each part fits, so a turn with many large commands or answers never makes one message the server
 * refuses — which would fail every request of the batch, not only the large ones. A single item
 * too large is sent alone, to fail alone.
 */
export function sendWithin<T>(
  items: readonly T[],
  encodeItems: (items: readonly T[]) => Uint8Array,
  maxBytes: number | undefined,
  send: (data: Uint8Array, from: number, to: number) => void,
  from = 0,
  to = items.length,
): void {
  const data = encodeItems(from === 0 && to === items.length ? items : items.slice(from, to));
  if (maxBytes === undefined || data.length <= maxBytes || to - from === 1) {
    send(data, from, to);
    return;
  }
  const half = from + Math.ceil((to - from) / 2);
  sendWithin(items, encodeItems, maxBytes, send, from, half);
  sendWithin(items, encodeItems, maxBytes, send, half, to);
}

/**
 * Collects the answers to one request message and sends them together: everything answered in
 * the same synchronous stretch (a batch's losers; a group commit's winners) leaves as one message.
 */
export class ReplySink {
  private pending: [number, ShardReply][] = [];
  private scheduled = false;

  /** `maxBytes`: the largest message the server takes (see `sendWithin`). */
  constructor(
    private readonly publish: (data: Uint8Array) => void,
    private readonly maxBytes?: number,
  ) {}

  add(index: number, reply: ShardReply): void {
    this.pending.push([index, reply]);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Sends what is collected now (also runs by itself after the current synchronous stretch). */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const replies = this.pending;
    this.pending = [];
    sendWithin(
      replies,
      (part) => encode({ replies: part }),
      this.maxBytes,
      (data) => this.publish(data),
    );
  }
}
