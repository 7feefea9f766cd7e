/**
 * Reading response logs: every line must be a response record, and every log must hold a record
 * of the event; otherwise the acknowledgement checks are "not checked", with the file and line —
 * never a silent pass, never a crash. A log that cannot be opened is a usage error.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { UsageError } from '../../../src/jobs/options.js';
import { responseRecordProblem } from '../../../src/jobs/stress/response-log.js';
import { AckLedger } from '../../../src/jobs/verify/ack-ledger.js';
import { replayResponseLogs } from '../../../src/jobs/verify/log-replay.js';

const dir = mkdtempSync(join(tmpdir(), 'log-replay-test-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const base = { at: 1, run: 'r', event: 'ev', buyer: 0, attempt: 1, ms: 1, customer: 'c', op: 'hold', status: 409 };
const line = (r: object = {}) => JSON.stringify({ ...base, ...r });
const good = file('good.jsonl', `${line({ status: 201, hold: 'h1', seats: ['A-1-1'], decidedAt: 1 })}\n${line()}\n`);

t.test('a record is recognised field by field, and what is wrong is named', async (t) => {
  t.equal(responseRecordProblem(JSON.parse(line())), undefined);
  t.equal(responseRecordProblem({ ...base, extra: 'allowed' }), undefined, 'fields the record does not know are allowed');
  const problems: [unknown, RegExp][] = [
    [null, /not a JSON object \(null\)/],
    [[base], /not a JSON object/],
    [42, /not a JSON object \(42\)/],
    [{}, /no "at"/],
    [{ eventId: 'e1', status: '201', op: 'hold', holdId: 'h-missing' }, /no "at"/],
    [{ ...base, event: undefined }, /no "event"/],
    [{ ...base, event: 7 }, /"event" is not a string \(7\)/],
    [{ ...base, status: '201' }, /"status" is not an integer \("201"\)/],
    [{ ...base, status: 201.5 }, /"status" is not an integer/],
    [{ ...base, op: 'buy' }, /"op" is not one of reserve, hold, hold-best, hold-pool, confirm, release \("buy"\)/],
    [{ ...base, at: '2026-01-01' }, /"at" is not a number \(epoch ms\)/],
    [{ ...base, seats: ['A-1-1', 2] }, /"seats" is not a list of strings/],
    [{ ...base, quantity: null }, /"quantity" is not an integer \(null\)/],
    [{ ...base, hold: 5 }, /"hold" is not a string/],
  ];
  for (const [value, problem] of problems) t.match(responseRecordProblem(value), problem, JSON.stringify(value));
});

t.test('logs read whole, each with records of the event: nothing to report', async (t) => {
  const ledger = new AckLedger('ev');
  t.same(await replayResponseLogs([good, file('more.jsonl', `\n${line({ customer: 'd' })}\n\n`)], ledger), []);
  t.equal(ledger.counts().lines, 3, 'blank lines are skipped');
});

t.test('an empty log, or one of another event, is named even beside a good one', async (t) => {
  const empty = file('empty.jsonl', '');
  const others = file('others.jsonl', `${line({ event: 'other' })}\n`);
  const ledger = new AckLedger('ev');
  const seen: string[] = [];
  t.same(await replayResponseLogs([good, empty, others], ledger, (m) => seen.push(m)), [
    `the response log ${empty} is empty`,
    `the response log ${others} holds no record of event ev (1 lines, all of other events)`,
  ]);
  t.same(seen, [`reading ${good}`, `reading ${empty}`, `reading ${others}`]);
  t.equal(ledger.counts().acknowledged.holds, 1, 'the good log is read all the same');
});

t.test('a line that is not a response record: its file and line, and the rest is still read', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['null.jsonl', 'null\n', /null\.jsonl:1: not a JSON object \(null\): not a response record/],
    [
      'junk.jsonl',
      '{}\n{"eventId":"ev","status":"201","op":"hold","holdId":"h-missing"}\n',
      /junk\.jsonl:1: no "at" \(and 1 more such lines\)/,
    ],
    ['cut.jsonl', `${line()}\n{"at":1,"run":"x","eve`, /cut\.jsonl:2: not a JSON line \(cut off\?\)/],
    ['no-event.jsonl', `${line()}\n${line({ event: undefined, status: 201, hold: 'h9' })}\n`, /no-event\.jsonl:2: no "event"/],
  ];
  for (const [name, text, why] of cases) {
    const ledger = new AckLedger('ev');
    const reasons = await replayResponseLogs([good, file(name, text)], ledger);
    t.equal(reasons.length, 1, name);
    t.match(reasons[0], why, name);
    t.equal(ledger.counts().acknowledged.holds, 1, `${name}: a record without "event" is not taken for this event's`);
  }
});

t.test('a log that cannot be opened is a usage error', async (t) => {
  await t.rejects(replayResponseLogs([join(dir, 'missing.jsonl')], new AckLedger('ev')), UsageError);
  await t.rejects(replayResponseLogs([dir], new AckLedger('ev')), { message: /cannot read the response log .*: not a file/ });
});
