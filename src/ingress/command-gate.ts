/**
 * The gate every command request passes before a shard hears of it: Idempotency-Key handling and
 * admission control, both decided by one Redis script in one round trip (see redis-scripts.ts).
 * The requests of one event that arrive in one turn of the event loop share that round trip, and
 * so do the responses they store.
 */
import * as crypto from 'node:crypto';
import type { Redis } from 'ioredis';
import { DependencyError, SentinelError } from '../errors.js';
import { emissionIntervalUs, type AdmissionRate } from './admission.js';
import { BEGIN_SCRIPT, FINISH_SCRIPT, redisKeys } from './redis-scripts.js';
import { TickBatcher } from '../tick-batcher.js';
import { evictOldest } from '../evict.js';

/** A response as stored for replay. */
export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/** What `begin` decided. */
export type GateDecision =
  | {
      readonly kind: 'claimed';
      readonly claim: GateClaim;
      /**
       * The key's outcome was unknown once (an earlier request under it got no answer, or its
       * ingress died): a shard may have carried that request out. False for a key never used, or
       * used only by requests that were refused.
       */
      readonly earlierUnknown: boolean;
    }
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'mismatch' }
  | { readonly kind: 'in-flight'; readonly retryAfterMs: number }
  | { readonly kind: 'limited'; readonly retryAfterMs: number };

/**
 * What `peek` found: the key's state, claiming or writing nothing ('free': never used, or refused
 * before — then the same request is decided afresh;
 * 'unknown': sent to a shard by a request that got no answer — it may have been carried out).
 */
export type PeekDecision =
  Exclude<GateDecision, { kind: 'claimed' | 'limited' }> | { readonly kind: 'free' } | { readonly kind: 'unknown' };

/** A claimed key: must be finished (stored or released) by whoever claimed it. */
export interface GateClaim {
  readonly eventId: string;
  readonly recordKey: string;
  readonly token: string;
}

/** What one request asks of the gate. */
export interface GateRequest {
  readonly eventId: string;
  readonly customer: string;
  readonly idempotencyKey: string;
  /** Fingerprint of the request (method, path, canonical body): a replay must match it. */
  readonly fingerprint: string;
  /** Admission rate of the event, or undefined to skip admission (confirm). */
  readonly admission: AdmissionRate | undefined;
  /** How long a claim blocks the key if its owner dies before finishing, ms. */
  readonly inFlightTtlMs: number;
  /** Fixed clock for tests (microseconds); the Redis server's clock otherwise. */
  readonly nowUs?: number;
}

type BeginReply = [string, (string | number)?];

interface ScriptedRedis {
  sentinelIngressBegin(numberOfKeys: number, ...keysAndArgs: string[]): Promise<BeginReply[]>;
  sentinelIngressFinish(numberOfKeys: number, ...keysAndArgs: string[]): Promise<number[]>;
}

/**
 * How long the ingress waits for Redis to answer a command before answering the request 503: a
 * Redis that stopped answering (paused, or behind a link that drops packets) must not hold the
 * request, and its client, for as long as TCP takes to notice. As long as a shard gets by default
 * (`SENTINEL_SHARD_TIMEOUT_MS`): a Redis that answers at all answers in milliseconds, but on a
 * saturated machine the kernel's own network processing can add more than a second
 * (docs/benchmarks.md), and that is no reason to fail a request.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 2000;

/** Most give-backs owed at once while Redis cannot be reached (each request of a lost batch owes one). */
const MAX_OWED = 10_000;
/** How soon owed give-backs are tried again if Redis does not report ready before (ms). */
const OWED_RETRY_MS = 1000;

/** Most requests one script run decides: a run blocks Redis, so keep each short. */
const MAX_BATCH = 128;

/** One request's part of a batched script call: its record key and its arguments. */
interface Part {
  readonly key: string;
  readonly args: readonly string[];
}

/** JSON with object keys sorted, so `{a,b}` and `{b,a}` fingerprint alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as Record<string, unknown>)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** SHA-256 in base64url: the one-shot `crypto.hash` where Node has it (≥ 20.12), a Hash object otherwise. */
const oneShotHash = (crypto as Partial<typeof crypto>).hash;
const sha256: (data: string) => string = oneShotHash
  ? (data) => oneShotHash('sha256', data, 'base64url')
  : (data) => crypto.createHash('sha256').update(data).digest('base64url');

/**
 * Fingerprint of a command request: its method, canonical path (`canonicalPath`) and body
 * (canonical JSON). Equivalent URLs of one operation fingerprint alike.
 */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return sha256(`${method} ${path}\n${canonicalJson(body ?? {})}`);
}

const PATH_PARAMETER = /\{([A-Za-z0-9_]+)\}/g;
/** Path templates split at their parameters, once each (the document has a handful of paths). */
const templateParts = new Map<string, string[]>();

/**
 * The path a request is fingerprinted by: its operation's path template (`/v1/events/{event}/holds`)
 * with the decoded path parameters put in. A trailing slash, %-encoded characters or an upper-case
 * path (the router accepts all three) name the same operation and parameters, so the same request.
 * The parameters were validated against the document's patterns, which allow no `/`, so the result
 * is unambiguous; and for a URL sent as the API writes it (the `Location` of a hold) it is that
 * URL, so records stored under the raw path before this form was used still match.
 */
export function canonicalPath(template: string, params: Readonly<Record<string, string | undefined>>): string {
  let parts = templateParts.get(template);
  if (parts === undefined) {
    // Literal, parameter name, literal, …, literal.
    parts = template.split(PATH_PARAMETER);
    templateParts.set(template, parts);
  }
  let path = parts[0]!;
  for (let i = 1; i < parts.length; i += 2) path += (params[parts[i]!] ?? '') + parts[i + 1]!;
  return path;
}

/**
 * The digest of (customer, Idempotency-Key). It names the Redis record and is the shard command's
 * key, so a retry that reaches the shard again is deduplicated there too. Length-prefixed: no
 * choice of strings can collide.
 */
export function keyDigest(customer: string, idempotencyKey: string): string {
  return sha256(`${customer.length}:${customer}${idempotencyKey}`);
}

/**
 * The key of the strict pass of a best-available hold over several shards (every shard is first
 * asked to hold without leaving an orphan seat, under this key, then again under the request's).
 */
export function strictPassKey(key: string): string {
  return `${key}.strict`;
}

/** The Idempotency-Key header, parsed: 1–255 visible ASCII characters; a structured-field string (`"…"`) is unquoted. */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  let key = header.trim();
  if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1);
  return /^[\x21-\x7e]{1,255}$/.test(key) ? key : undefined;
}

/**
 * Error replies of a Redis server that cannot take writes (or any command) right now: a replica
 * after a failover (READONLY), a full memory (OOM), a long script (BUSY), a restart (LOADING), a
 * lost master or cluster slot (MASTERDOWN, CLUSTERDOWN, TRYAGAIN), too few replicas (NOREPLICAS),
 * a failed snapshot (MISCONF). Redis 7 keeps the code of an error raised inside a script at the
 * start of the message; older servers wrap it (`ERR Error running script … -READONLY …`).
 */
const REDIS_UNAVAILABLE =
  /^(?:ERR Error running script.*-)?(READONLY|OOM|BUSY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF)\b/s;

/** Translates a Redis failure: the server being unavailable is a DependencyError (503), anything else the script's fault. */
export function translateRedisError(error: unknown, what: string): SentinelError {
  if (error instanceof SentinelError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // Any other error reply is Redis refusing the script itself (ERR in the script, NOSCRIPT after
  // the client's retry with EVAL, WRONGTYPE): a bug, not an outage.
  if (error instanceof Error && error.name === 'ReplyError' && !REDIS_UNAVAILABLE.test(message))
    return new SentinelError('redis_script_failed', `${what}: ${message}`, { cause: error });
  return new DependencyError('redis', `${what}: ${message}`, error);
}

/** Idempotency and admission, enforced across all ingress replicas through Redis. */
export class CommandGate {
  private readonly redis: Redis & ScriptedRedis;
  /** Claim tokens: a random per-process prefix and a counter are unique enough, and cost nothing per request. */
  private readonly tokenPrefix = crypto.randomBytes(9).toString('base64url');
  private tokens = 0;
  /** `begin` calls, batched per event: KEYS = the event's admission key, then each request's record. */
  private readonly begins = new TickBatcher<Part, BeginReply>(MAX_BATCH, (eventId, parts) =>
    this.redis.sentinelIngressBegin(
      1 + parts.length,
      redisKeys.admission(eventId),
      ...parts.map((p) => p.key),
      ...parts.flatMap((p) => p.args),
    ),
  );
  /** `store`/`release` calls, batched per event (their records share its hash tag). */
  private readonly finishes = new TickBatcher<Part, number>(MAX_BATCH, (_eventId, parts) =>
    this.redis.sentinelIngressFinish(parts.length, ...parts.map((p) => p.key), ...parts.flatMap((p) => p.args)),
  );

  /**
   * Claims of begins that failed, whose give-back could not be sent: given back once Redis is ready
   * again (see `giveBack`). Keyed by record and token; at most MAX_OWED.
   */
  private readonly owed = new Map<string, GateClaim>();
  private owing = false;

  constructor(
    redis: Redis,
    private readonly ttlS: number,
  ) {
    if (!('sentinelIngressBegin' in redis)) {
      redis.defineCommand('sentinelIngressBegin', { lua: BEGIN_SCRIPT });
      redis.defineCommand('sentinelIngressFinish', { lua: FINISH_SCRIPT });
    }
    this.redis = redis as Redis & ScriptedRedis;
  }

  /** Decides what the request may do, and claims its key when it may go ahead. */
  async begin(request: GateRequest): Promise<GateDecision> {
    const recordKey = this.recordKey(request);
    const token = `${this.tokenPrefix}.${(this.tokens++).toString(36)}`;
    const rate = request.admission;
    let decision: Awaited<ReturnType<CommandGate['run']>>;
    try {
      decision = await this.run(request, recordKey, token, rate ? '1' : '0', 'idempotency/admission check');
    } catch (error) {
      // The script may have run though its answer never came (it timed out): its claim would keep
      // the key in flight until its deadline, and every retry meanwhile would get 409 in-use. Give
      // it back — nothing was asked of a shard. A no-op unless the claim is this request's (its
      // token); a key that was unknown stays unknown (FINISH_SCRIPT).
      this.giveBack({ eventId: request.eventId, recordKey, token });
      throw error;
    }
    if (decision.kind === 'free' || decision.kind === 'unknown')
      throw new SentinelError('redis_script_failed', `idempotency/admission check answered ${decision.kind} to a claim`);
    return decision.kind === 'claimed'
      ? { kind: 'claimed', claim: { eventId: request.eventId, recordKey, token }, earlierUnknown: decision.earlierUnknown }
      : decision;
  }

  /**
   * Looks at the request's key without claiming it or applying admission. Read by the same script
   * as `begin`, in the same batch: the requests refused without a shard (a flash sale's later
   * buyers of a sold seat) cost no round trip of their own.
   */
  async peek(request: GateRequest): Promise<PeekDecision> {
    const decision = await this.run(request, this.recordKey(request), '', 'peek', 'idempotency check');
    if (decision.kind === 'claimed' || decision.kind === 'limited')
      throw new SentinelError('redis_script_failed', `idempotency check answered ${decision.kind} to a peek`);
    return decision;
  }

  /**
   * Gives back the claim of a begin that failed. A begin whose connection was lost before Redis
   * answered is kept by ioredis and sent again once it reconnects — where it claims the key — while
   * a give-back made meanwhile is refused unsent (no offline queue): the key would stay in flight
   * until its deadline, every retry answered 409 in-use. So a give-back that failed for want of
   * Redis is owed (`owe`). Sending one twice is harmless: a give-back of a claim that never
   * happened, or was finished since, is a no-op (its token).
   */
  private giveBack(claim: GateClaim): void {
    this.release(claim).catch((error: unknown) => {
      // Refused by Redis itself (the script failed): sending it again would fail again.
      if (error instanceof DependencyError) this.owe(claim);
    });
  }

  /**
   * Keeps a give-back to send when Redis is ready again — after ioredis has re-sent the commands the
   * lost connection left unanswered, which it does before it reports ready — or in OWED_RETRY_MS,
   * whichever comes first (the client may still look ready when its socket has just failed).
   */
  private owe(claim: GateClaim): void {
    this.owed.set(`${claim.recordKey}\n${claim.token}`, claim);
    evictOldest(this.owed, MAX_OWED);
    if (this.owing) return;
    this.owing = true;
    const pay = () => {
      if (!this.owing) return;
      this.owing = false;
      this.redis.off('ready', pay);
      clearTimeout(timer);
      const claims = [...this.owed.values()];
      this.owed.clear();
      for (const owed of claims) this.giveBack(owed);
    };
    this.redis.once('ready', pay);
    const timer = setTimeout(pay, OWED_RETRY_MS);
    timer.unref();
  }

  private recordKey(request: GateRequest): string {
    return redisKeys.idempotency(request.eventId, keyDigest(request.customer, request.idempotencyKey));
  }

  /** One request's part of the batched `begin` script; `mode` is its admit argument (1, 0 or peek). */
  private async run(
    request: GateRequest,
    recordKey: string,
    token: string,
    mode: '1' | '0' | 'peek',
    what: string,
  ): Promise<PeekDecision | { readonly kind: 'claimed'; readonly earlierUnknown: boolean } | Extract<GateDecision, { kind: 'limited' }>> {
    const rate = mode === '1' ? request.admission : undefined;
    const args = [
      request.fingerprint,
      token,
      String(request.inFlightTtlMs),
      mode,
      rate ? String(emissionIntervalUs(rate)) : '0',
      rate ? String(rate.burst) : '0',
      request.nowUs === undefined ? '' : String(request.nowUs),
      String(this.ttlS),
    ];
    let reply: BeginReply;
    try {
      reply = await this.begins.add(request.eventId, { key: recordKey, args });
    } catch (error) {
      throw translateRedisError(error, what);
    }
    const [kind, value] = reply;
    switch (kind) {
      case 'claimed':
        return { kind, earlierUnknown: value === 'unknown' };
      case 'free':
      case 'unknown':
        return { kind };
      case 'mismatch':
        return { kind };
      case 'replay':
        return { kind, response: JSON.parse(String(value)) as StoredResponse };
      case 'in-flight':
        return { kind, retryAfterMs: Math.max(0, Number(value)) };
      case 'limited':
        return { kind, retryAfterMs: Number(value) / 1000 };
      default:
        throw new SentinelError('redis_script_failed', `${what} answered ${JSON.stringify(reply)}`);
    }
  }

  /**
   * Stores a response for replay under the claimed key, for the configured TTL. Throws when the
   * claim was no longer ours (it outlived its in-flight TTL; the key may have been claimed since),
   * so the caller can say the response was not stored — the shard still replays it under the key.
   */
  async store(claim: GateClaim, response: StoredResponse): Promise<void> {
    let done: number;
    try {
      done = await this.finish(claim, 'store', JSON.stringify(response), String(this.ttlS));
    } catch (error) {
      throw translateRedisError(error, 'store idempotent response');
    }
    if (done !== 1)
      throw new SentinelError('idempotency_claim_lost', 'the claim of the Idempotency-Key expired before its response was stored');
  }

  /**
   * Gives the key back after a refusal: the next request with it is decided afresh — if it is the
   * same request; another one under the key is a mismatch (422) for as long as a response would
   * be stored, as the Idempotency-Key draft asks of a key reused with another payload. A key whose
   * outcome was once unknown stays unknown (see `markUnknown`): the refusal of a later request
   * says nothing of the first one's command, which may still reach a shard.
   */
  async release(claim: GateClaim): Promise<void> {
    try {
      await this.finish(claim, 'release', '', String(this.ttlS));
    } catch (error) {
      throw translateRedisError(error, 'release idempotency key');
    }
  }

  /**
   * Gives the key back marked *unknown*: its request got no answer, yet a shard may have carried it
   * out. The next request with it is decided afresh — by the shard, which replays a success it
   * remembers — and a peek answers `unknown`, so nothing is refused under it without the shard. Kept
   * as long as stored responses, from the last request under it.
   */
  async markUnknown(claim: GateClaim): Promise<void> {
    try {
      await this.finish(claim, 'unknown', '', String(this.ttlS));
    } catch (error) {
      throw translateRedisError(error, 'mark idempotency key unknown');
    }
  }

  private finish(claim: GateClaim, op: 'store' | 'unknown' | 'release', response: string, ttlS: string): Promise<number> {
    const args: string[] = [claim.token, op, response, ttlS];
    return this.finishes.add(claim.eventId, { key: claim.recordKey, args });
  }
}
