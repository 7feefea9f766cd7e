/**
 * Seats this ingress has seen a shard report as sold, and to whom: in a reservation it confirmed,
 * or in a refusal (which names each sold seat's buyer, `soldTo`). A sale is final — nothing in
 * Sentinel un-sells a seat or deletes an event — so a request for a seat known to be sold to
 * another customer is refused here, without asking the shard: in a hot-seat rush every request
 * after the winner's is answered by the ingress alone, and in a flash sale every later buyer of a
 * seat this ingress sold.
 *
 * Never the buyer's own request, though: a request of the customer who bought a seat may be the
 * retry of the very request that bought it — answered 503 because the shard committed after the
 * deadline, or 201 with the record in Redis lost since — and only the shard, which remembers the
 * success under the request's key, can tell; it replays the 201. So a request naming any seat
 * known sold to its own customer goes to the shard as usual.
 *
 * It learns from every shard answer it gets, and from every commit of every shard: an owner
 * announces the seats each commit sold (`listenForSales`). Without the announcements, each seat's
 * first later buyer on every other replica went to the shard — in a flash sale through many
 * ingress replicas, most of the losers.
 *
 * Entries are forgotten after a TTL (a fresh word from the shard renews them) and beyond a
 * capacity, so memory stays bounded however many seats sell, and an event re-created by hand in
 * the database under the same id is seen afresh within a minute.
 */
import type { NatsConnection, Subscription } from 'nats';
import { guardedCallback } from '../adapters/nats/guarded-callback.js';
import { seatsUnavailable, type CustomerId, type SeatId, type ShardResult } from '../domain/commands.js';
import { ALL_SALES, decodeSales, salesSubject } from '../engine/protocol.js';
import { evictOldest } from '../evict.js';
import { silentLogger, type Logger } from '../log.js';

/** How long a seat is remembered as sold after the shard last said so (ms). */
export const SOLD_SEAT_TTL_MS = 60_000;
/** Most seats remembered at once. */
export const SOLD_SEAT_CAPACITY = 100_000;

interface SoldSeat {
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly buyer: CustomerId;
}

export class SoldSeats {
  /** `event \n seat` → expiry and buyer, oldest first. */
  private readonly seats = new Map<string, SoldSeat>();
  /** `event \n seat` → who waits to learn that it sold (`whenSold`). */
  private readonly awaited = new Map<string, Set<() => void>>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlMs = SOLD_SEAT_TTL_MS,
    private readonly capacity = SOLD_SEAT_CAPACITY,
  ) {}

  /**
   * Learns from a shard's answer: the seats of a confirmed reservation are sold to its customer;
   * a refusal's `sold` seats to their `soldTo` buyers. A refusal naming sold seats without their
   * buyers (they must come aligned) teaches nothing: the ingress keeps asking the shard.
   */
  learn(eventId: string, result: ShardResult): void {
    if (result.type === 'confirmed') {
      const { seats, customer } = result.reservation;
      if (seats.length > 0) this.remember(eventId, seats, customer);
    } else if (result.type === 'unavailable') {
      const { sold, soldTo } = result;
      if (sold !== undefined && soldTo !== undefined && soldTo.length === sold.length) this.remember(eventId, sold, soldTo);
    }
  }

  /** Remembers `seats` as sold: all to `buyers` when it is one customer, else each to the buyer at its index. */
  remember(eventId: string, seats: readonly SeatId[], buyers: CustomerId | readonly CustomerId[]): void {
    const expiresAt = this.now() + this.ttlMs;
    seats.forEach((seat, i) => {
      const buyer = typeof buyers === 'string' ? buyers : buyers[i];
      if (buyer === undefined) return;
      const key = `${eventId}\n${seat}`;
      this.seats.delete(key); // re-inserted last: the map stays ordered by expiry
      this.seats.set(key, { expiresAt, buyer });
      if (this.awaited.size > 0) this.awaited.get(key)?.forEach((learned) => learned());
    });
    evictOldest(this.seats, this.capacity);
  }

  /**
   * Resolves once every seat of `seats` is known sold (to anyone), or after `timeoutMs` — a sale
   * the shard said is being committed is announced once it is (`listenForSales`), unless its commit
   * failed.
   */
  whenSold(eventId: string, seats: readonly SeatId[], timeoutMs: number): Promise<void> {
    const now = this.now();
    const keys = seats.filter((seat) => this.buyerOf(eventId, seat, now) === undefined).map((seat) => `${eventId}\n${seat}`);
    if (keys.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const left = new Set(keys);
      const done = () => {
        clearTimeout(timer);
        for (const key of keys) {
          const waiters = this.awaited.get(key);
          waiters?.delete(learned);
          if (waiters?.size === 0) this.awaited.delete(key);
        }
        resolve();
      };
      const learned = () => {
        for (const key of left) if (this.seats.has(key)) left.delete(key);
        if (left.size === 0) done();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      for (const key of keys) {
        let waiters = this.awaited.get(key);
        if (waiters === undefined) this.awaited.set(key, (waiters = new Set()));
        waiters.add(learned);
      }
    });
  }

  /** The seats among `seats` known to be sold (to anyone), or undefined when none is. */
  sold(eventId: string, seats: readonly SeatId[]): SeatId[] | undefined {
    let sold: SeatId[] | undefined;
    const now = this.now();
    for (const seat of seats) if (this.buyerOf(eventId, seat, now) !== undefined) (sold ??= []).push(seat);
    return sold;
  }

  /**
   * The refusal of `customer`'s request for `seats` when it is decided already: some of them are
   * known to be sold, and none of those to `customer` (whose request may be the retry of the one
   * that bought it: the shard must answer that). Names the seats known sold — never their buyers.
   * Undefined when the shard must be asked.
   */
  refusal(eventId: string, seats: readonly SeatId[], customer: CustomerId): ShardResult | undefined {
    let sold: SeatId[] | undefined;
    const now = this.now();
    for (const seat of seats) {
      const buyer = this.buyerOf(eventId, seat, now);
      if (buyer === undefined) continue;
      if (buyer === customer) return undefined;
      (sold ??= []).push(seat);
    }
    return sold === undefined ? undefined : seatsUnavailable(sold, sold);
  }

  get size(): number {
    return this.seats.size;
  }

  /** Seats someone waits to learn about (`whenSold`; for tests). */
  get awaitedSeats(): number {
    return this.awaited.size;
  }

  /** Who bought `seat`, while remembered; forgets the seat once its TTL passed. */
  private buyerOf(eventId: string, seat: SeatId, now: number): CustomerId | undefined {
    const key = `${eventId}\n${seat}`;
    const entry = this.seats.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > now) return entry.buyer;
    this.seats.delete(key);
    return undefined;
  }
}

/**
 * Feeds `sold` with every shard's announcements of the seats its commits sold (ADR 0008, decision
 * 16); `heard` counts the seats. A large commit comes in several messages, each whole seats with
 * their buyers: each is learned on its own (and `whenSold` waits until every seat it asks about
 * was heard, from whichever message). `log` reports a message whose handling threw (dropped, see
 * guardedCallback). The subscription ends when the connection is drained or closed.
 */
export function listenForSales(
  nc: NatsConnection,
  sold: SoldSeats,
  heard: (seats: number) => void,
  log: Logger = silentLogger,
): Subscription {
  const prefix = salesSubject('');
  return nc.subscribe(ALL_SALES, {
    callback: guardedCallback(log, 'Sales announcements', (error, msg) => {
      if (error !== null) return;
      const sales = decodeSales(msg.data);
      if (sales === undefined || sales.seats.length === 0) return;
      sold.remember(msg.subject.slice(prefix.length), sales.seats, sales.buyers);
      heard(sales.seats.length);
    }),
  });
}
