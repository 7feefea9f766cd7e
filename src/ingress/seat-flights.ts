/**
 * Seats this ingress is asking a shard about right now (ADR 0008, decision 15). When a seat goes on
 * sale, hundreds of requests for it arrive in the same few milliseconds, before any answer could
 * teach the ingress that it sold (SoldSeats). Without this, every one of them claims its key in
 * Redis, crosses NATS and is refused by the shard — the whole first wave of a hot-seat rush pays
 * the full price, and that wave is where a rush's slowest requests were found.
 *
 * So the first request for a seat that goes to the shard is its seat's *flight*; a request for a
 * seat with a flight under way (that the ingress cannot refuse already) waits for it to land (its
 * shard answer learned), then looks again at what the ingress knows: a seat the flight learned was
 * sold to another customer is refused by the ingress alone. Nobody waits longer than `maxWaitMs`
 * for a flight: the answer a winner waits for comes after its commit, and a commit held up (a slow
 * fsync, a Postgres restart) must not hold up the losers, whom the shard refuses at once — after
 * that the flight's waiters, and everyone who comes later, go to the shard. A flight refused
 * because its seat's sale to someone else is being committed (the winner's request came through
 * another ingress) lands only when that commit's announcement arrives, so its waiters learn the
 * sale instead of asking. A request waits once: when the flight taught nothing (the seat is only
 * held, the leader was refused for its own reasons, the shard did not answer), the waiters go to
 * the shard together, as they would have, and none of them becomes a flight — a run of requests
 * each refused for its own reason is never served one at a time.
 *
 * A waiter's answer is as true as the shard's would have been: the flight's sale took effect while
 * the waiter was waiting, so a refusal is a moment of its life when the seat was someone else's.
 * Nobody waits for a flight of their own: its answer never refuses its own customer.
 */
import type { CustomerId, SeatId } from '../domain/commands.js';

/**
 * Longest a request waits for another's flight (ms). A winner's answer waits for its commit, and in
 * the first wave of a rush, on a machine the wave saturates, that took up to about 100 ms in `npm
 * run bench` (with 25 ms the shard still decided 372–1,000 of a hot-seat run's requests; with 100,
 * 2 once warm). Short enough that a commit held up costs the losers little.
 */
export const FLIGHT_WAIT_MS = 100;

interface Flight {
  readonly customer: CustomerId;
  /** Its waiters were let go (landed, or waited for long enough): nobody new waits for it. */
  released: boolean;
  /** Made when the first request waits for it: a flight nobody waits for costs a map entry only. */
  waiting?: { readonly landed: Promise<void>; readonly release: () => void; readonly timer: NodeJS.Timeout };
}

export class SeatFlights {
  /** `event \n seat` → the request asking about it. */
  private readonly flights = new Map<string, Flight>();

  constructor(readonly maxWaitMs = FLIGHT_WAIT_MS) {}

  /**
   * Resolves when the flights under way for any of `seats` have landed, or once `maxWaitMs` has
   * passed since their first waiter came; undefined when there are none. The customer's own flights
   * are not waited for: what they teach never refuses that customer (SoldSeats.refusal), and a
   * request repeated while the first is in flight is the gate's to answer at once (Idempotency-Key
   * in use).
   */
  landing(eventId: string, seats: readonly SeatId[], customer: CustomerId): Promise<void> | undefined {
    let first: Promise<void> | undefined;
    let all: Promise<void>[] | undefined;
    for (const seat of seats) {
      const flight = this.flights.get(`${eventId}\n${seat}`);
      if (flight === undefined || flight.released || flight.customer === customer) continue;
      const landed = this.waitFor(flight);
      if (landed === first || all?.includes(landed)) continue;
      if (first === undefined) first = landed;
      else (all ??= [first]).push(landed);
    }
    return all === undefined ? first : Promise.all(all).then(() => undefined);
  }

  /**
   * Marks `seats` (those without a flight already) as asked about by `customer` until the returned
   * function is called — as soon as the shard's answer has been learned, and in any case once the
   * request ends (calling it again does nothing). Given `after`, the flight lands when that
   * settles instead: a refusal naming a seat whose sale is being committed teaches the waiters
   * nothing yet, the commit's announcement will (SoldSeats.whenSold; its waiters are let go after
   * `maxWaitMs` all the same).
   */
  depart(eventId: string, seats: readonly SeatId[], customer: CustomerId): (after?: Promise<void>) => void {
    const flight: Flight = { customer, released: false };
    const keys = seats.map((seat) => `${eventId}\n${seat}`).filter((key) => !this.flights.has(key));
    for (const key of keys) this.flights.set(key, flight);
    let done = false;
    const land = () => {
      for (const key of keys) if (this.flights.get(key) === flight) this.flights.delete(key);
      letGo(flight);
    };
    return (after) => {
      if (done) return;
      done = true;
      if (after === undefined) land();
      else void after.then(land, land);
    };
  }

  /** The flight's landing, made (with its bound) for its first waiter. */
  private waitFor(flight: Flight): Promise<void> {
    if (flight.waiting === undefined) {
      let release!: () => void;
      const landed = new Promise<void>((resolve) => (release = resolve));
      const timer = setTimeout(() => letGo(flight), this.maxWaitMs);
      timer.unref();
      flight.waiting = { landed, release, timer };
    }
    return flight.waiting.landed;
  }

  /** Seats with a flight under way (for tests and metrics). */
  get size(): number {
    return this.flights.size;
  }
}

/** Lets the flight's waiters go; nobody new waits for it. */
function letGo(flight: Flight): void {
  flight.released = true;
  if (flight.waiting === undefined) return;
  clearTimeout(flight.waiting.timer);
  flight.waiting.release();
}
