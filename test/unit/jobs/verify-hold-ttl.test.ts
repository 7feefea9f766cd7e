/**
 * verify's check of holds against the event's hold TTL: the longest TTL a hold can have been given
 * (the current one, unless the event was edited), and the violation it reports.
 */
import t from 'tap';
import { resolveShardSettings } from '../../../src/domain/shard-settings.js';
import {
  checkInventory,
  longestHoldTtl,
  MAX_HOLD_TTL_MS,
  type EventFacts,
  type Reader,
} from '../../../src/jobs/verify/inventory-checks.js';
import { CHECKS, Violations } from '../../../src/jobs/verify/violations.js';

const event = (more: Partial<EventFacts> = {}): EventFacts => ({
  id: 'ev',
  customerLimit: 8,
  holdTtlMs: 30_000,
  version: 1,
  status: 'open',
  createdAt: new Date(0),
  shardCount: 2,
  prunedAt: undefined,
  ...more,
});

t.test('the longest TTL a hold can have had: the current one if the event was never edited, else the engines’ bound', async (t) => {
  t.equal(longestHoldTtl(event()).ms, 30_000, 'never edited');
  t.equal(longestHoldTtl(event({ version: 2, status: 'closed' })).ms, 30_000, 'the one bump was its close');
  t.equal(longestHoldTtl(event({ version: 2, status: 'archived' })).ms, 30_000, 'the one bump was its archive');
  t.equal(longestHoldTtl(event({ version: 2 })).ms, MAX_HOLD_TTL_MS, 'edited: its TTL may have been lowered since');
  t.equal(longestHoldTtl(event({ version: 3, status: 'closed' })).ms, MAX_HOLD_TTL_MS, 'edited, then closed');
  t.match(longestHoldTtl(event({ version: 2 })).why, /the event was edited/);
});

t.test('the engines’ bound is the one they enforce: no engine decides by a longer TTL', async (t) => {
  t.equal(resolveShardSettings({ holdTtlMs: MAX_HOLD_TTL_MS }).holdTtlMs, MAX_HOLD_TTL_MS);
  t.throws(() => resolveShardSettings({ holdTtlMs: MAX_HOLD_TTL_MS + 1 }), /holdTtlMs/);
});

/** A snapshot with no rows but the holds the TTL check asks for, given as [id, lifetime ms]; records that query's bound. */
function snapshot(holds: [string, number][]): Reader & { bound?: number } {
  const reader: Reader & { bound?: number } = {
    async query<R>(sql: string, params: unknown[]) {
      if (sql.includes('expires_at - created_at) * 1000) >')) {
        reader.bound = Number(params[1]);
        const rows = holds
          .filter(([, ms]) => ms > reader.bound!)
          .map(([hold_id, lifetime_ms]) => ({ hold_id, state: 'expired', created_at: new Date(0), lifetime_ms }));
        return { rows: rows as R[] };
      }
      // The counts at the end: one row.
      if (sql.includes('lag_p99')) return { rows: [{}] as R[] };
      return { rows: [] };
    },
  };
  return reader;
}

t.test('a hold given longer than the TTL + slack is a violation of its own check', async (t) => {
  t.equal(CHECKS['hold-longer-than-ttl'].invariant, 3);
  const violations = new Violations();
  const db = snapshot([
    ['h-ok', 30_000],
    ['h-slack', 32_000],
    ['h-long', 30_000_000],
  ]);
  await checkInventory(db, event(), violations, 2000);
  t.equal(db.bound, 32_000, 'the TTL + slack');
  t.equal(violations.count('hold-longer-than-ttl'), 1);
  t.match(violations.list(), [
    {
      check: 'hold-longer-than-ttl',
      message:
        /^expired hold h-long \(created 1970-01-01T00:00:00\.000Z\) was given 30000000 ms until its expiry: more than 30000 ms \+ 2000 ms slack \(the event's hold TTL, never edited, is 30000 ms\)$/,
    },
  ]);
});

t.test('an edited event is held to the engines’ bound only: no false positive for a TTL lowered mid-sale', async (t) => {
  const violations = new Violations();
  const db = snapshot([
    ['h-before-the-edit', 600_000],
    ['h-beyond-any-ttl', MAX_HOLD_TTL_MS + 60_000],
  ]);
  await checkInventory(db, event({ version: 2 }), violations, 2000);
  t.equal(db.bound, MAX_HOLD_TTL_MS + 2000);
  t.equal(violations.count('hold-longer-than-ttl'), 1);
  t.match(violations.list()[0]?.message, /hold h-beyond-any-ttl .* \(the event was edited/);
});
