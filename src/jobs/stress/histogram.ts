/**
 * Latency statistics. A load generator records hundreds of thousands of latencies while it competes
 * for the CPU with the system under test, so it keeps a fixed-size log-linear histogram (the
 * HdrHistogram layout): values below 128 µs are exact, above that each power of two is split into
 * 64 buckets, so a reported percentile is within 1/128 (< 0.8 %) of a recorded value. Min, max and
 * mean are exact.
 */

/** Sub-bucket bits: 2^(SUB_BITS-1) buckets per power of two above the exact range. */
const SUB_BITS = 7;
const HALF = 1 << (SUB_BITS - 1); // 64
const EXACT = 1 << SUB_BITS; // 128: values below are their own bucket
/** Largest value kept apart (µs): 2^31 µs ≈ 36 min; larger values are clamped into the top bucket. */
const MAX_VALUE = 2 ** 31 - 1;
const BUCKETS = EXACT + (31 - SUB_BITS + 1) * HALF;

/** Percentiles of a latency distribution in milliseconds (what reports print). */
export interface LatencySummary {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Bucket of a non-negative integer value. */
export function bucketOf(value: number): number {
  if (value < EXACT) return value;
  const v = Math.min(value, MAX_VALUE);
  const shift = 31 - Math.clz32(v) - (SUB_BITS - 1); // ≥ 1: v >> shift lands in [HALF, EXACT)
  return EXACT + (shift - 1) * HALF + ((v >>> shift) - HALF);
}

/** The range [low, high] of values that fall in a bucket. */
export function bucketRange(bucket: number): { low: number; high: number } {
  if (bucket < EXACT) return { low: bucket, high: bucket };
  const shift = Math.floor((bucket - EXACT) / HALF) + 1;
  const mantissa = ((bucket - EXACT) % HALF) + HALF;
  return { low: mantissa * 2 ** shift, high: (mantissa + 1) * 2 ** shift - 1 };
}

/**
 * The nearest-rank of percentile `q` among `n` values (1-based): the smallest rank with at least
 * q % of the values at or below it. In thousandths of a percent, in integers: `(q / 100) * n` in
 * floating point is one rank too high whenever it should be whole but comes out a hair above (p99.9
 * of 1,000 values was the 1,000th, the maximum, not the 999th).
 */
export function nearestRank(q: number, n: number): number {
  return Math.max(1, Math.ceil((Math.round(q * 1000) * n) / 100_000));
}

/**
 * The nearest-rank percentile of sorted values: the smallest value with at least q % of the values
 * at or below it. The reference definition the histogram approximates (and tests compare against).
 */
export function percentileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = nearestRank(q, sorted.length);
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

/** A latency histogram in microseconds. */
export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  private n = 0;
  private sum = 0;
  private lowest = Infinity;
  private highest = 0;

  get count(): number {
    return this.n;
  }

  /** Records one latency in milliseconds (fractional). */
  recordMs(ms: number): void {
    this.recordUs(Math.max(0, Math.round(ms * 1000)));
  }

  /** Records one latency in whole microseconds. */
  recordUs(us: number): void {
    this.counts[bucketOf(us)]! += 1;
    this.n += 1;
    this.sum += us;
    if (us < this.lowest) this.lowest = us;
    if (us > this.highest) this.highest = us;
  }

  /** Adds every value of another histogram to this one. */
  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.n += other.n;
    this.sum += other.sum;
    this.lowest = Math.min(this.lowest, other.lowest);
    this.highest = Math.max(this.highest, other.highest);
  }

  /** Nearest-rank percentile in µs; the middle of its bucket, clamped to the exact min and max. */
  percentileUs(q: number): number {
    if (this.n === 0) return 0;
    const rank = nearestRank(q, this.n);
    if (rank >= this.n) return this.highest;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const { low, high } = bucketRange(i);
        return Math.min(this.highest, Math.max(this.lowest, Math.round((low + high) / 2)));
      }
    }
    return this.highest;
  }

  /** Percentiles in milliseconds, rounded to µs. */
  summary(): LatencySummary {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.n,
      min: this.n === 0 ? 0 : ms(this.lowest),
      mean: this.n === 0 ? 0 : ms(this.sum / this.n),
      p50: ms(this.percentileUs(50)),
      p90: ms(this.percentileUs(90)),
      p99: ms(this.percentileUs(99)),
      p999: ms(this.percentileUs(99.9)),
      max: ms(this.highest),
    };
  }
}
