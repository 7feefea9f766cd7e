import t from 'tap';
import fc from 'fast-check';
import { bucketOf, bucketRange, LatencyHistogram, nearestRank, percentileOfSorted } from '../../../src/jobs/stress/histogram.js';
import { countsOf, StressStats } from '../../../src/jobs/stress/stats.js';

t.test('nearest-rank percentiles of sorted values', async (t) => {
  const values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  t.equal(percentileOfSorted(values, 50), 5);
  t.equal(percentileOfSorted(values, 90), 9);
  t.equal(percentileOfSorted(values, 99), 10);
  t.equal(percentileOfSorted(values, 100), 10);
  t.equal(percentileOfSorted(values, 0), 1, 'p0 is the minimum');
  t.equal(percentileOfSorted([42], 99), 42);
  t.equal(percentileOfSorted([], 50), 0);
  // 1,000 values 1..1000: p99 is the 990th.
  t.equal(
    percentileOfSorted(
      Array.from({ length: 1000 }, (_, i) => i + 1),
      99,
    ),
    990,
  );
});

t.test('a percentile whose rank is whole is that rank, not one above it (floating point)', async (t) => {
  // (99.9 / 100) * 1000 is 999.0000000000001 in floating point: p99.9 was the 1,000th value, the maximum.
  const thousand = Array.from({ length: 1000 }, (_, i) => i + 1);
  t.equal(percentileOfSorted(thousand, 99.9), 999);
  t.equal(nearestRank(99.9, 3000), 2997);
  t.equal(nearestRank(99.9, 7), 7);
  const outlier = new LatencyHistogram();
  for (let i = 0; i < 999; i++) outlier.recordUs(1000);
  outlier.recordUs(900_000_000);
  t.ok(outlier.percentileUs(99.9) < 1100, 'one outlier in 1,000 is not the p99.9 of the histogram either (its bucket of 1 ms)');
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom(50, 90, 99, 99.9, 99.99), (n, q) => {
      const rank = nearestRank(q, n);
      // The smallest rank r with r / n ≥ q / 100, in exact integer arithmetic.
      const scaled = Math.round(q * 100);
      return rank * 10_000 >= scaled * n && (rank === 1 || (rank - 1) * 10_000 < scaled * n);
    }),
  );
});

t.test('buckets cover every value exactly once and bound the relative error', async (t) => {
  let previousHigh = -1;
  for (let bucket = 0; bucket < bucketOf(2 ** 31 - 1) + 1; bucket++) {
    const { low, high } = bucketRange(bucket);
    if (low !== previousHigh + 1) t.fail(`bucket ${bucket} starts at ${low}, previous ended at ${previousHigh}`);
    if (bucketOf(low) !== bucket || bucketOf(high) !== bucket) t.fail(`bucket ${bucket} [${low}, ${high}] does not map back`);
    if (low >= 128 && (high - low + 1) / low > 1 / 64 + 1e-12) t.fail(`bucket ${bucket} is wider than 1/64 of its values`);
    previousHigh = high;
  }
  t.equal(previousHigh, 2 ** 31 - 1, 'the buckets reach 2^31 - 1 µs');
  t.equal(bucketOf(0), 0);
  t.equal(bucketOf(127), 127, 'below 128 µs values are exact');
  t.equal(bucketOf(2 ** 40), bucketOf(2 ** 31 - 1), 'larger values clamp into the top bucket');
});

t.test('histogram percentiles are within 1 % of the exact ones', async () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 5_000_000 }), { minLength: 1, maxLength: 2000 }), (values) => {
      const h = new LatencyHistogram();
      for (const v of values) h.recordUs(v);
      const sorted = Float64Array.from(values).sort();
      for (const q of [0, 1, 50, 90, 99, 99.9, 100]) {
        const exact = percentileOfSorted(sorted, q);
        const approx = h.percentileUs(q);
        if (Math.abs(approx - exact) > Math.max(1, exact / 100)) return false;
      }
      return h.count === values.length && h.percentileUs(100) === sorted[sorted.length - 1];
    }),
    { numRuns: 200 },
  );
});

t.test('summary in milliseconds: exact min, max and mean', async (t) => {
  const h = new LatencyHistogram();
  for (const ms of [1, 2, 3, 4, 100]) h.recordMs(ms);
  const s = h.summary();
  t.equal(s.count, 5);
  t.equal(s.min, 1);
  t.equal(s.max, 100);
  t.equal(s.mean, 22);
  t.ok(Math.abs(s.p50 - 3) <= 0.03, `p50 ${s.p50} ≈ 3`);
  t.equal(s.p99, 100, 'p99 of five values is the largest');
  t.same(new LatencyHistogram().summary(), { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 });
});

t.test('merge adds distributions', async (t) => {
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  for (let i = 1; i <= 100; i++) a.recordUs(i);
  for (let i = 101; i <= 200; i++) b.recordUs(i * 1000);
  a.merge(b);
  t.equal(a.count, 200);
  t.equal(a.summary().max, 200);
  t.equal(a.summary().min, 0.001);
  t.ok(Math.abs(a.percentileUs(75) - 150_000) <= 1500);
});

t.test('stress latency counts timeouts and resets in full; attempts the run cut short are only counted apart', async (t) => {
  const stats = new StressStats();
  stats.restart();
  const now = Date.now();
  for (let i = 0; i < 3; i++) stats.attempt('reserve', 201, 8, now, undefined, false);
  stats.attempt('reserve', 0, 300, now, 'ETIMEDOUT', false);
  stats.attempt('reserve', 0, 2, now, 'ECONNRESET', true);
  stats.attempt('reserve', 0, 50, now, 'ABORTED', false);
  stats.attempt('reserve', 0, 70, now, 'ABORTED', true);
  const latency = stats.latency.summary();
  t.equal(latency.count, 5, 'answers, the timeout and the reset');
  t.ok(latency.max >= 299, `the timeout is the slowest attempt (${latency.max} ms), not hidden`);
  t.equal(stats.latencyByOp()['reserve']?.count, 5);
  t.equal(stats.requests, 5, 'the attempts the run cut are not requests');
  t.equal(stats.cut, 2, '…but counted as cut');
  t.equal(stats.retries, 1);
  t.same(countsOf(stats.statuses), { '0': 2, '201': 3 }, 'nor statuses');
  t.same(countsOf(stats.errors), { ECONNRESET: 1, ETIMEDOUT: 1 }, 'nor errors');
  const failed = stats.timeline.reduce((sum, slot) => sum + slot.failed, 0);
  t.equal(failed, 2, 'nor failures in the timeline (chaos would blame them on a fault)');
});
