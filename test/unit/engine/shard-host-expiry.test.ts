/**
 * Holds the actor ends on its own — those a claim finds due, those a timer expires — reach Postgres
 * in commits of at most `batchMax` holds, each hold's changes in one commit. Until 2026-12-05 they
 * went as one commit entry, so one commit, however many they were: a shard claimed with a few
 * thousand holds due committed them all at once, past the statement timeout, at every claim (ADR
 * 0006, item 4). The real decider, on an in-memory NATS and a store that records its commits.
 */
import type { NatsConnection } from 'nats';
import t, { type Test } from 'tap';
import type { ShardChange } from '../../../src/domain/commands.js';
import type { BatchWrite } from '../../../src/engine/batch-write.js';
import { EngineMetrics } from '../../../src/engine/metrics.js';
import type { ShardHost } from '../../../src/engine/shard-host.js';
import { testDecider, testShardHost } from '../../support/shard-host.js';
import { storedEvent } from '../../support/stored-event.js';

const HOLDS = 1000;
const BATCH_MAX = 64;
const TTL_MS = 100;

const event = storedEvent({
  id: 'expiry',
  displayName: 'Expiry',
  // 25 rows of 100 seats: 1,000 holds of two seats, 40 to a row, and room to spare.
  layout: { sections: [{ id: 'A', rows: Array.from({ length: 25 }, (_, r) => ({ id: String(r + 1), seats: 100 })) }], pools: [] },
  holdTtlMs: TTL_MS,
});

/**
 * A decider on a clock of the test's with `HOLDS` live holds of two seats each (decided, never
 * committed: the store below is the only one), and a host of the shard whose commits are recorded.
 */
function shardWithHolds() {
  const clock = { now: 1_000_000 };
  const commits: BatchWrite[] = [];
  const seatsOf = new Map<string, readonly string[]>();
  const hostRef: { current?: ShardHost } = {};
  const decider = testDecider(event, { now: () => clock.now, persistExpired: (changes) => hostRef.current?.persist(changes) });
  for (let i = 0; i < HOLDS; i++) {
    const seat = (n: number) => `A-${Math.floor(i / 40) + 1}-${(i % 40) * 2 + n}`;
    const { result } = decider.decide({ type: 'hold', key: `k${i}`, customer: `c${i}`, seats: [seat(1), seat(2)] });
    if (result.type !== 'held') throw new Error(`hold ${i} refused: ${result.type}`);
    seatsOf.set(result.hold.holdId, result.hold.seats);
  }
  const nc = {
    subscribe: () => ({ unsubscribe: () => undefined }),
    publish: () => undefined,
    info: undefined,
  } as unknown as NatsConnection;
  const metrics = new EngineMetrics();
  const host = testShardHost({
    eventId: event.id,
    rules: { holdTtlMs: event.holdTtlMs, customerLimit: event.customerLimit },
    batchWindowMs: 1,
    batchMax: BATCH_MAX,
    decider,
    store: {
      commitBatch: async (_event, _shard, _epoch, _limit, batch) => {
        commits.push(batch);
        return { refused: new Map() };
      },
    },
    nc,
    metrics,
    now: () => clock.now,
  });
  hostRef.current = host;
  return { clock, decider, host, commits, seatsOf, metrics };
}

/** Every hold ended once, as expired, in commits of at most BATCH_MAX holds, each with its own seats. */
async function checkCommits(
  t: Test,
  {
    commits,
    seatsOf,
    metrics,
  }: { commits: readonly BatchWrite[]; seatsOf: ReadonlyMap<string, readonly string[]>; metrics: EngineMetrics },
) {
  const sizes = commits.map((batch) => batch.holds.size);
  t.ok(
    sizes.every((n) => n <= BATCH_MAX),
    `no commit ended more than ${BATCH_MAX} holds (${commits.length} commits, the largest ${Math.max(...sizes)})`,
  );
  const ended = new Set<string>();
  let whole = true;
  for (const batch of commits) {
    const seats = new Set<string>();
    for (const hold of batch.holds.values()) {
      if (hold.ended?.reason === 'expired') ended.add(hold.holdId);
      for (const seat of seatsOf.get(hold.holdId) ?? []) seats.add(seat);
    }
    const freed = [...batch.seats.values()].filter((seat) => seat.state === 'available' && seats.has(seat.seat));
    if (freed.length !== batch.seats.size || freed.length !== seats.size) whole = false;
  }
  t.equal(ended.size, HOLDS, 'every hold ended, once, as expired');
  t.ok(whole, "each commit frees exactly the seats of the holds it ends: a hold's changes stay together");
  const { values } = await metrics.batchSize.get();
  t.equal(values.find((v) => v.metricName === 'sentinel_engine_batch_size_sum')?.value, HOLDS, 'the batch sizes count one entry per hold');
}

t.test('the holds a claim finds due are committed in commits of at most batchMax holds', async (t) => {
  const shard = shardWithHolds();
  const { clock, decider, host } = shard;
  clock.now += TTL_MS; // the shard had no owner while they came due
  const due = decider.expireNow();
  t.equal(due.filter((change: ShardChange) => change.type === 'hold-ended').length, HOLDS, 'all of them are due at the claim');
  host.start();
  host.persist(due);
  t.equal(await host.handOff(), 'handoff', 'every commit went through');
  await checkCommits(t, shard);
});

t.test('the holds one timer firing expires are committed in commits of at most batchMax holds', async (t) => {
  const shard = shardWithHolds();
  const { clock, host, commits } = shard;
  host.start();
  clock.now += TTL_MS; // the actor's timer, armed for the holds' expiry, finds all of them due at once
  const deadline = Date.now() + 5000;
  while (commits.reduce((n, batch) => n + batch.holds.size, 0) < HOLDS && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.equal(await host.handOff(), 'handoff', 'every commit went through');
  await checkCommits(t, shard);
});
