/**
 * The per-event rules a shard decides by. The engine builds them from the `TicketEvent` spec; the
 * defaults below are what an event gets when its spec is silent.
 */
import { SentinelError } from '../errors.js';

/** Rules of one event's shards. */
export interface ShardSettings {
  /** How long a hold lives, ms (default 600,000 = 10 min). A hold is never extended. */
  readonly holdTtlMs: number;
  /** Seats + places one customer may hold or have reserved in the event (default 8). */
  readonly customerLimit: number;
  /** Most seats (or places) one command may ask for (default 50; the effective cap is min(this, customerLimit)). */
  readonly maxSeatsPerRequest: number;
  /** How long an idempotency key, and the fate of an ended hold, is remembered, ms (default 86,400,000 = 24 h). */
  readonly idempotencyTtlMs: number;
  /** Most successful results remembered in memory; the oldest are forgotten first (default 1,000,000). */
  readonly maxRememberedResults: number;
  /** Most failed results remembered in memory, never persisted; the oldest are forgotten first (default 100,000). */
  readonly maxRememberedFailures: number;
  /** Most ended holds remembered to answer `hold-expired` / `hold-confirmed` (default 200,000). */
  readonly maxEndedHolds: number;
}

/** Defaults for every setting; see `ShardSettings` for what each means. */
export const DEFAULT_SHARD_SETTINGS: ShardSettings = Object.freeze({
  holdTtlMs: 600_000,
  customerLimit: 8,
  maxSeatsPerRequest: 50,
  idempotencyTtlMs: 86_400_000,
  maxRememberedResults: 1_000_000,
  maxRememberedFailures: 100_000,
  maxEndedHolds: 200_000,
});

/** Settings that cannot be used. */
export class ShardSettingsError extends SentinelError {
  constructor(message: string) {
    super('shard_settings_invalid', message);
  }
}

const BOUNDS: { readonly [K in keyof ShardSettings]: readonly [min: number, max: number] } = {
  holdTtlMs: [1, 7 * 86_400_000],
  customerLimit: [1, 100_000],
  maxSeatsPerRequest: [1, 10_000],
  idempotencyTtlMs: [1, 30 * 86_400_000],
  maxRememberedResults: [1, 100_000_000],
  maxRememberedFailures: [0, 100_000_000],
  maxEndedHolds: [0, 100_000_000],
};

/** Fills in defaults and validates. Throws ShardSettingsError naming the setting. */
export function resolveShardSettings(partial: Partial<ShardSettings> = {}): ShardSettings {
  const settings = { ...DEFAULT_SHARD_SETTINGS, ...partial };
  for (const name of Object.keys(BOUNDS) as (keyof ShardSettings)[]) {
    const value = settings[name];
    const [min, max] = BOUNDS[name];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new ShardSettingsError(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
    }
  }
  return Object.freeze(settings);
}
