/** The bench's hot-seat status target is judged on every Sentinel run, not only the median one. */
import t from 'tap';
import { hotSeatStatusTarget } from '../../../bench/hot-seat.js';

const clean = { status: { '201': 1, '409': 9999 } };

t.test('every run must have exactly one 201, the rest 409, and nothing else', async (t) => {
  t.match(hotSeatStatusTarget([clean, clean, clean], 10_000), { met: true });
  t.notOk('value' in hotSeatStatusTarget([clean], 10_000), 'nothing to add when met');
  // The median run by p99 could well be a clean one: the run with a 5xx, or two winners, fails the target all the same.
  const with5xx = { status: { '201': 1, '409': 9998, '503': 1 } };
  t.same(hotSeatStatusTarget([clean, with5xx, clean], 10_000), {
    target: '(a) exactly one 201, the rest 409, no 5xx, on every run',
    met: false,
    value: 'run 2 of 3: {"201":1,"409":9998,"503":1}',
  });
  const twoWinners = { status: { '201': 2, '409': 9998 } };
  t.match(hotSeatStatusTarget([twoWinners, clean, with5xx], 10_000), {
    met: false,
    value: 'run 1 of 3: {"201":2,"409":9998}; run 3 of 3: {"201":1,"409":9998,"503":1}',
  });
  t.match(hotSeatStatusTarget([{ status: { '201': 1, '409': 9998 } }], 10_000), { met: false }, 'a buyer missing');
  t.match(hotSeatStatusTarget([], 10_000), { met: false, value: 'no run' });
});
