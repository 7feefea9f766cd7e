/**
 * How the outbox relay paces its rounds, against a stand-in for Postgres and Kafka (what it
 * publishes is covered against the real ones in test/integration/engine/outbox-relay.test.ts).
 */
import type pg from 'pg';
import t from 'tap';
import { OutboxRelay, type RelayProducer } from '../../../src/engine/outbox-relay.js';
import { silentLogger } from '../../../src/log.js';

/** An outbox that hands out `pending` rows at the next claim, recording when it was looked at and claimed from. */
function fakeOutbox(onClaim: (claims: number) => void = () => undefined) {
  const state = { pending: 0, claims: [] as number[], looks: 0 };
  const client = {
    async query(text: string) {
      if (!text.startsWith('SELECT id')) return { rows: [] };
      state.claims.push(performance.now());
      const rows = Array.from({ length: state.pending }, (_, i) => ({ id: String(i), message_key: `k${i}`, payload: {} }));
      state.pending = 0;
      onClaim(state.claims.length);
      return { rows };
    },
    release: () => undefined,
    listeners: () => [],
    on: () => undefined,
  };
  const pool = {
    async query() {
      state.looks++;
      return { rows: [{ pending: state.pending > 0 }] };
    },
    connect: async () => client,
  } as unknown as pg.Pool;
  return { state, pool };
}

/** A producer session that acknowledges every partition it is sent to. */
const producer: RelayProducer = {
  partitions: 3,
  send: async ({ topic, messages }) =>
    [...new Set(messages.map((m) => m.partition!))].map((partition) => ({ topicName: topic, partition, errorCode: 0 })),
  disconnect: async () => undefined,
};
const until = async (what: string, check: () => boolean, ms = 3000) => {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

function relayOn(pool: pg.Pool, pauseMs: number) {
  return new OutboxRelay({
    pool,
    connect: async () => producer,
    topic: 'reservations',
    log: silentLogger,
    options: { batchSize: 100, pauseMs, idleMs: 60_000, maxBackoffMs: 60_000 },
  });
}

t.test('a commit announced while a round finds nothing sends the relay round again at once, not after idleMs', async (t) => {
  const announce: { to?: OutboxRelay } = {};
  const { state, pool } = fakeOutbox((claims) => {
    if (claims === 1) {
      // The commit lands just after the round's read, and announces itself.
      state.pending = 1;
      announce.to?.notify();
    }
  });
  const relay = relayOn(pool, 50);
  announce.to = relay;
  relay.start();
  t.teardown(() => relay.stop());
  await until('a second claim (idleMs is a minute)', () => state.claims.length >= 2);
  t.equal(relay.published, 1, 'the announced row went out');
});

t.test('an idle relay looks before it claims, and is woken by a commit', async (t) => {
  const { state, pool } = fakeOutbox();
  const relay = relayOn(pool, 50);
  relay.start();
  t.teardown(() => relay.stop());
  await until('the first claim', () => state.claims.length === 1);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(state.claims.length, 1, 'nothing found: it sleeps');
  state.pending = 2;
  relay.notify();
  await until('the rows published', () => relay.published === 2);
  t.ok(state.looks >= 1, 'it looked before it claimed');
});

t.test('the pause after a round that published is not cut short by commits', async (t) => {
  const { state, pool } = fakeOutbox();
  state.pending = 1;
  const relay = relayOn(pool, 400);
  relay.start();
  t.teardown(() => relay.stop());
  await until('the first claim', () => state.claims.length === 1);
  state.pending = 1;
  const nudges = setInterval(() => relay.notify(), 20); // commits keep landing
  await until('the second claim', () => state.claims.length === 2);
  clearInterval(nudges);
  const gap = state.claims[1]! - state.claims[0]!;
  t.ok(gap >= 380, `the next round waited the pause out (${Math.round(gap)} ms)`);
});

t.test('stop ends any sleep at once', async (t) => {
  const { state, pool } = fakeOutbox();
  const relay = relayOn(pool, 60_000);
  state.pending = 1;
  relay.start();
  await until('the first claim', () => state.claims.length === 1);
  await new Promise((resolve) => setTimeout(resolve, 20)); // in its (unwakeable) pause
  const stopping = performance.now();
  await relay.stop();
  t.ok(performance.now() - stopping < 1000, 'stopped without waiting the pause out');
});
