import t from 'tap';
import { fingerprintOf, idempotencyScope, type IdempotencyRecord, type ShardResult } from '../../../src/domain/index.js';
import { IdempotencyMemory } from '../../../src/domain/idempotency.js';

const ok: ShardResult = { ok: true, type: 'released', holdId: 'h' };
const failed: ShardResult = { ok: false, type: 'unavailable', seats: ['A-1-1'], message: 'taken' };
const success = (key: string, at: number): IdempotencyRecord => ({ key, customer: 'c', fingerprint: 'f', result: ok, at });

t.test('fingerprints tell different commands apart and ignore key and customer', async (t) => {
  const prints = [
    fingerprintOf({ type: 'hold', key: 'k', customer: 'c', seats: ['A-1-1'] }),
    fingerprintOf({ type: 'hold', key: 'k', customer: 'c', seats: ['A-1-1', 'A-1-2'] }),
    fingerprintOf({ type: 'reserve', key: 'k', customer: 'c', seat: 'A-1-1' }),
    fingerprintOf({ type: 'hold-best', key: 'k', customer: 'c', section: 'A', quantity: 2 }),
    fingerprintOf({ type: 'hold-best', key: 'k', customer: 'c', section: 'A', quantity: 2, strictOrphans: true }),
    fingerprintOf({ type: 'hold-pool', key: 'k', customer: 'c', pool: 'A', quantity: 2 }),
    fingerprintOf({ type: 'confirm', key: 'k', customer: 'c', holdId: 'h1' }),
    fingerprintOf({ type: 'release', key: 'k', customer: 'c', holdId: 'h1' }),
  ];
  t.equal(new Set(prints).size, prints.length);
  t.equal(
    fingerprintOf({ type: 'hold-best', key: 'x', customer: 'y', section: 'A', quantity: 2, strictOrphans: false }),
    prints[3],
    'strictOrphans false is the default',
  );
  t.not(idempotencyScope('a', 'bc'), idempotencyScope('ab', 'c'));
});

const failure = (customer: string, at: number) => ({ customer, fingerprint: 'f', result: failed, at });

t.test('successes and failures are remembered until their TTL', async (t) => {
  const memory = new IdempotencyMemory(100, 10, 10);
  memory.rememberSuccess(success('k1', 0));
  memory.rememberFailure('k2', failure('c', 50));
  t.equal(memory.lookup('c', 'k1', 99)?.result, ok);
  t.equal(memory.lookup('c', 'k1', 100), undefined, 'gone at at + TTL');
  t.equal(memory.lookup('c', 'k2', 149)?.result, failed);
  memory.prune(150);
  t.same(memory.size, { successes: 0, failures: 0 });
});

t.test('keys are per customer, even when two customers pick the same key', async (t) => {
  const memory = new IdempotencyMemory(1000, 10, 10);
  memory.rememberSuccess(success('k', 0));
  memory.rememberFailure('k', failure('other', 1));
  memory.rememberSuccess({ ...success('k', 2), customer: 'third' });
  t.equal(memory.lookup('c', 'k', 5)?.customer, 'c');
  t.equal(memory.lookup('other', 'k', 5)?.customer, 'other');
  t.equal(memory.lookup('third', 'k', 5)?.customer, 'third');
  t.equal(memory.lookup('nobody', 'k', 5), undefined);
  t.same(memory.size, { successes: 2, failures: 1 });
  memory.forget('c', 'k');
  t.equal(memory.lookup('c', 'k', 5), undefined);
  t.equal(memory.lookup('third', 'k', 5)?.customer, 'third', 'the others survive the first one leaving');
  t.same(
    [...memory.successRecords()].map((r) => r.customer),
    ['third'],
  );
});

t.test('failures are bounded by a ring; successes by their own cap', async (t) => {
  const memory = new IdempotencyMemory(1_000_000, 3, 2);
  memory.rememberSuccess(success('s1', 0));
  for (let i = 0; i < 5; i++) memory.rememberFailure(`f${i}`, failure('c', i));
  t.same(memory.size, { successes: 1, failures: 2 });
  t.equal(memory.lookup('c', 'f3', 10)?.result, failed);
  t.equal(memory.lookup('c', 'f2', 10), undefined, 'the oldest failures went first');
  t.equal(memory.lookup('c', 's1', 10)?.result, ok, 'successes are never evicted for failures');
  for (let i = 2; i <= 4; i++) memory.rememberSuccess(success(`s${i}`, i));
  t.same(memory.size, { successes: 3, failures: 2 });
  t.equal(memory.lookup('c', 's1', 10), undefined, 'the oldest success went over the cap');
  memory.forget('c', 's4');
  t.equal(memory.lookup('c', 's4', 10), undefined);
  memory.forget('c', 'f4');
  t.equal(memory.lookup('c', 'f4', 10)?.result, failed, 'forget() is for aborted successes only');
  t.same(
    [...memory.successRecords()].map((r) => r.key),
    ['s2', 's3'],
  );
});

t.test('successes over the cap are forgotten a sixteenth at a time, oldest first', async (t) => {
  const memory = new IdempotencyMemory(1_000_000, 1600, 10);
  for (let i = 0; i <= 1600; i++) memory.rememberSuccess(success(`s${i}`, i));
  t.equal(memory.size.successes, 1500, 'down to 15/16 of the cap');
  t.equal(memory.lookup('c', 's100', 2000), undefined, 'the oldest went');
  t.equal(memory.lookup('c', 's101', 2000)?.result, ok, 'the rest stayed');

  // The oldest of all, also when it is a second customer's under a reused key (kept in a side map).
  const reused = new IdempotencyMemory(1_000_000, 2, 10);
  reused.rememberSuccess({ ...success('k1', 1), customer: 'c1' });
  reused.rememberSuccess({ ...success('k1', 2), customer: 'c2' });
  reused.forget('c1', 'k1');
  reused.rememberSuccess(success('k5', 3));
  reused.rememberSuccess(success('k6', 4));
  t.equal(reused.lookup('c2', 'k1', 10), undefined, "the second customer's older success went");
  t.equal(reused.lookup('c', 'k5', 10)?.result, ok, 'not the newer one');
  t.equal(reused.lookup('c', 'k6', 10)?.result, ok);
});

t.test('a failure memory of size 0 remembers nothing', async (t) => {
  const memory = new IdempotencyMemory(1000, 10, 0);
  memory.rememberFailure('f', failure('c', 0));
  t.equal(memory.lookup('c', 'f', 1), undefined);
});
