/**
 * Maps a TicketEvent's spec onto the inventory's EventSpec (the engine's provisioning contract),
 * checking what the API server's schema cannot: the layout rules of the domain and the shard count
 * against the layout. A spec that fails here is a terminal error: retrying cannot fix it.
 */
import { validateLayout } from '../domain/layout.js';
import { checkShardCount } from '../domain/shard-map.js';
import type { EventSpec } from '../engine/provision.js';
import { eventIdOf, eventIdProblem } from './event-id.js';
import type { TicketEventObject } from './types.js';

/** An EventSpec, or why the TicketEvent cannot become one. */
export type EventSpecResult = { readonly ok: true; readonly spec: EventSpec } | { readonly ok: false; readonly message: string };

/** The EventSpec a TicketEvent asks for. Pure. */
export function eventSpecOf(object: TicketEventObject): EventSpecResult {
  const { spec } = object;
  const idProblem = eventIdProblem(object.metadata);
  if (idProblem !== undefined) return { ok: false, message: idProblem };
  const layout = validateLayout({ sections: spec.layout?.sections ?? [], pools: spec.layout?.pools ?? [] });
  if (!layout.ok) {
    const problems = layout.errors.map((e) => (e.path === '' ? e.message : `spec.layout.${e.path}: ${e.message}`));
    return { ok: false, message: `invalid layout: ${problems.join('; ')}` };
  }
  const shardProblem = checkShardCount(layout.layout, spec.shardCount);
  if (shardProblem !== undefined) return { ok: false, message: `spec.shardCount: ${shardProblem}` };
  const opens = new Date(spec.sale?.opensAt ?? '');
  const closes = new Date(spec.sale?.closesAt ?? '');
  if (Number.isNaN(opens.getTime()) || Number.isNaN(closes.getTime())) {
    return { ok: false, message: 'spec.sale.opensAt and spec.sale.closesAt must be RFC 3339 date-times' };
  }
  if (closes.getTime() <= opens.getTime()) return { ok: false, message: 'spec.sale.closesAt must be after spec.sale.opensAt' };
  return {
    ok: true,
    spec: {
      eventId: eventIdOf(object.metadata),
      displayName: spec.displayName,
      layout: layout.layout,
      shardCount: spec.shardCount,
      holdTtlMs: spec.holdTtlSeconds * 1000,
      customerLimit: spec.customerLimit,
      admissionRate: spec.admissionRate,
      saleOpensAt: opens,
      saleClosesAt: closes,
    },
  };
}
