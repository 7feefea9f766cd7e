import t from 'tap';
import type { StoredEvent } from '../../../src/adapters/postgres/inventory-store.js';
import { DependencyError } from '../../../src/errors.js';
import { EventCatalog, saleState } from '../../../src/ingress/event-catalog.js';

function event(overrides: Partial<StoredEvent> = {}): StoredEvent {
  return {
    id: 'ev',
    displayName: 'Event',
    layout: {
      sections: [
        {
          id: 'A',
          rows: [
            { id: '1', seats: 10 },
            { id: '2', seats: 10 },
          ],
        },
      ],
      pools: [{ id: 'GA', capacity: 50 }],
    },
    layoutHash: 'h1',
    shardCount: 2,
    holdTtlMs: 60_000,
    customerLimit: 4,
    admissionRate: 500,
    saleOpensAt: new Date(1000),
    saleClosesAt: new Date(10_000),
    status: 'open',
    version: 1,
    ...overrides,
  };
}

t.test('concurrent lookups cost one read; the map is built once per layout', async (t) => {
  let reads = 0;
  let now = 0;
  const catalog = new EventCatalog(
    {
      getEvent: async (id) => {
        reads++;
        return id === 'ev' ? event() : undefined;
      },
    },
    () => now,
    2000,
  );
  const results = await Promise.all(Array.from({ length: 100 }, () => catalog.get('ev')));
  t.equal(reads, 1);
  const first = results[0]!;
  t.equal(first.map.shardOfSeat('A-1-1'), 0);
  t.equal(first.map.shardOfPool('GA'), 1);
  t.same(first.admission, { ratePerS: 500, burst: 500 });
  now = 2500;
  const again = await catalog.get('ev');
  t.equal(reads, 2, 'refreshed after the TTL');
  t.equal(again!.map, first.map, 'same layout hash: same map object');
});

t.test('unknown events are remembered briefly', async (t) => {
  let reads = 0;
  let now = 0;
  const catalog = new EventCatalog({ getEvent: async () => (reads++, undefined) }, () => now);
  t.equal(await catalog.get('nope'), undefined);
  t.equal(await catalog.get('nope'), undefined);
  t.equal(reads, 1);
  now = 1500;
  await catalog.get('nope');
  t.equal(reads, 2);
});

t.test('a failing refresh keeps serving the last known event; a first read fails as a dependency error', async (t) => {
  let fail = false;
  let now = 0;
  const catalog = new EventCatalog(
    {
      getEvent: async () => {
        if (fail) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        return event();
      },
    },
    () => now,
  );
  await catalog.get('ev');
  fail = true;
  now = 10_000;
  t.ok(await catalog.get('ev'), 'stale but served');
  await t.rejects(
    new EventCatalog({ getEvent: async () => Promise.reject(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })) }).get('ev'),
    DependencyError,
  );
});

t.test('sale state', async (t) => {
  t.equal(saleState(event(), 500), 'not-yet-open');
  t.equal(saleState(event(), 1000), 'open');
  t.equal(saleState(event(), 10_000), 'closed');
  t.equal(saleState(event({ status: 'closed' }), 5000), 'closed');
});
