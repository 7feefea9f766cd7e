/**
 * Which shard a hold lives in. Confirm and release name only the hold, so the ingress must find
 * its shard: holds created through this process are remembered; any other is looked up in
 * Postgres, where the engine wrote it before answering its 201. The owner comes along, so a hold
 * of another customer is a 404 before any shard is asked.
 */
import { evictOldest } from '../evict.js';
import type { HoldLocation, InventoryReads } from './inventory-reads.js';

/** Holds remembered per process; a miss costs one indexed Postgres read. */
export const HOLD_LOCATOR_CACHE_SIZE = 100_000;

export class HoldLocator {
  private readonly known = new Map<string, HoldLocation>();

  constructor(
    private readonly reads: Pick<InventoryReads, 'holdLocation'>,
    private readonly capacity = HOLD_LOCATOR_CACHE_SIZE,
  ) {}

  remember(eventId: string, holdId: string, location: HoldLocation): void {
    this.known.set(`${eventId}/${holdId}`, location);
    evictOldest(this.known, this.capacity);
  }

  async locate(eventId: string, holdId: string): Promise<HoldLocation | undefined> {
    const known = this.known.get(`${eventId}/${holdId}`);
    if (known !== undefined) return known;
    const found = await this.reads.holdLocation(eventId, holdId);
    if (found !== undefined) this.remember(eventId, holdId, found);
    return found;
  }
}
