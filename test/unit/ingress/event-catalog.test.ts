import t from 'tap';
import type { StoredEvent } from '../../../src/adapters/postgres/inventory-store.js';
import { DependencyError } from '../../../src/errors.js';
import { EventCatalog, MAX_CACHED_EVENTS, saleState, saleStoppedAt } from '../../../src/ingress/event-catalog.js';

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

/** A source whose reads the test answers one by one. */
function scriptedSource() {
  const reads: { resolve: (e: StoredEvent) => void; reject: (error: unknown) => void }[] = [];
  return {
    reads,
    source: { getEvent: () => new Promise<StoredEvent | undefined>((resolve, reject) => reads.push({ resolve, reject })) },
  };
}
const settled = () => new Promise((resolve) => setImmediate(resolve));

t.test('under steady traffic the entry is re-read in the background: no request waits for it', async (t) => {
  const { reads, source } = scriptedSource();
  let now = 0;
  const catalog = new EventCatalog(source, () => now, 2000);
  const first = catalog.get('ev');
  reads[0]!.resolve(event({ admissionRate: 100 }));
  t.equal((await first)!.admission.ratePerS, 100);
  now = 900;
  await catalog.get('ev');
  t.equal(reads.length, 1, 'in its first half-life the entry is only served');
  now = 1100;
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 100, 'past half its life: served at once, with the read still unanswered…');
  t.equal(reads.length, 2, '…which that request started');
  now = 1500;
  await catalog.get('ev');
  t.equal(reads.length, 2, 'one background read at a time');
  reads[1]!.resolve(event({ admissionRate: 200 }));
  await settled();
  now = 2400; // past the first entry's expiry (2000); the new one, read at 1500, is fresh until 2500
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 200, 'the re-read replaced the entry before it expired');
  t.equal(reads.length, 2);
});

t.test('while Postgres fails: the last settings are served without waiting, and it is asked once per half TTL', async (t) => {
  const { reads, source } = scriptedSource();
  let now = 0;
  const catalog = new EventCatalog(source, () => now, 2000);
  const refused = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const first = catalog.get('ev');
  reads[0]!.resolve(event({ admissionRate: 100 }));
  await first;
  now = 1100;
  await catalog.get('ev');
  reads[1]!.reject(refused());
  await settled();
  now = 1900;
  t.ok(await catalog.get('ev'), 'still valid: served');
  t.equal(reads.length, 2, 'no new read within half a TTL of the failure');
  now = 2150;
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 100, 'expired, and Postgres failed last: served at once…');
  t.equal(reads.length, 3, '…and a read started in the background');
  reads[2]!.reject(refused());
  await settled();
  now = 3000;
  await catalog.get('ev');
  t.equal(reads.length, 3, 'none again before half a TTL has passed');
  now = 3200;
  await catalog.get('ev');
  t.equal(reads.length, 4);
  reads[3]!.resolve(event({ admissionRate: 300 }));
  await settled();
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 300, 'Postgres answers again: its settings are served');
  now = 5300;
  const afterIdle = catalog.get('ev');
  await settled();
  t.equal(reads.length, 5, 'and an expired entry waits for a read again, as before the failures');
  reads[4]!.resolve(event({ admissionRate: 400 }));
  t.equal((await afterIdle)!.admission.ratePerS, 400);
});

t.test('a read that does not answer: waited for at most readWaitMs, then the last settings or a 503', async (t) => {
  const { reads, source } = scriptedSource();
  let now = 0;
  const catalog = new EventCatalog(source, () => now, 2000, 40);
  const first = catalog.get('ev');
  reads[0]!.resolve(event({ admissionRate: 100 }));
  await first;
  now = 2500; // expired, no request in its second half: the next one waits for a read — which hangs
  let started = performance.now();
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 100, 'the last settings, once the wait ran out');
  t.ok(performance.now() - started < 1000, 'after the read wait, not the query timeout');
  started = performance.now();
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 100, 'then served at once while the read hangs…');
  t.ok(performance.now() - started < 20);
  t.equal(reads.length, 2, '…with no second read piled on the hanging one');
  reads[1]!.resolve(event({ admissionRate: 300 }));
  await settled();
  t.equal((await catalog.get('ev'))!.admission.ratePerS, 300, 'the late answer is used');

  const unknown = catalog.get('other');
  await t.rejects(unknown, DependencyError, 'no settings known: a 503, not a hang');
});

t.test('sale state', async (t) => {
  t.equal(saleState(event(), 500), 'not-yet-open');
  t.equal(saleState(event(), 1000), 'open');
  t.equal(saleState(event(), 10_000), 'closed');
  t.equal(saleState(event({ status: 'closed' }), 5000), 'closed');
});

t.test('when a sale that is not open may have stopped selling', async (t) => {
  // Opens at 1,000, closes at 10,000.
  t.equal(saleStoppedAt(event({ updatedAt: new Date(500) }), 12_000), 10_000, 'closed on time: its closing time');
  t.equal(saleStoppedAt(event(), 12_000), 10_000, 'no change time known: its closing time');
  t.equal(saleStoppedAt(event({ status: 'closed', updatedAt: new Date(4000) }), 5000), 4000, 'closed early by status: the change');
  t.equal(
    saleStoppedAt(event({ saleClosesAt: new Date(3000), updatedAt: new Date(6000) }), 7000),
    6000,
    'its close moved into the past: it sold until the change',
  );
  t.equal(saleStoppedAt(event({ status: 'archived', updatedAt: new Date(20_000) }), 21_000), 20_000, 'archived later: the later time');
  t.equal(
    saleStoppedAt(event({ saleOpensAt: new Date(9000), updatedAt: new Date(6000) }), 7000),
    6000,
    'its opening moved later: the change',
  );
  t.equal(saleStoppedAt(event({ saleOpensAt: new Date(9000) }), 7000), -Infinity, 'not open yet, no change known: never sold');
});

t.test('ids of no event neither grow the cache without bound nor push out an event', async (t) => {
  const reads = new Map<string, number>();
  const now = 2000; // no time passes: every entry is within its TTL throughout
  const catalog = new EventCatalog(
    {
      getEvent: async (id) => {
        reads.set(id, (reads.get(id) ?? 0) + 1);
        return id === 'ev' ? event() : undefined;
      },
    },
    () => now,
    2000,
  );
  await catalog.get('ev');
  const bogus = (i: number) => `nope-${i}`;
  for (let i = 0; i < MAX_CACHED_EVENTS * 2; i++) t.equal(await catalog.get(bogus(i)), undefined);
  t.ok((await catalog.get('ev')) !== undefined);
  t.equal(reads.get('ev'), 1, 'the event is still cached: read once');
  await catalog.get(bogus(0));
  t.equal(reads.get(bogus(0)), 2, 'the oldest unknown ids were forgotten (within their TTL): read again');
  await catalog.get(bogus(MAX_CACHED_EVENTS * 2 - 1));
  t.equal(reads.get(bogus(MAX_CACHED_EVENTS * 2 - 1)), 1, 'the newest is remembered');
});
