import t from 'tap';
import { AckLedger } from '../../../src/jobs/verify/ack-ledger.js';
import type { ResponseRecord } from '../../../src/jobs/stress/response-log.js';
import { Violations, KEPT_PER_CHECK } from '../../../src/jobs/verify/violations.js';
import { EXIT, verifyExitCode, type VerifyReport } from '../../../src/jobs/verify/verify.js';

let at = 1_000;
const record = (r: Partial<ResponseRecord> & Pick<ResponseRecord, 'op' | 'status' | 'customer'>): ResponseRecord => ({
  at: at++,
  run: 'r',
  event: 'ev',
  buyer: 0,
  attempt: 1,
  ms: 1,
  ...r,
});

t.test('a clean log: acknowledgements are collected, nothing is flagged', async (t) => {
  const ledger = new AckLedger('ev');
  ledger.add(record({ op: 'hold', status: 201, customer: 'a', hold: 'h1', seats: ['A-1-1'], decidedAt: 10 }));
  ledger.add(record({ op: 'confirm', status: 201, customer: 'a', hold: 'h1', reservation: 'r1', seats: ['A-1-1'], decidedAt: 20 }));
  ledger.add(
    record({ op: 'confirm', status: 201, customer: 'a', hold: 'h1', reservation: 'r1', seats: ['A-1-1'], decidedAt: 20, attempt: 2 }),
  );
  ledger.add(record({ op: 'hold', status: 409, customer: 'b', seat: 'A-1-1', ms: 3, error: 'seats-unavailable' }));
  ledger.add(record({ op: 'hold', status: 201, customer: 'c', hold: 'h2', seats: ['A-1-2'], decidedAt: 15 }));
  ledger.add(record({ op: 'release', status: 204, customer: 'c', hold: 'h2' }));
  ledger.add(record({ op: 'hold-pool', status: 201, customer: 'd', hold: 'h3', seats: [], pool: 'GA', quantity: 2, decidedAt: 30 }));
  ledger.add(record({ op: 'reserve', status: 0, customer: 'e', seat: 'A-1-3', error: 'ECONNRESET' }));
  ledger.add({ ...record({ op: 'reserve', status: 201, customer: 'x', reservation: 'rx', seats: ['A-1-1'] }), event: 'other' });
  const violations = new Violations();
  ledger.checkClientView(violations);
  t.equal(violations.total, 0);
  const counts = ledger.counts();
  t.same(counts.acknowledged, { holds: 3, reservations: 1, releases: 1 }, 'a replayed confirm is one reservation');
  t.equal(counts.other_events, 1, 'records of other events are passed over');
  t.same(counts.status, { '0': 1, '201': 5, '204': 1, '409': 1 });
  t.equal(counts.loser_latency_ms.count, 1);
  t.equal(counts.loser_latency_ms.max, 3);
});

t.test('two clients told they bought one seat is a double sale', async (t) => {
  const ledger = new AckLedger('ev');
  ledger.add(record({ op: 'reserve', status: 201, customer: 'a', hold: 'h1', reservation: 'r1', seats: ['A-1-1'], decidedAt: 10 }));
  ledger.add(record({ op: 'reserve', status: 201, customer: 'b', hold: 'h2', reservation: 'r2', seats: ['A-1-1'], decidedAt: 11 }));
  const violations = new Violations();
  ledger.checkClientView(violations);
  t.equal(violations.count('client-double-sale'), 1);
  t.match(violations.list()[0]!.message, /seat A-1-1 was sold to a \(r1\) and to b \(r2\)/);
});

t.test('a hold granted on a seat after it was sold is flagged; one granted before is not', async (t) => {
  const ledger = new AckLedger('ev');
  ledger.add(record({ op: 'hold', status: 201, customer: 'early', hold: 'h0', seats: ['A-1-1'], decidedAt: 5 }));
  ledger.add(record({ op: 'release', status: 204, customer: 'early', hold: 'h0' }));
  ledger.add(record({ op: 'hold', status: 201, customer: 'a', hold: 'h1', seats: ['A-1-1', 'A-1-2'], decidedAt: 10 }));
  ledger.add(
    record({ op: 'confirm', status: 201, customer: 'a', hold: 'h1', reservation: 'r1', seats: ['A-1-1', 'A-1-2'], decidedAt: 20 }),
  );
  ledger.add(record({ op: 'hold', status: 201, customer: 'late', hold: 'h9', seats: ['A-1-2'], decidedAt: 25 }));
  const violations = new Violations();
  ledger.checkClientView(violations);
  t.equal(violations.count('client-double-sale'), 1);
  t.match(violations.list()[0]!.message, /seat A-1-2 was sold to a \(r1\) and held 5 ms later by late \(h9\)/);
});

t.test('violations are all counted, the first few per check kept', async (t) => {
  const violations = new Violations();
  for (let i = 0; i < KEPT_PER_CHECK + 5; i++) violations.add('seat-sold-twice', `seat ${i}`);
  violations.add('customer-limit', 'x');
  t.equal(violations.total, KEPT_PER_CHECK + 6);
  t.equal(violations.count('seat-sold-twice'), KEPT_PER_CHECK + 5);
  const list = violations.list();
  t.equal(list.length, KEPT_PER_CHECK + 2);
  t.same(list.at(-1), { check: 'seat-sold-twice', message: '… and 5 more' });
});

t.test('an acknowledgement that names no hold or reservation is a violation', async (t) => {
  const ledger = new AckLedger('ev');
  ledger.add(record({ op: 'hold', status: 201, customer: 'a', seats: ['A-1-1'], decidedAt: 10 }));
  ledger.add(record({ op: 'reserve', status: 201, customer: 'b', seat: 'A-1-2', hold: 'h2', seats: ['A-1-2'], decidedAt: 11 }));
  ledger.add(record({ op: 'release', status: 204, customer: 'c' }));
  ledger.add(record({ op: 'hold', status: 409, customer: 'd', seat: 'A-1-1' }));
  const violations = new Violations();
  ledger.checkClientView(violations);
  t.equal(violations.count('ack-missing'), 3);
  t.match(violations.list()[0]!.message, /a 201 to a for hold names no hold/);
  t.match(violations.list()[1]!.message, /a 201 to b for reserve of A-1-2 names no reservation/);
  t.match(violations.list()[2]!.message, /a 204 to c for release names no hold/);
});

t.test('one id acknowledged with two different answers is a violation; the same answer replayed is not', async (t) => {
  const ledger = new AckLedger('ev');
  // The reviewer's case: one reservation id told to bob (A-1-2) and to alice (A-1-1).
  ledger.add(record({ op: 'reserve', status: 201, customer: 'bob', hold: 'h1', reservation: 'r1', seats: ['A-1-2'], decidedAt: 1 }));
  ledger.add(record({ op: 'reserve', status: 201, customer: 'alice', hold: 'h1', reservation: 'r1', seats: ['A-1-1'], decidedAt: 2 }));
  ledger.add(record({ op: 'hold-pool', status: 201, customer: 'carol', hold: 'h2', seats: [], pool: 'GA', quantity: 2, decidedAt: 3 }));
  ledger.add(record({ op: 'hold-pool', status: 201, customer: 'carol', hold: 'h2', seats: [], pool: 'GA', quantity: 3, decidedAt: 3 }));
  ledger.add(record({ op: 'release', status: 204, customer: 'dan', hold: 'h3' }));
  ledger.add(record({ op: 'release', status: 204, customer: 'eve', hold: 'h3' }));
  // Replays: the same answer again (a retry with the same key, a repeated DELETE) is one answer.
  ledger.add(record({ op: 'hold', status: 201, customer: 'fay', hold: 'h4', seats: ['A-2-1', 'A-2-2'], decidedAt: 4 }));
  ledger.add(record({ op: 'hold', status: 201, customer: 'fay', hold: 'h4', seats: ['A-2-2', 'A-2-1'], decidedAt: 4, attempt: 2 }));
  ledger.add(record({ op: 'release', status: 204, customer: 'fay', hold: 'h4', at: 900 }));
  ledger.add(record({ op: 'release', status: 204, customer: 'fay', hold: 'h4', at: 800 }));
  const violations = new Violations();
  ledger.checkClientView(violations);
  t.equal(violations.count('ack-missing'), 3, JSON.stringify(violations.list()));
  t.equal(violations.count('client-double-sale'), 0, 'two answers for one reservation are a conflict, not two sales');
  const messages = violations
    .list()
    .map((v) => v.message)
    .join('\n');
  t.match(messages, /hold h2 was acknowledged \(201\) differently: to carol \(2 × GA\) and to carol \(3 × GA\)/);
  t.match(
    messages,
    /reservation r1 was acknowledged \(201\) differently: to bob \(seats A-1-2, hold h1\) and to alice \(seats A-1-1, hold h1\)/,
  );
  t.match(messages, /hold h3 was released \(204\) to dan and eve: it has one owner/);
  t.same(ledger.counts().acknowledged, { holds: 2, reservations: 1, releases: 2 }, 'ids, not answers');
  t.same(
    [...ledger.reservations.entries()].map(([id, r]) => [id, r.customer]),
    [
      ['r1', 'bob'],
      ['r1', 'alice'],
    ],
    'both answers are kept, to be checked against Postgres',
  );
  t.equal([...ledger.releases.entries()].find(([id]) => id === 'h4')![1].at, 800, 'of a replayed 204, the earliest arrival is kept');
});

t.test('records of other events are passed over and said so', async (t) => {
  const ledger = new AckLedger('ev');
  t.equal(
    ledger.add({ ...record({ op: 'reserve', status: 201, customer: 'x', reservation: 'rx', seats: ['A-1-1'] }), event: 'other' }),
    false,
  );
  t.equal(ledger.add(record({ op: 'hold', status: 409, customer: 'y', seat: 'A-1-1' })), true);
  t.match(ledger.counts(), { lines: 2, other_events: 1 });
});

t.test('exit codes: 1 on any violation, else 3 when a check could not be made, else 0', async (t) => {
  const report = (violations: number, notChecked: string[]) =>
    ({ counts: { violations }, not_checked: notChecked }) as unknown as VerifyReport;
  t.equal(verifyExitCode(report(0, [])), EXIT.ok);
  t.equal(verifyExitCode(report(2, [])), EXIT.violations);
  t.equal(verifyExitCode(report(2, ['the response logs are empty'])), EXIT.violations);
  t.equal(verifyExitCode(report(0, ['the response logs are empty'])), EXIT.notChecked);
  t.same(EXIT, { ok: 0, violations: 1, usage: 2, notChecked: 3 });
});

t.test("a request's refusal is its last attempt's answer, and only the inventory's refusals count", async (t) => {
  const ledger = new AckLedger('ev');
  const reserve = { op: 'reserve', customer: 'a', seat: 'A-1-1' } as const;
  // Refused after a timeout: judged (the timeout may have been carried out).
  ledger.add(record({ ...reserve, key: 'k1', status: 503, error: 'shard-unavailable' }));
  ledger.add(record({ ...reserve, key: 'k1', status: 409, error: 'seats-unavailable', attempt: 2 }));
  // A retry that got the seat: no refusal, whichever order the lines come in.
  ledger.add(record({ ...reserve, key: 'k2', status: 201, hold: 'h2', reservation: 'r2', seats: ['A-1-1'], attempt: 2 }));
  ledger.add(record({ ...reserve, key: 'k2', status: 409, error: 'idempotency-key-in-use' }));
  // The same key of another customer is another request.
  ledger.add(record({ ...reserve, customer: 'b', key: 'k1', status: 422, error: 'limit-exceeded' }));
  // Answers that say nothing of whether it was done: no refusal.
  ledger.add(record({ ...reserve, key: 'k3', status: 409, error: 'idempotency-key-in-use' }));
  ledger.add(record({ ...reserve, key: 'k4', status: 429, error: 'too-many-requests' }));
  ledger.add(record({ ...reserve, key: 'k5', status: 0, error: 'ECONNRESET' }));
  t.same(
    [...ledger.refusals()].map((r) => [r.customer, r.key, r.status, r.error, r.attempt]),
    [
      ['a', 'k1', 409, 'seats-unavailable', 2],
      ['b', 'k1', 422, 'limit-exceeded', 1],
    ],
  );
  t.equal(ledger.counts().refused, 2);
  // A DELETE sends no key: its refusal is not judged, and does not make the check incomplete.
  ledger.add(record({ op: 'release', customer: 'a', hold: 'h9', status: 409, error: 'sale-not-open' }));
  t.equal(ledger.refusalsUnjudged(), undefined);
  ledger.add(record({ ...reserve, status: 409, error: 'seats-unavailable' }));
  t.match(ledger.refusalsUnjudged(), /^1 refusals in the response logs carry no Idempotency-Key/);
});
