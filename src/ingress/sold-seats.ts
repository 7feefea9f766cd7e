/**
 * Seats this ingress has seen a shard report as sold: in a reservation it confirmed, or in a
 * refusal. A sale is final — nothing in Sentinel un-sells a seat or deletes an event — so a
 * request for a seat known to be sold is refused here, without asking the shard: in a hot-seat
 * rush every request after the winner's is answered by the ingress alone, and in a flash sale
 * every later buyer of a seat this ingress sold.
 *
 * Entries are forgotten after a TTL (a fresh word from the shard renews them) and beyond a
 * capacity, so memory stays bounded however many seats sell, and an event re-created by hand in
 * the database under the same id is seen afresh within a minute.
 */
import { seatsUnavailable, type SeatId, type ShardResult } from '../domain/commands.js';
import { evictOldest } from '../evict.js';

/** How long a seat is remembered as sold after the shard last said so (ms). */
export const SOLD_SEAT_TTL_MS = 60_000;
/** Most seats remembered at once. */
export const SOLD_SEAT_CAPACITY = 100_000;

export class SoldSeats {
  /** `event \n seat` → expiry (epoch ms), oldest first. */
  private readonly seats = new Map<string, number>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlMs = SOLD_SEAT_TTL_MS,
    private readonly capacity = SOLD_SEAT_CAPACITY,
  ) {}

  remember(eventId: string, seats: readonly SeatId[]): void {
    const expiresAt = this.now() + this.ttlMs;
    for (const seat of seats) {
      const key = `${eventId}\n${seat}`;
      this.seats.delete(key); // re-inserted last: the map stays ordered by expiry
      this.seats.set(key, expiresAt);
    }
    evictOldest(this.seats, this.capacity);
  }

  /** The seats among `seats` known to be sold, or undefined when none is. */
  sold(eventId: string, seats: readonly SeatId[]): SeatId[] | undefined {
    let sold: SeatId[] | undefined;
    const now = this.now();
    for (const seat of seats) {
      const key = `${eventId}\n${seat}`;
      const expiresAt = this.seats.get(key);
      if (expiresAt === undefined) continue;
      if (expiresAt > now) (sold ??= []).push(seat);
      else this.seats.delete(key);
    }
    return sold;
  }

  /** The shard's refusal of `seats` when some are known to be sold (naming those), or undefined. */
  refusal(eventId: string, seats: readonly SeatId[]): ShardResult | undefined {
    const sold = this.sold(eventId, seats);
    return sold === undefined ? undefined : seatsUnavailable(sold, sold);
  }

  get size(): number {
    return this.seats.size;
  }
}
