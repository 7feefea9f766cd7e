import t from 'tap';
import { parseDurationMs, parseDurationRange, parseInteger, parseRange, UsageError } from '../../../src/jobs/options.js';

t.test('a duration range: one unit for both bounds (ms when none), fractions rounded to ms', async (t) => {
  t.same(parseDurationRange('200-1000ms', 'think'), { min: 200, max: 1000 });
  t.same(parseDurationRange('1-2s', 'think'), { min: 1000, max: 2000 });
  t.same(parseDurationRange('0.5-1.5m', 'think'), { min: 30_000, max: 90_000 });
  t.same(parseDurationRange('250', 'think'), { min: 250, max: 250 }, 'one bare number: both bounds, in ms');
  t.same(parseDurationRange(' 0-0 ', 'think'), { min: 0, max: 0 });
  t.same(parseDurationRange('1.0004s', 'think'), { min: 1000, max: 1000 });
});

t.test('a duration range that cannot be used is a usage error naming the flag', async (t) => {
  for (const text of ['', 'fast', '-1-2s', '1s-2s', '1-2h', '1-2 s', '1--2', '2-1s', '1-2ms3']) {
    t.throws(() => parseDurationRange(text, 'think'), UsageError, JSON.stringify(text));
    t.throws(() => parseDurationRange(text, 'think'), /--think/, `${JSON.stringify(text)} names the flag`);
  }
  t.throws(() => parseDurationRange('2-1s', 'think'), /must not be decreasing/);
});

t.test('durations, integers and ranges', async (t) => {
  t.equal(parseDurationMs('15', 'grace'), 15_000, 'a bare number is seconds');
  t.equal(parseDurationMs('500ms', 'grace'), 500);
  t.equal(parseDurationMs('2m', 'grace'), 120_000);
  t.throws(() => parseDurationMs('2d', 'grace'), /--grace must be a duration/);
  t.equal(parseInteger('10_000', 'buyers', 1), 10_000);
  t.throws(() => parseInteger('0', 'buyers', 1), /--buyers must be an integer in \[1, /);
  t.same(parseRange('3', 'seats', 1), { min: 3, max: 3 });
  t.same(parseRange('1-4', 'seats', 1), { min: 1, max: 4 });
  t.throws(() => parseRange('4-1', 'seats', 1), /need 1 ≤ MIN ≤ MAX/);
});
