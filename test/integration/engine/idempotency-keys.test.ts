import t from 'tap';
import { InventoryStore } from '../../../src/adapters/postgres/inventory-store.js';
import { emptyBatchWrite, type BatchWrite } from '../../../src/engine/batch-write.js';
import { seatsUnavailable, type ShardResult } from '../../../src/domain/commands.js';
import { provisionTestEvent, testDatabase, testLayout } from '../../support/stack.js';

/** A batch that only records idempotency results. */
function records(...entries: { key: string; customer: string; result: ShardResult; at: number }[]): BatchWrite {
  return { ...emptyBatchWrite(), idempotency: entries.map((e) => ({ ...e, fingerprint: `fp-${e.at}` })) };
}

const released = (holdId: string): ShardResult => ({ ok: true, type: 'released', holdId });

t.test('a shard key is recorded per customer, and a newer result of a key replaces an older one', async (t) => {
  const pool = await testDatabase();
  t.teardown(() => pool.end());
  const spec = await provisionTestEvent(pool, { shardCount: 1, layout: testLayout({ rows: 1, seats: 4 }) });
  const store = new InventoryStore(pool);
  const epoch = await store.claimShard(spec.eventId, 0, 'owner');
  const commit = (batch: BatchWrite) => store.commitBatch(spec.eventId, 0, epoch, 8, batch, 'sentinel.reservations');
  const dayAgo = Date.now() - 86_400_000;
  const now = Date.now();

  await commit(records({ key: 'k', customer: 'alice', result: released('old'), at: dayAgo }));
  // The same key a day later, decided afresh by a shard whose memory no longer held it; and the same
  // raw key from another customer.
  await commit(
    records(
      { key: 'k', customer: 'alice', result: released('new'), at: now },
      { key: 'k', customer: 'bob', result: released('bob'), at: now },
    ),
  );
  const since = new Date(now - 60_000);
  const loaded = (await store.loadShard(spec.eventId, 0, since)).idempotency;
  t.same(
    loaded.map((r) => [r.customer, r.key, r.result]).sort(),
    [
      ['alice', 'k', released('new')],
      ['bob', 'k', released('bob')],
    ],
    'a take-over replays the newer result to alice, and bob has his own',
  );

  // An older result arriving late never replaces a newer one; duplicates within a batch keep the newest.
  await commit(
    records(
      { key: 'k', customer: 'alice', result: seatsUnavailable(['A-1-1']), at: now - 1000 },
      { key: 'k2', customer: 'alice', result: released('first'), at: now },
      { key: 'k2', customer: 'alice', result: released('second'), at: now + 1 },
    ),
  );
  const again = (await store.loadShard(spec.eventId, 0, since)).idempotency;
  t.same(again.find((r) => r.key === 'k' && r.customer === 'alice')?.result, released('new'));
  t.same(again.find((r) => r.key === 'k2')?.result, released('second'));
});
