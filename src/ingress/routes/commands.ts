/**
 * The command routes: hold, confirm, release, reserve. Each validates against the event's layout,
 * passes the gate (Idempotency-Key, admission), asks the owning shard over NATS, and maps the
 * shard's decision. Losers fail fast: the shard answers them from memory, and so do we.
 */
import type { ShardCommand, ShardResult } from '../../domain/commands.js';
import { SentinelError } from '../../errors.js';
import type { CommandGate, GateDecision, GateRequest, PeekDecision, StoredResponse } from '../command-gate.js';
import { canonicalPath, keyDigest, parseIdempotencyKey, requestFingerprint, strictPassKey } from '../command-gate.js';
import type { IngressContext, ShardSender } from '../context.js';
import { saleState, saleStoppedAt, type EventCatalog, type RoutableEvent } from '../event-catalog.js';
import { QUERY_TIMEOUT_MS } from '../../adapters/postgres/pool.js';
import type { HoldLocator } from '../hold-locator.js';
import type { InventoryReads } from '../inventory-reads.js';
import type { IngressMetrics } from '../metrics.js';
import type { SeatFlights } from '../seat-flights.js';
import type { SoldSeats } from '../sold-seats.js';
import { HttpProblem, refusal, ShardRejection, type ProblemFieldError } from '../problems.js';
import { holdBody, holdPath, reservationBody, reservationPath } from '../views.js';

/** What the command routes need. */
export interface CommandRouteDeps {
  readonly catalog: EventCatalog;
  readonly gate: CommandGate;
  readonly locator: HoldLocator;
  /** What the shards committed, for requests outside the sale window (whose shards are no longer served). */
  readonly reads: Pick<InventoryReads, 'committedResult' | 'hold'>;
  readonly shards: ShardSender;
  readonly metrics: IngressMetrics;
  /** Seats known to be sold, and to whom: other customers' requests for them are refused without a shard round trip. */
  readonly soldSeats: SoldSeats;
  /** Seats a request is asking a shard about now: other customers' requests for them wait briefly for its answer. */
  readonly flights: SeatFlights;
  /** Deadline of one request's shard work, across retries and shards (ms). */
  readonly shardTimeoutMs: number;
  /** How long a shard replays a success under its key (ms): the idempotency window. */
  readonly idempotencyTtlMs: number;
  /**
   * How long after a sale closed a command decided around the close may still commit (ms; see
   * `closeSettleMs`). Until then, a request whose key's outcome is unknown and whose command is not
   * found committed is answered 503 — not yet known — rather than sale-not-open.
   */
  readonly closeSettleMs: number;
  readonly now: () => number;
}

/** A hold request body, validated against the `HoldRequest` schema. */
type HoldRequest = { seats: string[] } | { section: string; quantity: number } | { pool: string; quantity: number };

/** What the ingress knows about a request for named seats before asking their shard (see `beforeAsking`). */
interface BeforeAsking {
  /** A refusal decided already: some seats are known to be sold to other customers. */
  readonly known: ShardResult | undefined;
  /**
   * Ends this request's flight over its seats, if it is their flight: once its shard answer is
   * learned — or, given `after` (see `announced`), once that settles.
   */
  readonly land: ((after?: Promise<void>) => void) | undefined;
}

/**
 * The request's event, and — when its sale is not open but its key's outcome is unknown — the
 * refusal to give unless a shard committed a success under the key (`replayCommitted`).
 */
interface Routed {
  readonly routable: RoutableEvent;
  readonly refusalUnlessCommitted: UnknownOutsideSale | undefined;
}

/** A request outside its sale window whose key's outcome is unknown: its refusal, and what the gate was asked. */
interface UnknownOutsideSale {
  readonly notOpen: HttpProblem;
  readonly request: GateRequest;
}

/** One shard request a command route may make; each gets the request's shard key. */
interface Attempt {
  readonly shard: number;
  readonly command: (key: string) => ShardCommand;
}

/** A command's work under its claimed Idempotency-Key (the shard key, and the deadline of its shard requests). */
/** A command's work under its claimed key; `earlierUnknown` as the gate's claim says (GateDecision). */
type Work = (shardKey: string, deadline: number, earlierUnknown: boolean) => Promise<StoredResponse>;

/**
 * How long after a sale closed its shards may still commit a command (ms): engines notice the close
 * at their next round (`rebalanceIntervalMs`) and stop serving the sale's shards, a command sent
 * before the close may be decided until its deadline (`shardTimeoutMs`), and the hand-off flushes
 * the commit under way, which lands within a query's time limit or never.
 */
export function closeSettleMs(o: { readonly rebalanceIntervalMs: number; readonly shardTimeoutMs: number }): number {
  return o.rebalanceIntervalMs + o.shardTimeoutMs + QUERY_TIMEOUT_MS;
}

/** Extra time an in-flight claim outlives the shard deadline before another request may take the key over (ms). */
const IN_FLIGHT_MARGIN_MS = 5000;

function customerOf(ctx: IngressContext): string {
  const customer = ctx.state.customer;
  if (customer === undefined) throw new SentinelError('ingress_unauthenticated', 'command route reached without authentication');
  return customer;
}

/** Sends a stored (or fresh) response. */
function send(ctx: IngressContext, response: StoredResponse, replayed: boolean): void {
  ctx.status = response.status;
  for (const [name, value] of Object.entries(response.headers)) ctx.set(name, value);
  if (replayed) ctx.set('Idempotent-Replayed', 'true');
  if (response.status !== 204) ctx.body = response.body;
}

export function commandRoutes(deps: CommandRouteDeps) {
  const { catalog, gate, locator, reads, shards, metrics, soldSeats, flights } = deps;

  /**
   * The request's event, on sale now. Outside the sale window the answer is sale-not-open and no
   * shard decides anything — but a request with an Idempotency-Key may be the retry of one whose
   * answer was lost just before the close, so its key is looked at first without claiming it (as
   * for seats known sold): a stored success is replayed, a key reused with another request is 422,
   * a key in flight 409. A key whose earlier request got no answer — `unknown` — may have been
   * carried out by a shard: the route then answers what the shards committed under it
   * (`replayCommitted`), or the refusal if nothing. Undefined when the response was sent already
   * (a replay).
   */
  async function routableEvent(ctx: IngressContext, keyed: boolean): Promise<Routed | undefined> {
    const eventId = ctx.params['event'] as string;
    const routable = await catalog.get(eventId);
    if (routable === undefined) throw new HttpProblem('event-not-found', `no event ${eventId}`);
    const state = saleState(routable.event, deps.now());
    if (state === 'open') return { routable, refusalUnlessCommitted: undefined };
    const notOpen =
      state === 'not-yet-open'
        ? new HttpProblem('sale-not-open', `the sale of ${eventId} opens at ${routable.event.saleOpensAt.toISOString()}`, {
            extensions: { opensAt: routable.event.saleOpensAt.toISOString() },
          })
        : new HttpProblem('sale-not-open', `the sale of ${eventId} is closed`);
    if (!keyed) throw notOpen;
    const request = gateRequest(ctx, routable, false);
    const decision = await gate.peek(request);
    if (decision.kind === 'free') throw notOpen;
    if (decision.kind === 'unknown') {
      metrics.idempotency.inc({ outcome: 'unknown' });
      return { routable, refusalUnlessCommitted: { notOpen, request } };
    }
    answerFromKey(ctx, routable, decision);
    return undefined;
  }

  /**
   * Asks each shard of `attempts` to replay what it did under the key, deciding nothing (see
   * CommandBase.replayOnly): the first success to arrive, and the shard that answered it. A shard
   * that did not answer fails the lookup only when no other found a success.
   */
  async function replayed(
    ctx: IngressContext,
    eventId: string,
    attempts: readonly Attempt[],
    key: string,
    deadline: number,
  ): Promise<{ shard: number; result: ShardResult } | undefined> {
    const nothing = Symbol('nothing replayed');
    try {
      return await Promise.any(
        attempts.map(async ({ shard, command }) => {
          const result = await ask(ctx, eventId, shard, { ...command(key), redecideRefusal: false, replayOnly: true }, deadline);
          if (!result.ok) throw nothing;
          return { shard, result };
        }),
      );
    } catch (error) {
      const failure = error instanceof AggregateError ? error.errors.find((e) => e !== nothing) : error;
      if (failure !== undefined) throw failure;
      return undefined;
    }
  }

  /**
   * Answers a request outside its sale window whose key's outcome is unknown. The engine serves
   * the shards of a sale only while it is open, but what they committed is in Postgres: a success
   * recorded under the request's shard key — by any of the shards it could have reached — is
   * replayed, as the shard would. Otherwise, while a command decided around the close may still
   * commit (`closeSettleMs`), the answer is not known yet: 503, retry after the rest of that time;
   * after it, `notOpen`. The key stays unknown either way (nothing is claimed or stored), and a
   * later retry looks again.
   */
  async function replayCommitted(
    ctx: IngressContext,
    routable: RoutableEvent,
    { notOpen, request }: UnknownOutsideSale,
    attempts: readonly Attempt[],
    respond: (shard: number, result: ShardResult) => StoredResponse,
  ): Promise<void> {
    const key = keyDigest(request.customer, request.idempotencyKey);
    const found = await reads.committedResult(
      routable.event.id,
      attempts.map(({ shard, command }) => ({ shard, command: command(key) })),
      new Date(deps.now() - deps.idempotencyTtlMs),
    );
    if (found === undefined) {
      const now = deps.now();
      const settled = saleStoppedAt(routable.event, now) + deps.closeSettleMs;
      if (now >= settled) throw notOpen;
      throw new HttpProblem(
        'shard-unavailable',
        `the sale of ${routable.event.id} is not open, and whether an earlier request with this Idempotency-Key was carried out ` +
          `is not known yet: a commit under way when it stopped may still land until ${new Date(settled).toISOString()}`,
        { retryAfterS: Math.max(1, Math.ceil((settled - now) / 1000)) },
      );
    }
    metrics.idempotency.inc({ outcome: 'replay' });
    send(ctx, respond(found.shard, found.result), true);
  }

  async function ask(ctx: IngressContext, eventId: string, shard: number, command: ShardCommand, deadline: number): Promise<ShardResult> {
    const started = performance.now();
    let outcome = 'error';
    try {
      const result = await shards.send(eventId, shard, command, {
        deadlineMs: Math.max(1, deadline - deps.now()),
        requestId: ctx.state.requestId,
        onReplayed: () => (ctx.state.replayedByShard = true),
      });
      outcome = result.type;
      if (result.type === 'unavailable' || result.type === 'confirmed') soldSeats.learn(eventId, result);
      return result;
    } catch (error) {
      outcome = error instanceof SentinelError ? error.code : 'error';
      throw error;
    } finally {
      metrics.shardRequests.observe({ command: command.type, outcome }, (performance.now() - started) / 1000);
    }
  }

  /**
   * Runs a command under its Idempotency-Key: replays a stored success, refuses a reused or busy
   * key, applies admission when asked, and otherwise runs `work` with the shard key. Only 2xx
   * responses are stored; anything else gives the key back so a retry is decided afresh — by the
   * shard too: every command the ingress sends carries `redecideRefusal`, so the shard, which
   * remembers the first result of a key, replays only a success and decides again after a
   * refusal (a seat released since, a limit with room again).
   *
   * `before.known` is a refusal decided already (seats known to be sold to other customers): the key is
   * only looked at — a stored success of the same request is still replayed — and otherwise the
   * refusal is the answer, with no claim, no admission and no shard. A free key alone would not
   * prove the customer never won: the shard may remember a success that Redis does not (it
   * committed after our deadline and the 503 gave the key back; the record was never stored or
   * was lost), so a seat known sold to the requester is never a `known` refusal — that request
   * goes to the shard, which replays the success (see SoldSeats.refusal). The request's flight, if
   * it is one, lands when this ends, whatever happened (`work` lands it earlier, after the shard).
   */
  async function underIdempotencyKey(
    ctx: IngressContext,
    routable: RoutableEvent,
    admit: boolean,
    work: Work,
    before?: BeforeAsking,
  ): Promise<void> {
    try {
      await decideUnderKey(ctx, routable, admit, work, before?.known);
    } finally {
      before?.land?.();
    }
  }

  /** `underIdempotencyKey` without the flight. */
  async function decideUnderKey(
    ctx: IngressContext,
    routable: RoutableEvent,
    admit: boolean,
    work: Work,
    known: ShardResult | undefined,
  ): Promise<void> {
    const request = gateRequest(ctx, routable, admit);
    let decision: GateDecision | PeekDecision = known === undefined ? await gate.begin(request) : await gate.peek(request);
    if (decision.kind === 'unknown') {
      // An earlier request with this key got no answer, and a shard may have carried it out (the
      // hold since expired, the seat sold to someone else): only the shard can say. Claimed and
      // asked as if nothing were known.
      metrics.idempotency.inc({ outcome: 'unknown' });
      decision = await gate.begin(request);
    }
    if (decision.kind === 'free') {
      metrics.knownSold.inc();
      return reject(known!);
    }
    if (decision.kind !== 'claimed') return answerFromKey(ctx, routable, decision);
    const { claim } = decision;
    let response: StoredResponse;
    try {
      response = await work(keyDigest(request.customer, request.idempotencyKey), deps.now() + deps.shardTimeoutMs, decision.earlierUnknown);
    } catch (error) {
      // A refusal (by the shard, or the route): nothing was done under the key, which is given
      // back (still unknown if it was: an earlier command under it may yet reach a shard). Anything else — no answer in time, a shard that lost its lease mid-commit, NATS gone —
      // may have been carried out: the key is given back marked so, and nothing is refused under
      // it without asking the shard (see `decision.kind === 'unknown'` above). Not awaited: commands
      // on one connection run in order, so a retry through this process sees the key given back;
      // the client already has its answer either way.
      const refused = error instanceof ShardRejection || error instanceof HttpProblem;
      (refused ? gate.release(claim) : gate.markUnknown(claim)).catch((finishError: unknown) =>
        ctx.state.log.warn({ err: finishError }, 'Could not give the Idempotency-Key back'),
      );
      throw error;
    }
    try {
      await gate.store(claim, response);
    } catch (error) {
      // The command succeeded and is recorded by the shard under the same key: a retry is still
      // answered correctly (by the shard), so the client gets its 201 now.
      ctx.state.log.warn({ err: error }, 'Could not store idempotent response');
    }
    // A shard's replay (the key's first request was carried out, its answer lost) is one too.
    send(ctx, response, ctx.state.replayedByShard);
  }

  /**
   * What the gate is asked for this request. The fingerprint names the operation (method and path
   * template), its decoded path parameters and the canonical body — not the raw URL, so equivalent
   * URLs of one request share a key.
   */
  function gateRequest(ctx: IngressContext, routable: RoutableEvent, admit: boolean): GateRequest {
    const idempotencyKey = parseIdempotencyKey(ctx.get('Idempotency-Key'));
    if (idempotencyKey === undefined) throw new SentinelError('ingress_idempotency_key', 'Idempotency-Key reached the route unchecked');
    return {
      eventId: routable.event.id,
      customer: customerOf(ctx),
      idempotencyKey,
      fingerprint: requestFingerprint(ctx.method, canonicalPath(ctx.state.route, ctx.params), ctx.state.body),
      admission: admit ? routable.admission : undefined,
      inFlightTtlMs: deps.shardTimeoutMs + IN_FLIGHT_MARGIN_MS,
    };
  }

  /** Answers from the key's record without a shard: replays a stored response, or refuses a reused or busy key or an over-rate request. */
  function answerFromKey(
    ctx: IngressContext,
    routable: RoutableEvent,
    decision: Exclude<GateDecision | PeekDecision, { kind: 'claimed' | 'free' | 'unknown' }>,
  ): void {
    switch (decision.kind) {
      case 'replay':
        metrics.idempotency.inc({ outcome: 'replay' });
        send(ctx, decision.response, true);
        return;
      case 'mismatch':
        metrics.idempotency.inc({ outcome: 'mismatch' });
        throw new HttpProblem(
          'idempotency-key-reused',
          'this Idempotency-Key was already used with a different request; use a new key for a new request',
        );
      case 'in-flight':
        metrics.idempotency.inc({ outcome: 'in-flight' });
        throw new HttpProblem('idempotency-key-in-use', 'a request with this Idempotency-Key is still being processed', {
          retryAfterS: Math.min(decision.retryAfterMs, 1000) / 1000,
        });
      case 'limited':
        metrics.admissionRejections.inc({ event: routable.event.id });
        throw refusal(
          () =>
            new HttpProblem('too-many-requests', `event ${routable.event.id} is over its admission rate`, {
              retryAfterS: decision.retryAfterMs / 1000,
            }),
        );
    }
  }

  /**
   * What the ingress knows about a request for `seats` before asking their shard, after waiting
   * once, briefly, for other customers' requests asking about them now (SeatFlights): the refusal
   * known already; and when there is none and nobody else was asking, this request's own flight.
   */
  async function beforeAsking(eventId: string, seats: readonly string[], customer: string): Promise<BeforeAsking> {
    const known = soldSeats.refusal(eventId, seats, customer);
    if (known !== undefined) return { known, land: undefined };
    const landing = flights.landing(eventId, seats, customer);
    if (landing === undefined) return { known: undefined, land: flights.depart(eventId, seats, customer) };
    metrics.flightWaits.inc();
    await landing;
    return { known: soldSeats.refusal(eventId, seats, customer), land: undefined };
  }

  /**
   * What the waiters of a flight over `seats` should wait for after its shard answer, when it is a
   * refusal naming every one of them as being sold (`pending`): the commit's announcement, which
   * teaches them what the refusal could not yet (bounded by the flight wait). Undefined: land at
   * once — also when only some seats are pending, so that nobody waiting for the others is held up.
   */
  function announced(eventId: string, seats: readonly string[], result: ShardResult): Promise<void> | undefined {
    if (result.type !== 'unavailable' || result.pending === undefined) return undefined;
    const pending = result.pending;
    if (seats.length === 0 || !seats.every((seat) => pending.includes(seat))) return undefined;
    return soldSeats.whenSold(eventId, pending, flights.maxWaitMs);
  }

  /** The 201 of a confirmed reservation, or the rejection of any other decision. */
  function reserved(eventId: string, result: ShardResult): StoredResponse {
    if (result.type !== 'confirmed') return reject(result);
    const r = result.reservation;
    return { status: 201, headers: { Location: reservationPath(r.reservationId) }, body: reservationBody(eventId, r) };
  }

  /** Maps a shard decision that is not a success to a rejection (for the error middleware). */
  function reject(result: ShardResult): never {
    if (result.ok) throw new SentinelError('shard_unexpected_result', `unexpected shard result ${result.type}`);
    throw refusal(() => new ShardRejection(result));
  }

  async function createHold(ctx: IngressContext): Promise<void> {
    const routed = await routableEvent(ctx, true);
    if (routed === undefined) return;
    const { routable, refusalUnlessCommitted } = routed;
    const eventId = routable.event.id;
    const body = ctx.state.body as HoldRequest;
    const customer = customerOf(ctx);
    const { map } = routable;
    /** The shard requests to try in order, until one holds. */
    let attempts: Attempt[];
    if ('seats' in body) {
      const unknown: ProblemFieldError[] = [];
      const owners = new Set<number>();
      body.seats.forEach((seat, i) => {
        const shard = map.shardOfSeat(seat);
        if (shard === undefined) unknown.push({ pointer: `#/seats/${i}`, detail: `event ${eventId} has no seat ${seat}` });
        else owners.add(shard);
      });
      if (unknown.length > 0)
        throw new HttpProblem('unknown-inventory', `event ${eventId} has no such seat`, { extensions: { errors: unknown } });
      if (owners.size > 1) {
        throw new HttpProblem(
          'seats-span-shards',
          'these seats are decided by different inventory shards; hold them in separate requests (seats of one row always go together)',
        );
      }
      const seats = body.seats;
      attempts = [...owners].map((shard) => ({ shard, command: (key) => ({ type: 'hold', key, customer, seats, redecideRefusal: true }) }));
    } else if ('section' in body) {
      const owners = map.shardsOfSection(body.section);
      if (owners === undefined) {
        throw new HttpProblem('unknown-inventory', `event ${eventId} has no section ${body.section}`, {
          extensions: { errors: [{ pointer: '#/section', detail: `no section ${body.section}` }] },
        });
      }
      const { section, quantity } = body;
      // Best-available over several shards: best rows first, and no orphan seat when any shard can
      // avoid one — every shard strictly first, then again allowing an orphan (see HoldBestCommand).
      attempts =
        owners.length === 1
          ? [{ shard: owners[0]!, command: (key) => ({ type: 'hold-best', key, customer, section, quantity, redecideRefusal: true }) }]
          : [
              ...owners.map((shard) => ({
                shard,
                command: (key: string): ShardCommand => ({
                  type: 'hold-best',
                  key: strictPassKey(key),
                  customer,
                  section,
                  quantity,
                  strictOrphans: true,
                  redecideRefusal: true,
                }),
              })),
              ...owners.map((shard) => ({
                shard,
                command: (key: string): ShardCommand => ({ type: 'hold-best', key, customer, section, quantity, redecideRefusal: true }),
              })),
            ];
    } else {
      const owner = map.shardOfPool(body.pool);
      if (owner === undefined) {
        throw new HttpProblem('unknown-inventory', `event ${eventId} has no pool ${body.pool}`, {
          extensions: { errors: [{ pointer: '#/pool', detail: `no pool ${body.pool}` }] },
        });
      }
      const pool = body.pool;
      const quantity = body.quantity;
      attempts = [{ shard: owner, command: (key) => ({ type: 'hold-pool', key, customer, pool, quantity, redecideRefusal: true }) }];
    }
    const held = (shard: number, result: ShardResult): StoredResponse => {
      if (result.type !== 'held') return reject(result);
      const hold = result.hold;
      locator.remember(eventId, hold.holdId, { shard, customer });
      return { status: 201, headers: { Location: holdPath(eventId, hold.holdId) }, body: holdBody(eventId, hold) };
    };
    if (refusalUnlessCommitted !== undefined) return replayCommitted(ctx, routable, refusalUnlessCommitted, attempts, held);
    /** For seats named: a refusal known without asking, and this request's flight. */
    const before = 'seats' in body ? await beforeAsking(eventId, body.seats, customer) : undefined;
    await underIdempotencyKey(
      ctx,
      routable,
      true,
      async (key, deadline, earlierUnknown) => {
        if (attempts.length > 1 && earlierUnknown) {
          // This may be the retry of a request whose answer was lost after a later shard held:
          // an earlier shard, which refused then, would decide afresh now (redecideRefusal) and
          // hold a second time. So every shard first replays what it holds under the key, if
          // anything. Only then: a key never left unknown cannot have been carried out anywhere,
          // and asking every shard first would make one unreachable shard (a failover) fail every
          // new request for the section, which the shards before it could serve (ADR 0004).
          const found = await replayed(ctx, eventId, attempts, key, deadline);
          if (found !== undefined) return held(found.shard, found.result);
        }
        let last: ShardResult | undefined;
        for (const { shard, command } of attempts) {
          last = await ask(ctx, eventId, shard, command(key), deadline);
          before?.land?.(announced(eventId, 'seats' in body ? body.seats : [], last));
          if (last.type === 'held') return held(shard, last);
          if (last.type !== 'unavailable') break;
        }
        if (last === undefined) throw new SentinelError('ingress_no_shard', `no shard to ask for ${ctx.path}`);
        return reject(last);
      },
      before,
    );
  }

  /**
   * `result`, unless it is the shard not knowing a hold of `customer` that Postgres records as
   * ended: a shard remembers ended holds for the idempotency window and up to a number per shard
   * (ADR 0006), and its answer for an older one is `hold-not-found` — where the hold's own
   * customer must be told how it ended (DELETE 204, confirm 409), as while the shard remembered.
   */
  async function recordedEnd(eventId: string, customer: string, result: ShardResult): Promise<ShardResult> {
    if (result.type !== 'hold-not-found') return result;
    return (await endOfHold(eventId, customer, result.holdId)) ?? result;
  }

  /** How the hold `holdId` of `customer` ended, as Postgres recorded it; undefined if it is not theirs, or not ended. */
  async function endOfHold(eventId: string, customer: string, holdId: string): Promise<ShardResult | undefined> {
    const hold = await reads.hold(eventId, holdId);
    if (hold?.customer !== customer) return undefined;
    if (hold.state === 'confirmed' && hold.reservationId !== null) {
      const message = `hold ${holdId} was already confirmed as reservation ${hold.reservationId}`;
      return { ok: false, type: 'hold-confirmed', holdId, reservationId: hold.reservationId, message };
    }
    if (hold.state === 'expired' || hold.state === 'released')
      return { ok: false, type: 'hold-expired', holdId, message: `hold ${holdId} was ${hold.state}` };
    return undefined;
  }

  /** The shard of a hold of the caller, or 404 (unknown and foreign holds look the same). */
  async function holdShard(ctx: IngressContext, eventId: string): Promise<{ holdId: string; shard: number }> {
    const holdId = ctx.params['hold'] as string;
    const location = await locator.locate(eventId, holdId);
    if (location === undefined || location.customer !== customerOf(ctx))
      throw new HttpProblem('hold-not-found', `no hold ${holdId} for this customer`);
    return { holdId, shard: location.shard };
  }

  async function confirmHold(ctx: IngressContext): Promise<void> {
    const routed = await routableEvent(ctx, true);
    if (routed === undefined) return;
    const { routable, refusalUnlessCommitted } = routed;
    const eventId = routable.event.id;
    const customer = customerOf(ctx);
    const { holdId, shard } = await holdShard(ctx, eventId);
    const attempt: Attempt = { shard, command: (key) => ({ type: 'confirm', key, customer, holdId, redecideRefusal: true }) };
    const respond = (_: number, result: ShardResult) => reserved(eventId, result);
    if (refusalUnlessCommitted !== undefined) return replayCommitted(ctx, routable, refusalUnlessCommitted, [attempt], respond);
    // No admission: a customer who already holds seats is not sent back into the crowd.
    await underIdempotencyKey(ctx, routable, false, async (key, deadline) =>
      respond(shard, await recordedEnd(eventId, customer, await ask(ctx, eventId, shard, attempt.command(key), deadline))),
    );
  }

  async function releaseHold(ctx: IngressContext): Promise<void> {
    // DELETE carries no Idempotency-Key: outside the sale window it is sale-not-open — unless the
    // hold is gone already, which is what DELETE asks for: the retry of a DELETE whose first
    // attempt got no answer before the close, and released it, is told so.
    let routed: Routed;
    try {
      routed = (await routableEvent(ctx, false))!;
    } catch (error) {
      if (!(error instanceof HttpProblem && error.problem === 'sale-not-open')) throw error;
      const ended = await endOfHold(ctx.params['event'] as string, customerOf(ctx), ctx.params['hold'] as string);
      if (ended?.type !== 'hold-expired') throw error;
      ctx.status = 204;
      return;
    }
    const { routable } = routed;
    const eventId = routable.event.id;
    const customer = customerOf(ctx);
    const { holdId, shard } = await holdShard(ctx, eventId);
    // DELETE carries no Idempotency-Key: the shard key is derived from the hold, so a repeated
    // DELETE is the same command and the shard replays its first answer.
    const key = keyDigest(customer, `release ${holdId}`);
    const result = await recordedEnd(
      eventId,
      customer,
      await ask(ctx, eventId, shard, { type: 'release', key, customer, holdId, redecideRefusal: true }, deps.now() + deps.shardTimeoutMs),
    );
    // An expired or already released hold is gone, which is what DELETE asks for.
    if (result.type === 'released' || result.type === 'hold-expired') {
      ctx.status = 204;
      return;
    }
    reject(result);
  }

  async function reserveSeat(ctx: IngressContext): Promise<void> {
    const routed = await routableEvent(ctx, true);
    if (routed === undefined) return;
    const { routable, refusalUnlessCommitted } = routed;
    const eventId = routable.event.id;
    const seat = ctx.params['seat'] as string;
    const shard = routable.map.shardOfSeat(seat);
    if (shard === undefined) throw new HttpProblem('seat-not-found', `event ${eventId} has no seat ${seat}`);
    const customer = customerOf(ctx);
    const attempt: Attempt = { shard, command: (key) => ({ type: 'reserve', key, customer, seat, redecideRefusal: true }) };
    const respond = (_: number, result: ShardResult) => reserved(eventId, result);
    if (refusalUnlessCommitted !== undefined) return replayCommitted(ctx, routable, refusalUnlessCommitted, [attempt], respond);
    const before = await beforeAsking(eventId, [seat], customer);
    await underIdempotencyKey(
      ctx,
      routable,
      true,
      async (key, deadline) => {
        const result = await ask(ctx, eventId, shard, attempt.command(key), deadline);
        before.land?.(announced(eventId, [seat], result));
        return respond(shard, result);
      },
      before,
    );
  }

  return { createHold, confirmHold, releaseHold, reserveSeat };
}
