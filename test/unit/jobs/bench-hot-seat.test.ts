/** The bench's hot-seat targets are judged on every Sentinel run, not only the median one. */
import t from 'tap';
import { hotSeatLatencyTarget, hotSeatStatusTarget } from '../../../bench/hot-seat.js';

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

t.test('every run must have its p99 within the bound: a slow first rush fails it though the median run is fast', async (t) => {
  const run = (p99: number) => ({ latency_ms: { p99 } });
  t.same(hotSeatLatencyTarget([run(297.4), run(121), run(142)], 250), {
    target: '(a) p99 ≤ 250 ms, on every run',
    met: false,
    value: 'p99s 297, 121, 142 ms: met in 2 of 3',
  });
  t.same(hotSeatLatencyTarget([run(250), run(120)], 250), {
    target: '(a) p99 ≤ 250 ms, on every run',
    met: true,
    value: 'p99s 250, 120 ms: met in 2 of 2',
  });
  t.match(hotSeatLatencyTarget([run(250.4)], 250), { met: false, value: 'p99s 250 ms: met in 0 of 1' }, 'judged before rounding');
  t.match(hotSeatLatencyTarget([], 250), { met: false, value: 'no run' });
});
