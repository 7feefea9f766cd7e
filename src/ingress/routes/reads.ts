/**
 * The read routes. They answer from Postgres (committed state), never from the shards, and need
 * no Idempotency-Key or admission: reads change nothing.
 */
import type { IngressContext } from '../context.js';
import type { EventCatalog, RoutableEvent } from '../event-catalog.js';
import type { InventoryReads } from '../inventory-reads.js';
import { HttpProblem } from '../problems.js';
import { storedHoldBody, storedReservationBody } from '../views.js';

export interface ReadRouteDeps {
  readonly catalog: EventCatalog;
  readonly reads: InventoryReads;
}

export function readRoutes({ catalog, reads }: ReadRouteDeps) {
  async function knownEvent(ctx: IngressContext): Promise<RoutableEvent> {
    const eventId = ctx.params['event'] as string;
    const routable = await catalog.get(eventId);
    if (routable === undefined) throw new HttpProblem('event-not-found', `no event ${eventId}`);
    return routable;
  }

  async function getAvailability(ctx: IngressContext): Promise<void> {
    const routable = await knownEvent(ctx);
    ctx.body = await reads.availability(routable.event.id, routable.map);
  }

  async function getSeatMap(ctx: IngressContext): Promise<void> {
    const routable = await knownEvent(ctx);
    const section = ctx.query['section'] as string;
    const seatMap = await reads.seatMap(routable.event.id, routable.map, section);
    if (seatMap === undefined) throw new HttpProblem('section-not-found', `event ${routable.event.id} has no section ${section}`);
    ctx.body = seatMap;
  }

  async function getHold(ctx: IngressContext): Promise<void> {
    const routable = await knownEvent(ctx);
    const holdId = ctx.params['hold'] as string;
    const hold = await reads.hold(routable.event.id, holdId);
    // Another customer's hold is indistinguishable from none.
    if (hold === undefined || hold.customer !== ctx.state.customer)
      throw new HttpProblem('hold-not-found', `no hold ${holdId} for this customer`);
    ctx.body = storedHoldBody(hold);
  }

  async function getReservation(ctx: IngressContext): Promise<void> {
    const id = ctx.params['reservation'] as string;
    const reservation = await reads.reservation(id);
    // Another customer's reservation is indistinguishable from none.
    if (reservation === undefined || reservation.customer !== ctx.state.customer)
      throw new HttpProblem('reservation-not-found', `no reservation ${id} for this customer`);
    ctx.body = storedReservationBody(reservation);
  }

  return { getAvailability, getSeatMap, getHold, getReservation };
}
