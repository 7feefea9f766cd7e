/**
 * Admission control: the Generic Cell Rate Algorithm (GCRA, the leaky bucket as a meter) over one
 * number per event — its theoretical arrival time (TAT). Equivalent to a token bucket of
 * `burst` tokens refilled at `rate` per second, but it stores one value and needs no refill timer.
 *
 * The arithmetic lives twice: `gcraDecide` (pure, unit-tested) and the Lua in `redis-scripts.ts`
 * (atomic across ingress replicas). Both work in integer microseconds, and a test runs the Lua
 * against this model.
 */

/** Rate parameters of one event. */
export interface AdmissionRate {
  /** Admitted requests per second, across all ingress replicas. */
  readonly ratePerS: number;
  /** Requests admitted at once from idle (bucket size), ≥ 1. */
  readonly burst: number;
}

/** The outcome of asking to admit one request. */
export type AdmissionDecision =
  { readonly admitted: true; readonly tatUs: number } | { readonly admitted: false; readonly tatUs: number; readonly retryAfterUs: number };

/** Seconds of traffic at the full rate a quiet event may absorb at once (see ADR 0004). */
export const ADMISSION_BURST_S = 1;

/** The GCRA parameters for an event's admission rate (requests/s): burst = one second's worth. */
export function admissionRateOf(ratePerS: number): AdmissionRate {
  return { ratePerS, burst: Math.max(1, Math.ceil(ratePerS * ADMISSION_BURST_S)) };
}

/** Emission interval T = 1/rate, in whole microseconds (at least 1). */
export function emissionIntervalUs(rate: AdmissionRate): number {
  return Math.max(1, Math.round(1_000_000 / rate.ratePerS));
}

/**
 * GCRA: with T the emission interval and B the burst, a request arriving at `nowUs` would move the
 * TAT to `max(tat, now) + T`; it conforms when that is at most `now + B·T`. A refused request
 * leaves the TAT unchanged and may retry once `newTat - B·T` has come.
 */
export function gcraDecide(storedTatUs: number | undefined, nowUs: number, rate: AdmissionRate): AdmissionDecision {
  const interval = emissionIntervalUs(rate);
  const tat = storedTatUs === undefined || storedTatUs < nowUs ? nowUs : storedTatUs;
  const newTat = tat + interval;
  const limit = nowUs + rate.burst * interval;
  if (newTat > limit) return { admitted: false, tatUs: tat, retryAfterUs: newTat - limit };
  return { admitted: true, tatUs: newTat };
}
