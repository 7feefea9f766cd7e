/**
 * The JSON shapes the API answers with (see the `Hold` and `Reservation` schemas of
 * docs/openapi.json): engine views minus internals (customer, epoch-ms times become RFC 3339).
 */
import type { HoldView, ReservationView } from '../domain/commands.js';
import type { StoredHold, StoredReservation } from './inventory-reads.js';

export interface HoldBody {
  readonly holdId: string;
  readonly eventId: string;
  readonly seats: readonly string[];
  readonly pool?: string;
  readonly quantity: number;
  readonly createdAt: string;
  readonly expiresAt: string;
}

/** A hold as read back (`GET` of its `Location`): the hold plus its state, and its reservation once confirmed. */
export interface HoldStatusBody extends HoldBody {
  readonly state: StoredHold['state'];
  readonly reservationId?: string;
}

export interface ReservationBody {
  readonly reservationId: string;
  readonly eventId: string;
  readonly holdId: string;
  readonly seats: readonly string[];
  readonly pool?: string;
  readonly quantity: number;
  readonly confirmedAt: string;
}

export function holdBody(eventId: string, hold: HoldView): HoldBody {
  return {
    holdId: hold.holdId,
    eventId,
    seats: hold.seats,
    ...(hold.pool === undefined ? {} : { pool: hold.pool }),
    quantity: hold.quantity,
    createdAt: new Date(hold.createdAt).toISOString(),
    expiresAt: new Date(hold.expiresAt).toISOString(),
  };
}

export function reservationBody(eventId: string, reservation: ReservationView): ReservationBody {
  return {
    reservationId: reservation.reservationId,
    eventId,
    holdId: reservation.holdId,
    seats: reservation.seats,
    ...(reservation.pool === undefined ? {} : { pool: reservation.pool }),
    quantity: reservation.quantity,
    confirmedAt: new Date(reservation.confirmedAt).toISOString(),
  };
}

export function storedReservationBody(r: StoredReservation): ReservationBody {
  return {
    reservationId: r.reservationId,
    eventId: r.eventId,
    holdId: r.holdId,
    seats: r.seats,
    ...(r.pool === null ? {} : { pool: r.pool }),
    quantity: r.quantity,
    confirmedAt: r.confirmedAt.toISOString(),
  };
}

export function storedHoldBody(h: StoredHold): HoldStatusBody {
  return {
    holdId: h.holdId,
    eventId: h.eventId,
    seats: h.seats,
    ...(h.pool === null ? {} : { pool: h.pool }),
    quantity: h.quantity,
    state: h.state,
    createdAt: h.createdAt.toISOString(),
    expiresAt: h.expiresAt.toISOString(),
    ...(h.reservationId === null ? {} : { reservationId: h.reservationId }),
  };
}

/** Path of a hold resource (its `Location`). */
export const holdPath = (eventId: string, holdId: string) =>
  `/v1/events/${encodeURIComponent(eventId)}/holds/${encodeURIComponent(holdId)}`;
/** Path of a reservation resource (its `Location`). */
export const reservationPath = (reservationId: string) => `/v1/reservations/${encodeURIComponent(reservationId)}`;
