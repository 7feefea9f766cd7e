/**
 * The stress run: many simulated customers, each with their own token, buying through the REST
 * API as real clients would — Idempotency-Key on every POST, retries of 429/503/lost connections
 * with the same key (honouring Retry-After), think time between hold and confirm.
 *
 * Closed loop: `concurrency` buyers at a time, the next starting when one finishes (what a fixed
 * pool of clients does; latency is measured per attempt from the moment it is sent). Open loop:
 * buyers arrive at `rate` per second whatever the system's speed (what a crowd does); at most
 * `concurrency` are in flight, and arrivals beyond that are counted as shed, never queued
 * silently. Either way the run is bounded by the number of buyers and by `durationS`, and stops
 * by itself.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { DependencyError, SentinelError } from '../../errors.js';
import { UnknownEventError, UsageError } from '../options.js';
import { HttpClient, HttpTransportError, type HttpResponse } from './http-client.js';
import { ResponseLogWriter, type ResponseRecord, type StressOp } from './response-log.js';
import { ScenarioPlanner, type AfterHold, type BuyerPlan, type InventoryView, type ScenarioSettings } from './scenarios.js';
import { StressStats, countsOf, type BuyerOutcome, type Slot } from './stats.js';
import { CustomerTokens, type TokenSettings } from './tokens.js';
import type { LatencySummary } from './histogram.js';

/** Everything a run needs. */
export interface StressOptions {
  readonly eventId: string;
  /**
   * Base URLs of ingress replicas. Each buyer goes to the target with the fewest buyers in flight
   * (ties: `targets[i % n]`), so none has more in flight than its connections. Checked by `checkTargets`.
   */
  readonly targets: readonly string[];
  readonly scenario: ScenarioSettings;
  readonly buyers: number;
  readonly mode: 'closed' | 'open';
  /** Closed loop: buyers in flight. Open loop: most buyers in flight before arrivals are shed. */
  readonly concurrency: number;
  /** Open loop: buyer arrivals per second. */
  readonly rate: number;
  /** No buyer starts after this many seconds. */
  readonly durationS: number;
  /** After `durationS`, how long buyers in flight may take to finish before they are aborted. */
  readonly graceS: number;
  /** Retries of one request on 429, 503 and transport errors (same Idempotency-Key). */
  readonly retries: number;
  /** Longest wait before one retry, ms (Retry-After is honoured up to this). */
  readonly maxRetryDelayMs: number;
  readonly timeoutMs: number;
  readonly seed: number;
  /** Unique per run: customer ids and Idempotency-Keys are derived from it. */
  readonly runId: string;
  readonly tokens: TokenSettings;
  /** JSONL response log for `sentinel verify`. */
  readonly logPath?: string;
  /** Known inventory; when absent it is read from the API (availability and seat maps). */
  readonly inventory?: InventoryView;
  /** Called once when the clock starts (after discovery and connection set-up), with the epoch ms. */
  readonly onStart?: (startedAt: number) => void;
  /** Called about once a second while the run is going. */
  readonly onProgress?: (progress: StressProgress) => void;
  /**
   * Called once when the load is over (the last buyer's last answer came, or the run was cut),
   * before the connections and the log are closed: with `onStart`, the window a benchmark measures.
   */
  readonly onFinish?: () => void;
  /** Stops the run early (its buyers are aborted); the report covers what happened until then. */
  readonly signal?: AbortSignal;
}

/** A live view of a run, for the progress line. */
export interface StressProgress {
  readonly elapsedS: number;
  readonly requests: number;
  /** Requests answered in the last second. */
  readonly recentRps: number;
  readonly p99Ms: number;
  readonly statuses: Record<string, number>;
  readonly buyersStarted: number;
  readonly buyersDone: number;
  readonly buyersPlanned: number;
  readonly inFlight: number;
}

/** The result of a run, as `--json` prints it. */
export interface StressReport {
  readonly scenario: string;
  readonly mode: 'closed' | 'open';
  readonly event: string;
  readonly targets: readonly string[];
  readonly run_id: string;
  readonly seed: number;
  readonly concurrency: number;
  readonly rate: number | null;
  readonly requests: number;
  readonly retries: number;
  /** Attempts the run cut itself (stopped early, or in flight when the grace period ran out): in no other count. */
  readonly cut: number;
  readonly status: Record<string, number>;
  readonly errors: Record<string, number>;
  readonly throughput_rps: number;
  /** Every attempt from send to its end: the last byte of the answer, or the error (a timeout counts in full). */
  readonly latency_ms: LatencySummary;
  readonly latency_by_op_ms: Record<string, LatencySummary>;
  /** Latency of 409 answers: losers must be answered at once. */
  readonly loser_latency_ms: LatencySummary;
  /** Open loop: how late each arrival was sent against its planned time (latency counts from the send). */
  readonly schedule_lag_ms?: LatencySummary;
  readonly duration_s: number;
  readonly buyers: { readonly planned: number; readonly started: number; readonly shed: number; readonly outcomes: Record<string, number> };
  readonly seats_sold: number;
  readonly places_sold: number;
  readonly aborted: boolean;
  readonly log: string | null;
  /** Wall-clock start (epoch ms) and 250 ms slots: chaos measures fault effects with them. */
  readonly started_at: number;
  readonly timeline: readonly Slot[];
}

/** What one request came back with, after retries. */
interface Answer {
  readonly status: number;
  readonly error: string | undefined;
  readonly body: Record<string, unknown> | undefined;
}

const PROBLEM_PREFIX = 'https://sentinel.dev/problems/';
/** Buyers whose plans and tokens are prepared before the clock starts (the rest are made as they arrive). */
const PREPARED_BUYERS = 200_000;

/**
 * The target a buyer starts on: the one with the fewest buyers in flight, the first from `start`
 * among equals. With at most C buyers in flight over n targets, none then has more than ceil(C/n).
 */
export function leastLoaded(loads: readonly number[], start: number): number {
  let best = start % loads.length;
  for (let k = 1; k < loads.length; k++) {
    const i = (start + k) % loads.length;
    if (loads[i]! < loads[best]!) best = i;
  }
  return best;
}

/** The problem slug of an error body (`seats-unavailable`), or `http-<status>`. */
function problemSlug(status: number, body: Record<string, unknown> | undefined): string {
  const type = body?.['type'];
  if (typeof type === 'string') return type.startsWith(PROBLEM_PREFIX) ? type.slice(PROBLEM_PREFIX.length) : type;
  return `http-${status}`;
}

function parseBody(response: HttpResponse): Record<string, unknown> | undefined {
  if (response.body === '' || (response.body[0] !== '{' && response.body[0] !== '[')) return undefined;
  try {
    return JSON.parse(response.body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The engine's decision time of a 201 body: a reservation's confirmedAt, else a hold's createdAt. */
function decidedAt(body: Record<string, unknown>): { decidedAt?: number } {
  const at = Date.parse(String(body['confirmedAt'] ?? body['createdAt'] ?? ''));
  return Number.isNaN(at) ? {} : { decidedAt: at };
}

/**
 * Why discovery's GET was not answered 200, as an error the CLI prints in one line: an unknown
 * event or a token the ingress refuses is bad usage (exit 2) — a typo or a secret that is not the
 * ingress's, which no retry mends; a 5xx is the system's (retry later). Pure.
 */
export function discoveryError(target: string, path: string, status: number, body: string, eventId: string): SentinelError {
  const problem = parseBody({ status, body, retryAfterS: undefined });
  const slug = problemSlug(status, problem);
  const detail = typeof problem?.['detail'] === 'string' ? `: ${problem['detail']}` : '';
  if (status === 404 && slug === 'event-not-found') return new UnknownEventError(eventId, `at ${target} (GET ${path} answered 404)`);
  if (status === 401 || status === 403) {
    return new UsageError(
      `${target} refused the customers' tokens (GET ${path} answered ${status}${detail}): SENTINEL_JWT_SECRET, SENTINEL_JWT_ISSUER ` +
        `and SENTINEL_JWT_AUDIENCE must be the ingress's (stress signs HS256 tokens; an ingress verifying with SENTINEL_JWKS_URL cannot be loaded)`,
      'token_refused',
    );
  }
  const what = `GET ${target}${path} answered ${status} (${slug}${detail})`;
  if (status >= 500) return new DependencyError('ingress', `${what}; is the system up (engines serving the event's shards)?`);
  return new SentinelError('stress_discovery', `${what}: cannot read the inventory of ${eventId}`);
}

/** Reads an event's sections (with their rows) and pools through the API (at `target`, for messages). */
export async function discoverInventory(client: HttpClient, eventId: string, token: string, target: string): Promise<InventoryView> {
  const headers = `authorization: Bearer ${token}\r\naccept: application/json\r\n`;
  const base = `/v1/events/${encodeURIComponent(eventId)}`;
  const get = async (path: string) => {
    const response = await client.request('GET', path, headers);
    if (response.status !== 200) throw discoveryError(target, path, response.status, response.body, eventId);
    return response.body;
  };
  const counts = JSON.parse(await get(`${base}/availability`)) as {
    sections: { section: string }[];
    pools: { pool: string; total: number }[];
  };
  const sections = [];
  for (const { section } of counts.sections) {
    const view = JSON.parse(await get(`${base}/seats?section=${encodeURIComponent(section)}`)) as {
      rows: { row: string; seats: unknown[] }[];
    };
    sections.push({ id: section, rows: view.rows.map((r) => ({ id: r.row, seats: r.seats.length })) });
  }
  return { sections, pools: counts.pools.map((p) => ({ id: p.pool, capacity: p.total })) };
}

/** One stress run. `run()` resolves with the report; the run never outlives its bounds. */
export class StressRun {
  readonly stats = new StressStats();
  private readonly clients: HttpClient[];
  /** Buyers in flight on each target. */
  private readonly loads: number[];
  /** Connections per target: one for each buyer that can be in flight there (see `leastLoaded`). */
  private readonly perTarget: number;
  private readonly tokens: CustomerTokens;
  private readonly log: ResponseLogWriter | undefined;
  private readonly stop = new AbortController();
  private planner: ScenarioPlanner | undefined;
  private plans: BuyerPlan[] = [];
  private inFlight = 0;
  private aborted = false;
  private readonly eventPath: string;

  constructor(private readonly options: StressOptions) {
    if (!Number.isInteger(options.buyers) || options.buyers < 1) throw new Error('buyers must be a positive integer');
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new Error('concurrency must be a positive integer');
    if (options.mode === 'open' && !(options.rate > 0)) throw new Error('open loop needs a rate > 0');
    // No request ever waits in the client for a connection (time the server would be blamed for,
    // outside --timeout): every buyer in flight on a target has one, opened before the clock starts.
    this.perTarget = Math.ceil(Math.min(options.concurrency, options.buyers) / options.targets.length);
    this.clients = options.targets.map((t) => new HttpClient(t, { maxConnections: this.perTarget, timeoutMs: options.timeoutMs }));
    this.loads = options.targets.map(() => 0);
    this.tokens = new CustomerTokens(options.tokens);
    this.log = options.logPath ? new ResponseLogWriter(options.logPath) : undefined;
    this.eventPath = `/v1/events/${encodeURIComponent(options.eventId)}`;
    // Every buyer asleep (think time, retry backoff) listens for the stop.
    setMaxListeners(0, this.stop.signal);
    // A signal that fired already (a Ctrl-C during the caller's set-up) stops the run before it starts.
    if (options.signal?.aborted) this.abort();
    else options.signal?.addEventListener('abort', () => this.abort(), { once: true });
  }

  /** Stops at once: no new buyers, no retries, requests in flight are cut. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.stop.abort();
    for (const client of this.clients) client.close();
  }

  async run(): Promise<StressReport> {
    const o = this.options;
    let ticker: NodeJS.Timeout | undefined;
    // Connections and the log are closed however the run ends: a discovery that failed (an unknown
    // event, a refused token) too, so its error is the process's last word and nothing keeps it up.
    try {
      // Stopped before it began, or while it was being set up: no load, and the clock never starts.
      if (!this.aborted) await this.prepare();
      if (!this.aborted) {
        this.stats.restart();
        o.onStart?.(this.stats.startedAt);
        ticker = setInterval(() => this.progress(), 1000);
        if (o.mode === 'closed') await this.closedLoop();
        else await this.openLoop();
        o.onFinish?.();
      }
    } finally {
      clearInterval(ticker);
      for (const client of this.clients) client.close();
      await this.log?.close();
    }
    return this.report();
  }

  /** Set-up before the clock starts: the inventory, the buyers' plans and tokens, the connections. */
  private async prepare(): Promise<void> {
    const o = this.options;
    let inventory = o.inventory;
    try {
      inventory ??= await discoverInventory(this.clients[0]!, o.eventId, this.tokens.get(`${o.runId}-discovery`), o.targets[0]!);
    } catch (error) {
      // Cut by a stop: not a failure of discovery.
      if (this.aborted && error instanceof HttpTransportError) return;
      throw error;
    }
    this.planner = new ScenarioPlanner(inventory, o.scenario, o.seed, `${o.runId}`);
    // Plans and tokens are made before the clock starts, so the run measures the system, not our set-up.
    const prepared = Math.min(o.buyers, PREPARED_BUYERS);
    this.plans = new Array<BuyerPlan>(prepared);
    for (let i = 0; i < prepared; i++) {
      const plan = this.planner.plan(i);
      this.plans[i] = plan;
      this.tokens.get(plan.customer);
    }
    await Promise.all(this.clients.map((client) => client.preconnect(this.perTarget)));
  }

  private async closedLoop(): Promise<void> {
    const o = this.options;
    const deadline = Date.now() + o.durationS * 1000;
    let next = 0;
    const worker = async () => {
      while (!this.aborted && next < o.buyers && Date.now() < deadline) await this.buyer(next++);
    };
    const workers = Array.from({ length: Math.min(o.concurrency, o.buyers) }, worker);
    await this.finish(Promise.all(workers), deadline);
  }

  private async openLoop(): Promise<void> {
    const o = this.options;
    const started = Date.now();
    const deadline = started + o.durationS * 1000;
    const journeys = new Set<Promise<void>>();
    let failure: unknown;
    let arrivals = 0;
    while (!this.aborted && arrivals < o.buyers && Date.now() < deadline) {
      const due = Math.min(o.buyers, Math.floor(((Date.now() - started) / 1000) * o.rate) + 1);
      for (; arrivals < due; arrivals++) {
        // Latency is measured from the send; how late the send itself was (a generator that shares
        // the CPU with the system under test falls behind) is measured here.
        this.stats.scheduleLag.recordMs(Math.max(0, Date.now() - (started + (arrivals * 1000) / o.rate)));
        if (this.inFlight >= o.concurrency) {
          this.stats.shed += 1;
          continue;
        }
        const journey: Promise<void> = this.buyer(arrivals).then(
          () => void journeys.delete(journey),
          (error: unknown) => {
            journeys.delete(journey);
            failure ??= error;
          },
        );
        journeys.add(journey);
      }
      await sleep(Math.max(1, Math.min(20, 1000 / o.rate)));
    }
    await this.finish(Promise.all([...journeys]), Date.now());
    if (failure !== undefined) throw failure;
  }

  /** Waits for the buyers in flight, at most `graceS` after `deadline`, then aborts the rest. */
  private async finish(done: Promise<unknown>, deadline: number): Promise<void> {
    const graceMs = Math.max(0, deadline - Date.now()) + this.options.graceS * 1000;
    const timer = setTimeout(() => this.abort(), graceMs);
    try {
      await done;
    } finally {
      clearTimeout(timer);
    }
  }

  private progress(): void {
    const s = this.stats;
    const now = Date.now();
    this.options.onProgress?.({
      elapsedS: (now - s.startedAt) / 1000,
      requests: s.requests,
      recentRps: Math.round(s.recentRps(now)),
      p99Ms: s.latency.percentileUs(99) / 1000,
      statuses: countsOf(s.statuses),
      buyersStarted: s.buyersStarted,
      buyersDone: s.buyersDone,
      buyersPlanned: this.options.buyers,
      inFlight: this.inFlight,
    });
  }

  private async buyer(index: number): Promise<void> {
    const plan = this.plans[index] ?? this.planner!.plan(index);
    const target = leastLoaded(this.loads, index);
    this.loads[target]! += 1;
    this.inFlight += 1;
    this.stats.buyersStarted += 1;
    let outcome: BuyerOutcome;
    try {
      outcome = await this.journey(index, plan, this.clients[target]!);
    } catch (error) {
      if (!this.aborted) {
        // Not an answer but a failure of the run itself: the other buyers stop too, now (their
        // answers would no longer reach the log, which the failed run closes).
        this.abort();
        throw error;
      }
      outcome = 'aborted';
    } finally {
      this.loads[target]! -= 1;
      this.inFlight -= 1;
    }
    this.stats.outcome(outcome);
  }

  private async journey(index: number, plan: BuyerPlan, client: HttpClient): Promise<BuyerOutcome> {
    const auth = `authorization: Bearer ${this.tokens.get(plan.customer)}\r\n`;
    const key = (suffix: string) => `${this.options.runId}-${index}-${suffix}`;
    const ctx = { index, customer: plan.customer, auth, client };
    switch (plan.kind) {
      case 'reserve': {
        let last: Answer | undefined;
        for (const [a, seat] of plan.seats.entries()) {
          last = await this.call(
            ctx,
            'reserve',
            'POST',
            `${this.eventPath}/seats/${encodeURIComponent(seat)}/reserve`,
            key(`r${a}`),
            undefined,
            {
              seat,
            },
          );
          if (last.status === 201) return 'reserved';
          if (last.status !== 409) break;
        }
        return this.failureOutcome(last!);
      }
      case 'hold-seats': {
        let last: Answer | undefined;
        for (const [a, seat] of plan.seats.entries()) {
          last = await this.call(ctx, 'hold', 'POST', `${this.eventPath}/holds`, key(`h${a}`), JSON.stringify({ seats: [seat] }), { seat });
          if (last.status === 201) return this.afterHold(ctx, last, plan.then, key);
          if (last.status !== 409) break;
        }
        return this.failureOutcome(last!);
      }
      case 'hold-best': {
        const body = JSON.stringify({ section: plan.section, quantity: plan.quantity });
        const answer = await this.call(ctx, 'hold-best', 'POST', `${this.eventPath}/holds`, key('h'), body, {});
        return answer.status === 201 ? this.afterHold(ctx, answer, plan.then, key) : this.failureOutcome(answer);
      }
      case 'hold-pool': {
        const body = JSON.stringify({ pool: plan.pool, quantity: plan.quantity });
        const answer = await this.call(ctx, 'hold-pool', 'POST', `${this.eventPath}/holds`, key('h'), body, {});
        return answer.status === 201 ? this.afterHold(ctx, answer, plan.then, key) : this.failureOutcome(answer);
      }
    }
  }

  private async afterHold(ctx: CallContext, held: Answer, then: AfterHold, key: (suffix: string) => string): Promise<BuyerOutcome> {
    if (then.action === 'expire') return 'abandoned';
    const holdId = String(held.body?.['holdId'] ?? '');
    if (holdId === '') return 'failed';
    if (then.thinkMs > 0) {
      try {
        await sleep(then.thinkMs, undefined, { signal: this.stop.signal });
      } catch {
        return 'aborted';
      }
    }
    const path = `${this.eventPath}/holds/${encodeURIComponent(holdId)}`;
    if (then.action === 'confirm') {
      const answer = await this.call(ctx, 'confirm', 'POST', `${path}/confirm`, key('c'), undefined, { hold: holdId });
      if (answer.status === 201) return 'reserved';
      return answer.status === 409 && answer.error === 'hold-expired' ? 'expired' : this.failureOutcome(answer);
    }
    const answer = await this.call(ctx, 'release', 'DELETE', path, undefined, undefined, { hold: holdId });
    return answer.status === 204 ? 'released' : this.failureOutcome(answer);
  }

  private failureOutcome(answer: Answer): BuyerOutcome {
    if (this.aborted && answer.status === 0) return 'aborted';
    if (answer.status === 409) return 'lost';
    if (answer.status === 422 && answer.error === 'limit-exceeded') return 'limited';
    if (answer.status === 429) return 'throttled';
    if (answer.status === 0 || answer.status >= 500) return 'failed';
    return 'rejected';
  }

  /** Sends one request, retrying what is safe to retry, and logs every attempt. */
  private async call(
    ctx: CallContext,
    op: StressOp,
    method: string,
    path: string,
    idempotencyKey: string | undefined,
    body: string | undefined,
    asked: { seat?: string; hold?: string },
  ): Promise<Answer> {
    let headers = ctx.auth;
    if (idempotencyKey !== undefined) headers += `idempotency-key: ${idempotencyKey}\r\n`;
    if (body !== undefined) headers += 'content-type: application/json\r\n';
    for (let attempt = 1; ; attempt++) {
      const sent = performance.now();
      let answer: Answer;
      let retryAfterS: number | undefined;
      try {
        const response = await ctx.client.request(method, path, headers, body);
        const parsed = parseBody(response);
        const ok = response.status >= 200 && response.status < 300;
        answer = { status: response.status, error: ok ? undefined : problemSlug(response.status, parsed), body: parsed };
        retryAfterS = response.retryAfterS;
      } catch (error) {
        if (!(error instanceof HttpTransportError)) throw error;
        answer = { status: 0, error: error.transportCode, body: undefined };
      }
      const ms = performance.now() - sent;
      const at = Date.now();
      this.stats.attempt(op, answer.status, ms, at, answer.error, attempt > 1);
      this.record(ctx, op, attempt, idempotencyKey, answer, ms, at, asked);
      const retryable =
        answer.status === 0 ||
        answer.status === 429 ||
        answer.status === 503 ||
        (answer.status === 409 && answer.error === 'idempotency-key-in-use');
      if (!retryable || attempt > this.options.retries || this.aborted) return answer;
      // Jittered, so that the refused do not come back together; never before a Retry-After (up to
      // --max-retry-delay): the jitter only adds to it.
      const delay = Math.min(
        this.options.maxRetryDelayMs,
        retryAfterS !== undefined
          ? retryAfterS * 1000 * (1 + Math.random() * 0.5)
          : 100 * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5),
      );
      try {
        await sleep(delay, undefined, { signal: this.stop.signal });
      } catch {
        return answer;
      }
    }
  }

  private record(
    ctx: CallContext,
    op: StressOp,
    attempt: number,
    key: string | undefined,
    answer: Answer,
    ms: number,
    at: number,
    asked: { seat?: string; hold?: string },
  ): void {
    const b = answer.body;
    const granted = answer.status === 201 && b !== undefined;
    // Sales are counted with or without a log (`--log none`).
    if (granted && (op === 'confirm' || op === 'reserve')) {
      if (typeof b['pool'] === 'string') this.stats.placesSold += Number(b['quantity'] ?? 0);
      else if (Array.isArray(b['seats'])) this.stats.seatsSold += b['seats'].length;
    }
    if (this.log === undefined) return;
    const record: ResponseRecord = {
      at,
      run: this.options.runId,
      event: this.options.eventId,
      buyer: ctx.index,
      customer: ctx.customer,
      op,
      attempt,
      ...(key === undefined ? {} : { key }),
      status: answer.status,
      ms: Math.round(ms * 1000) / 1000,
      ...(answer.error === undefined ? {} : { error: answer.error }),
      ...(asked.seat === undefined ? {} : { seat: asked.seat }),
      ...(asked.hold !== undefined ? { hold: asked.hold } : granted && typeof b['holdId'] === 'string' ? { hold: b['holdId'] } : {}),
      ...(granted && typeof b['reservationId'] === 'string' ? { reservation: b['reservationId'] } : {}),
      ...(granted && Array.isArray(b['seats']) ? { seats: b['seats'] as string[] } : {}),
      ...(granted && typeof b['pool'] === 'string' ? { pool: b['pool'], quantity: Number(b['quantity']) } : {}),
      ...(granted ? decidedAt(b) : {}),
    };
    this.log.write(record);
  }

  private report(): StressReport {
    const o = this.options;
    const s = this.stats;
    const duration = s.durationS;
    return {
      scenario: o.scenario.scenario,
      mode: o.mode,
      event: o.eventId,
      targets: o.targets,
      run_id: o.runId,
      seed: o.seed,
      concurrency: o.concurrency,
      rate: o.mode === 'open' ? o.rate : null,
      requests: s.requests,
      retries: s.retries,
      cut: s.cut,
      status: countsOf(s.statuses),
      errors: countsOf(s.errors),
      throughput_rps: duration > 0 ? Math.round((s.requests / duration) * 10) / 10 : 0,
      latency_ms: s.latency.summary(),
      latency_by_op_ms: s.latencyByOp(),
      loser_latency_ms: s.losers.summary(),
      ...(o.mode === 'open' ? { schedule_lag_ms: s.scheduleLag.summary() } : {}),
      duration_s: Math.round(duration * 1000) / 1000,
      buyers: { planned: o.buyers, started: s.buyersStarted, shed: s.shed, outcomes: countsOf(s.outcomes) },
      seats_sold: s.seatsSold,
      places_sold: s.placesSold,
      aborted: this.aborted,
      log: this.log?.path ?? null,
      started_at: s.startedAt,
      timeline: s.timeline,
    };
  }
}

interface CallContext {
  readonly index: number;
  readonly customer: string;
  readonly auth: string;
  readonly client: HttpClient;
}
