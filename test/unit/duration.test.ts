import t from 'tap';
import { parseDuration } from '../../src/duration.js';

const all = ['ms', 's', 'm', 'h', 'd'] as const;

t.test('a number and a unit, in milliseconds', async (t) => {
  t.same(parseDuration('250ms', { units: all }), { ms: 250, exact: true });
  t.same(parseDuration('1.5s', { units: all }), { ms: 1500, exact: true });
  t.same(parseDuration(' 2m ', { units: all }), { ms: 120_000, exact: true });
  t.same(parseDuration('1h', { units: all }), { ms: 3_600_000, exact: true });
  t.same(parseDuration('7d', { units: all }), { ms: 604_800_000, exact: true });
  t.same(parseDuration('0.0004s', { units: all }), { ms: 0, exact: false }, 'rounded; bounds are the caller’s');
  t.same(parseDuration('1.0004s', { units: all }), { ms: 1000, exact: false }, 'rounded, and says so');
  t.same(
    parseDuration('4.35m', { units: all }),
    { ms: 261_000, exact: true },
    'exact from the digits, not the float (4.35 × 60000 = 260999.99999999997)',
  );
  t.same(parseDuration('1.25ms', { units: all }), { ms: 1, exact: false });
  t.same(parseDuration('2.000s', { units: all }), { ms: 2000, exact: true });
});

t.test('a bare number is in the unit the caller names, or refused as bare', async (t) => {
  t.same(parseDuration('30', { bare: 's', units: all }), { ms: 30_000, exact: true });
  t.same(parseDuration('30', { bare: 'ms', units: all }), { ms: 30, exact: true });
  t.same(parseDuration('30', { units: all }), { error: 'bare' });
});

t.test('anything else is refused: units the caller does not take, signs, words', async (t) => {
  t.same(parseDuration('5d', { units: ['ms', 's', 'm', 'h'] }), { error: 'form' });
  t.same(parseDuration('500ms', { bare: 's', units: ['s', 'm', 'h', 'd'] }), { error: 'form' });
  for (const text of ['-5s', '+5s', '5 s', 's', '', '1e3ms', '5sec', 'soon', '1.s'])
    t.same(parseDuration(text, { bare: 's', units: all }), { error: 'form' }, JSON.stringify(text));
});
