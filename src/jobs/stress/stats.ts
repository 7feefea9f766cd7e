/**
 * What a stress run counts: attempts by status and error, latency histograms (overall, per
 * operation, and of losers — the 409s the architecture promises are answered at once), buyer
 * outcomes, and a timeline in 250 ms slots that chaos uses to see each fault's effect.
 */
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import type { StressOp } from './response-log.js';

/** Length of one timeline slot, ms. */
export const SLOT_MS = 250;
/** Slots the progress line's rate is taken over: the last second. */
const RECENT_SLOTS = 1000 / SLOT_MS;

/** Counts of one timeline slot. */
export interface Slot {
  /** 2xx answers. */
  ok: number;
  /** 4xx answers except 429 (expected refusals: sold out, limits). */
  refused: number;
  /** 429 answers (admission control). */
  throttled: number;
  /** 5xx answers and attempts without an answer (refused, reset or timed-out connections). */
  failed: number;
}

/** How a buyer's journey ended. */
export type BuyerOutcome =
  'reserved' | 'released' | 'abandoned' | 'lost' | 'expired' | 'limited' | 'throttled' | 'failed' | 'rejected' | 'aborted';

export class StressStats {
  startedAt = Date.now();
  readonly latency = new LatencyHistogram();
  readonly losers = new LatencyHistogram();
  /** Open loop: how late each arrival left, against its planned time (the generator falling behind). */
  readonly scheduleLag = new LatencyHistogram();
  readonly byOp = new Map<StressOp, LatencyHistogram>();
  readonly statuses = new Map<number, number>();
  readonly errors = new Map<string, number>();
  readonly outcomes = new Map<BuyerOutcome, number>();
  readonly timeline: Slot[] = [];
  requests = 0;
  retries = 0;
  /**
   * Attempts the run cut itself (ABORTED: stopped early, or still in flight when the grace period
   * ran out). Not requests: they are in none of the other counts, nor in the timeline.
   */
  cut = 0;
  seatsSold = 0;
  placesSold = 0;
  buyersStarted = 0;
  buyersDone = 0;
  /** Open loop: arrivals dropped because `concurrency` buyers were already in flight. */
  shed = 0;
  firstAt = Infinity;
  lastAt = 0;

  /** Starts the clock (after set-up: inventory discovery, connections). */
  restart(): void {
    this.startedAt = Date.now();
  }

  /**
   * Records one attempt that ended at `at` after `ms`. `status` 0 = no answer. Latency counts every
   * attempt the system under test ended — an answer, a reset, a timeout at the moment the client
   * gave up — so a run whose requests hang does not report only its fast answers. Attempts the run
   * itself cut short (ABORTED) are not the system's doing: they are only counted, as `cut`.
   */
  attempt(op: StressOp, status: number, ms: number, at: number, error: string | undefined, retry: boolean): void {
    if (status === 0 && error === 'ABORTED') {
      this.cut += 1;
      return;
    }
    this.requests += 1;
    if (retry) this.retries += 1;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    if (error !== undefined) this.errors.set(error, (this.errors.get(error) ?? 0) + 1);
    this.latency.recordMs(ms);
    let histogram = this.byOp.get(op);
    if (histogram === undefined) this.byOp.set(op, (histogram = new LatencyHistogram()));
    histogram.recordMs(ms);
    if (status === 409) this.losers.recordMs(ms);
    const started = at - ms;
    if (started < this.firstAt) this.firstAt = started;
    if (at > this.lastAt) this.lastAt = at;
    const index = Math.max(0, Math.floor((at - this.startedAt) / SLOT_MS));
    while (this.timeline.length <= index) this.timeline.push({ ok: 0, refused: 0, throttled: 0, failed: 0 });
    const slot = this.timeline[index]!;
    if (status >= 200 && status < 300) slot.ok += 1;
    else if (status === 429) slot.throttled += 1;
    else if (status >= 400 && status < 500) slot.refused += 1;
    else slot.failed += 1;
  }

  /**
   * Answers per second at `now`, over the last second of complete slots before the current one —
   * by the clock, not by position in the timeline, which only grows when an answer arrives: slots
   * in which nothing was answered (a stall) count 0.
   */
  recentRps(now: number): number {
    const current = Math.floor((now - this.startedAt) / SLOT_MS);
    const from = Math.max(0, current - RECENT_SLOTS);
    if (current <= from) return 0;
    let answers = 0;
    for (let i = from; i < current; i++) {
      const slot = this.timeline[i];
      if (slot !== undefined) answers += slot.ok + slot.refused + slot.throttled + slot.failed;
    }
    return (answers * 1000) / ((current - from) * SLOT_MS);
  }

  outcome(outcome: BuyerOutcome): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
    this.buyersDone += 1;
  }

  /** Seconds from the first request sent to the last answer. */
  get durationS(): number {
    return this.lastAt > this.firstAt ? (this.lastAt - this.firstAt) / 1000 : 0;
  }

  latencyByOp(): Record<string, LatencySummary> {
    return Object.fromEntries([...this.byOp].map(([op, h]) => [op, h.summary()]));
  }
}

/** Sorted record of a count map, keys as strings (JSON output). */
export function countsOf<K extends string | number>(map: ReadonlyMap<K, number>): Record<string, number> {
  return Object.fromEntries([...map].sort(([a], [b]) => (String(a) < String(b) ? -1 : 1)).map(([k, v]) => [String(k), v]));
}
