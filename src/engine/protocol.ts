/**
 * The shard protocol on NATS. A client sends a shard's commands in batches — every command it
 * has for that shard in one turn of its event loop, in one message — and the owner answers each
 * command by its index in the batch, in as many reply messages as it needs: the losers of a batch
 * at once in one message, the winners of each group commit in one more. One message per batch
 * instead of one per command is what lets one engine and one ingress move tens of thousands of
 * decisions per second on two cores (ADR 0006).
 */
import type { CustomerId, SeatId, ShardCommand, ShardResult, ShardResultType } from '../domain/commands.js';

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

/**
 * Decodes a reply message; throws on anything that is not a batch of replies. Of its entries, only
 * `[index, reply]` pairs with a non-negative integer index and a reply of the protocol's shape are
 * kept (`isShardReply`); `dropped` counts the others. A client reads replies in its NATS reader's
 * callback, and indexes its waiters with them: an entry such as `null`, `1` or `["__proto__", {}]`
 * made it throw there (and assign to `Array.prototype` first). The waiter of a dropped entry times
 * out and retries, as for a lost reply.
 */
export function decodeReplies(data: Uint8Array): ShardReplyBatch & { readonly dropped: number } {
  const value = JSON.parse(decoder.decode(data)) as { replies?: unknown } | null;
  if (value === null || typeof value !== 'object' || !Array.isArray(value.replies)) throw new Error('not a shard reply batch');
  const replies: [number, ShardReply][] = [];
  for (const entry of value.replies as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2) continue;
    const [index, reply] = entry as [unknown, unknown];
    if (typeof index === 'number' && Number.isSafeInteger(index) && index >= 0 && isShardReply(reply)) replies.push([index, reply]);
  }
  return { replies, dropped: value.replies.length - replies.length };
}

type Check = (value: unknown) => boolean;
/** An object's fields and their checks (precomputed: replies are checked on the hot path). */
type Shape = readonly (readonly [string, Check])[];

const shape = (fields: Record<string, Check>): Shape => Object.entries(fields);
const isString: Check = (value) => typeof value === 'string';
const isNumber: Check = (value) => typeof value === 'number' && Number.isFinite(value);
const isBoolean: Check = (value) => typeof value === 'boolean';
const isTrue: Check = (value) => value === true;
const isStrings: Check = (value) => Array.isArray(value) && value.every(isString);
const optional =
  (check: Check): Check =>
  (value) =>
    value === undefined || check(value);

/** Whether `value` is a plain object whose own fields pass their checks (fields not named are ignored). */
function hasShape(value: unknown, fields: Shape): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const record = value as Record<string, unknown>;
  for (const [name, check] of fields) if (!check(Object.hasOwn(record, name) ? record[name] : undefined)) return false;
  return true;
}

const is =
  (fields: Shape): Check =>
  (value) =>
    hasShape(value, fields);

const HOLD_VIEW = shape({
  holdId: isString,
  customer: isString,
  seats: isStrings,
  pool: optional(isString),
  quantity: isNumber,
  createdAt: isNumber,
  expiresAt: isNumber,
});
const RESERVATION_VIEW = shape({
  reservationId: isString,
  holdId: isString,
  customer: isString,
  seats: isStrings,
  pool: optional(isString),
  quantity: isNumber,
  confirmedAt: isNumber,
});

/** Each result type of `ShardResult`: the `ok` it comes with, and its other fields. */
const RESULTS: { readonly [T in ShardResultType]: { readonly ok: boolean; readonly fields: Shape } } = {
  held: { ok: true, fields: shape({ hold: is(HOLD_VIEW) }) },
  confirmed: { ok: true, fields: shape({ reservation: is(RESERVATION_VIEW) }) },
  released: { ok: true, fields: shape({ holdId: isString }) },
  unavailable: {
    ok: false,
    fields: shape({
      seats: isStrings,
      sold: optional(isStrings),
      soldTo: optional(isStrings),
      pending: optional(isStrings),
      message: isString,
    }),
  },
  'limit-exceeded': { ok: false, fields: shape({ limit: isNumber, current: isNumber, requested: isNumber, message: isString }) },
  'hold-not-found': { ok: false, fields: shape({ holdId: isString, message: isString }) },
  'hold-expired': { ok: false, fields: shape({ holdId: isString, message: isString }) },
  'hold-confirmed': { ok: false, fields: shape({ holdId: isString, reservationId: isString, message: isString }) },
  invalid: { ok: false, fields: shape({ field: isString, message: isString }) },
  'idempotency-mismatch': { ok: false, fields: shape({ message: isString }) },
  'not-serving': { ok: false, fields: shape({ state: isString, retryable: isTrue, message: isString }) },
};

const RESULT_BASE = shape({ type: isString, ok: isBoolean });

function isShardResult(value: unknown): boolean {
  if (!hasShape(value, RESULT_BASE) || !Object.hasOwn(RESULTS, value.type as string)) return false;
  const { ok, fields } = RESULTS[value.type as ShardResultType];
  return value.ok === ok && hasShape(value, fields);
}

const RESULT_REPLY = shape({ result: isShardResult, replayed: optional(isTrue) });
const ERROR_REPLY = shape({ error: is(shape({ code: isString, message: isString, retryable: isBoolean })) });

/**
 * Whether `value` is a `ShardReply`: a result of a known type with that type's fields, or an
 * error — one of the two. A result type this client does not know (from an owner of a later
 * version) is not one: its caller is answered at its deadline, as when no owner answers.
 */
export function isShardReply(value: unknown): value is ShardReply {
  if (typeof value !== 'object' || value === null) return false;
  const hasResult = Object.hasOwn(value, 'result');
  if (hasResult === Object.hasOwn(value, 'error')) return false;
  return hasShape(value, hasResult ? RESULT_REPLY : ERROR_REPLY);
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
