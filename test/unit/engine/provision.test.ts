/** The checks a TicketEvent spec passes before anything is written. */
import t from 'tap';
import { checkSpec, type EventSpec } from '../../../src/engine/provision.js';

const spec = (overrides: Partial<EventSpec> = {}): EventSpec => ({
  eventId: 'arena',
  displayName: 'Arena',
  layout: { sections: [{ id: 'A', rows: [{ id: '1', seats: 10 }] }], pools: [] },
  shardCount: 1,
  holdTtlMs: 60_000,
  customerLimit: 8,
  admissionRate: 100,
  saleOpensAt: new Date('2030-01-01T00:00:00Z'),
  saleClosesAt: new Date('2030-01-02T00:00:00Z'),
  ...overrides,
});

t.test('a spec within every bound passes', async (t) => {
  t.match(checkSpec(spec()), { ok: true });
});

t.test('rules an engine could not serve are refused before they are stored', async (t) => {
  // Stored, they would make every claim of the event's shards fail, and no shard would ever be served.
  t.match(checkSpec(spec({ customerLimit: 100_001 })), {
    ok: false,
    outcome: { status: 'refused', reason: 'invalid', message: /customerLimit must be an integer in \[1, 100000\], got 100001/ },
  });
  t.match(checkSpec(spec({ holdTtlMs: 8 * 86_400_000 })), { ok: false, outcome: { reason: 'invalid', message: /holdTtlMs must be/ } });
  t.match(checkSpec(spec({ holdTtlMs: 500 })), { ok: false, outcome: { message: 'hold TTL must be at least 1000 ms' } });
  t.match(checkSpec(spec({ customerLimit: 0 })), { ok: false, outcome: { message: 'customer limit must be an integer ≥ 1' } });
});
