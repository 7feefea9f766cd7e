/** The TicketEvent as the operator reads it from the API server (defaults applied). */
import type { TicketEventSpec, TicketEventStatus } from './api/v1alpha1.js';

/** Metadata fields the operator relies on. */
export interface TicketEventMetadata {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly generation: number;
  readonly resourceVersion: string;
  readonly creationTimestamp?: string;
  readonly deletionTimestamp?: string;
  readonly finalizers?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A TicketEvent read from the API server. */
export interface TicketEventObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: TicketEventMetadata;
  readonly spec: TicketEventSpec;
  readonly status?: TicketEventStatus;
}

/** The finalizer that keeps a TicketEvent until its sale is closed and its reservations archived. */
export const FINALIZER = 'sentinel.dev/inventory';
