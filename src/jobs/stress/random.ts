/**
 * A small seeded random source (mulberry32). A stress run is reproducible from its seed: the same
 * seed gives the same buyers choosing the same seats in the same order, so two designs (or two
 * builds) can be driven with exactly the same demand.
 */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /**
   * An index in [0, n) biased toward 0 (the best seats) by `skew` ≥ 0: 0 is uniform, 1 makes the
   * first 10 % of the seats draw about a third of the picks, 2 about half.
   */
  skewedIndex(n: number, skew: number): number {
    const u = this.next();
    return Math.min(n - 1, Math.floor(n * (skew === 0 ? u : u ** (1 + skew))));
  }

  /** One of `items` by weight (weights need not sum to 1). */
  weighted<T>(items: readonly (readonly [T, number])[]): T {
    const total = items.reduce((sum, [, w]) => sum + w, 0);
    let x = this.next() * total;
    for (const [item, w] of items) {
      x -= w;
      if (x < 0) return item;
    }
    return items[items.length - 1]![0];
  }
}
