/**
 * Stress scenarios as pure plans: what each buyer of a run wants, derived from the event's
 * inventory, the scenario's settings and a seed. A buyer's plan depends only on (seed, buyer
 * index), never on the order buyers are started in, so closed- and open-loop runs of the same seed
 * ask for the same things, and two systems can be driven with identical demand.
 */
import { fmix32 } from '../../hash.js';
import { UsageError } from '../options.js';
import { Random } from './random.js';

export const SCENARIOS = ['hot-seat', 'flash-sale', 'best-available', 'mixed'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** The inventory a stress run sells, as the API describes it (sections and rows best first). */
export interface InventoryView {
  readonly sections: readonly { readonly id: string; readonly rows: readonly { readonly id: string; readonly seats: number }[] }[];
  readonly pools: readonly { readonly id: string; readonly capacity: number }[];
}

/** What a buyer does once a hold succeeded. */
export interface AfterHold {
  readonly thinkMs: number;
  /** Confirm it, release it (DELETE), or walk away and let it expire. */
  readonly action: 'confirm' | 'release' | 'expire';
}

/** One buyer's intent. `seats` lists the seats tried in order: the next one after each 409. */
export type BuyerPlan =
  | { readonly kind: 'reserve'; readonly customer: string; readonly seats: readonly string[] }
  | { readonly kind: 'hold-seats'; readonly customer: string; readonly seats: readonly string[]; readonly then: AfterHold }
  | { readonly kind: 'hold-best'; readonly customer: string; readonly section: string; readonly quantity: number; readonly then: AfterHold }
  | { readonly kind: 'hold-pool'; readonly customer: string; readonly pool: string; readonly quantity: number; readonly then: AfterHold };

/** Knobs of the scenarios (see `sentinel stress --help`). */
export interface ScenarioSettings {
  readonly scenario: ScenarioName;
  /** hot-seat: the seat everyone wants (default: the first seat of the layout). */
  readonly seat?: string;
  /** flash-sale: sell only the first N seats of the layout (default: all). */
  readonly seatLimit?: number;
  /** flash-sale: bias of seat choice toward the best seats (0 = uniform). */
  readonly skew: number;
  /** flash-sale: one-shot reserve (hold + confirm in one request) instead of hold, think, confirm. */
  readonly oneShot: boolean;
  /** Seats a flash-sale buyer tries before giving up (each 409 moves to the next). */
  readonly attempts: number;
  /** Think time between hold and confirm, uniform in [min, max] ms. */
  readonly thinkMs: { readonly min: number; readonly max: number };
  /** Share of buyers who confirm their hold; the others abandon it. */
  readonly confirmRate: number;
  /** How abandoning buyers abandon. */
  readonly abandon: 'release' | 'expire';
  /** best-available: seats per request, uniform in [min, max]. */
  readonly quantity: { readonly min: number; readonly max: number };
}

export const DEFAULT_SCENARIO_SETTINGS: Omit<ScenarioSettings, 'scenario'> = Object.freeze({
  skew: 0,
  oneShot: false,
  attempts: 3,
  thinkMs: Object.freeze({ min: 200, max: 1000 }),
  confirmRate: 0.8,
  abandon: 'release' as const,
  quantity: Object.freeze({ min: 2, max: 6 }),
});

/** Mixed-scenario shares: seat picks, best-available, GA pools, one-shot clicks and scalpers. */
export const MIXED_WEIGHTS = Object.freeze({ seats: 0.45, best: 0.25, pool: 0.15, reserve: 0.1, scalper: 0.05 });
/** Mixed scenario: scalpers share this many customer identities and hammer them concurrently. */
export const SCALPERS = 4;

/** A 32-bit hash of (seed, index): the seed of one buyer's own random source. */
export function buyerSeed(seed: number, index: number): number {
  return fmix32((fmix32(seed) + Math.imul(index + 1, 0x9e3779b9)) >>> 0);
}

/** Every seat id of a layout, best first (sections, then rows, then seat numbers). */
export function seatList(inventory: InventoryView): string[] {
  const seats: string[] = [];
  for (const section of inventory.sections) {
    for (const row of section.rows) for (let n = 1; n <= row.seats; n++) seats.push(`${section.id}-${row.id}-${n}`);
  }
  return seats;
}

/** Ids for a message: the first few, then an ellipsis. */
const list = (ids: readonly string[], max = 10) => (ids.length > max ? `${ids.slice(0, max).join(', ')}, …` : ids.join(', '));

/** The planner of a run: `plan(i)` is buyer i's intent. Throws when the scenario cannot run on the inventory. */
export class ScenarioPlanner {
  private readonly seats: readonly string[];
  private readonly hotSeat: string;

  constructor(
    private readonly inventory: InventoryView,
    private readonly settings: ScenarioSettings,
    private readonly seed: number,
    /** Customer id prefix, unique per run: customers are `<prefix>-<i>`. */
    private readonly customerPrefix: string,
  ) {
    const all = seatList(inventory);
    this.seats = settings.seatLimit === undefined ? all : all.slice(0, settings.seatLimit);
    // What the event cannot give is bad usage (the flags, or the event, are wrong), said before any load.
    const needsSeats = settings.scenario !== 'mixed' || inventory.pools.length === 0;
    if (needsSeats && this.seats.length === 0) {
      const pools = inventory.pools.map((p) => p.id);
      throw new UsageError(
        `--scenario ${settings.scenario} needs assigned seats; the event has none ` +
          (pools.length > 0 ? `(only general-admission pools: ${list(pools)}): use --scenario mixed` : 'and no pools either'),
      );
    }
    const hot = settings.seat ?? this.seats[0] ?? '';
    if (settings.scenario === 'hot-seat' && settings.seat !== undefined && !all.includes(settings.seat)) {
      throw new UsageError(
        `--seat: the event has no seat ${settings.seat} (seat ids are SECTION-ROW-NUMBER, from ${all[0]} to ${all.at(-1)}; ` +
          `sections ${list(inventory.sections.map((s) => s.id))})`,
      );
    }
    this.hotSeat = hot;
    if (settings.confirmRate < 0 || settings.confirmRate > 1) throw new Error('confirm rate must be in [0, 1]');
    if (settings.quantity.min < 1 || settings.quantity.max < settings.quantity.min)
      throw new Error('quantity must be a range of at least 1');
    if (settings.thinkMs.min < 0 || settings.thinkMs.max < settings.thinkMs.min) throw new Error('think time must be a range ≥ 0');
    if (settings.attempts < 1) throw new Error('attempts must be at least 1');
  }

  /** Seats this run sells from (flash-sale, mixed). */
  get seatCount(): number {
    return this.seats.length;
  }

  plan(index: number): BuyerPlan {
    const random = new Random(buyerSeed(this.seed, index));
    const customer = `${this.customerPrefix}-${index}`;
    switch (this.settings.scenario) {
      case 'hot-seat':
        return { kind: 'reserve', customer, seats: [this.hotSeat] };
      case 'flash-sale':
        return this.flashSaleBuyer(random, customer);
      case 'best-available':
        return this.bestAvailableBuyer(random, customer);
      case 'mixed':
        return this.mixedBuyer(random, customer);
    }
  }

  private pickSeats(random: Random): string[] {
    const picks: string[] = [];
    for (let a = 0; a < this.settings.attempts; a++) picks.push(this.seats[random.skewedIndex(this.seats.length, this.settings.skew)]!);
    return picks;
  }

  private afterHold(random: Random): AfterHold {
    const { thinkMs, confirmRate, abandon } = this.settings;
    return { thinkMs: random.int(thinkMs.min, thinkMs.max), action: random.chance(confirmRate) ? 'confirm' : abandon };
  }

  private flashSaleBuyer(random: Random, customer: string): BuyerPlan {
    const seats = this.pickSeats(random);
    if (this.settings.oneShot) return { kind: 'reserve', customer, seats };
    return { kind: 'hold-seats', customer, seats, then: this.afterHold(random) };
  }

  private bestAvailableBuyer(random: Random, customer: string): BuyerPlan {
    const sections = this.inventory.sections;
    // Better sections draw more buyers.
    const section = sections[random.skewedIndex(sections.length, 1)]!.id;
    const { min, max } = this.settings.quantity;
    return { kind: 'hold-best', customer, section, quantity: random.int(min, max), then: this.afterHold(random) };
  }

  private mixedBuyer(random: Random, customer: string): BuyerPlan {
    const hasSeats = this.seats.length > 0;
    const hasPools = this.inventory.pools.length > 0;
    const kind = random.weighted<keyof typeof MIXED_WEIGHTS>([
      ['seats', hasSeats ? MIXED_WEIGHTS.seats : 0],
      ['best', hasSeats ? MIXED_WEIGHTS.best : 0],
      ['pool', hasPools ? MIXED_WEIGHTS.pool : 0],
      ['reserve', hasSeats ? MIXED_WEIGHTS.reserve : 0],
      ['scalper', MIXED_WEIGHTS.scalper],
    ]);
    switch (kind) {
      case 'seats':
        return { kind: 'hold-seats', customer, seats: this.pickSeats(random), then: this.afterHold(random) };
      case 'best':
        return this.bestAvailableBuyer(random, customer);
      case 'pool':
        return this.poolBuyer(random, customer);
      case 'reserve':
        return { kind: 'reserve', customer, seats: this.pickSeats(random) };
      case 'scalper': {
        // Few identities, many concurrent holds: the per-customer limit must hold under this.
        const scalper = `${this.customerPrefix}-scalper-${random.int(0, SCALPERS - 1)}`;
        const plan =
          hasPools && (!hasSeats || random.chance(0.5)) ? this.poolBuyer(random, scalper) : this.bestAvailableBuyer(random, scalper);
        return plan.kind === 'hold-best' || plan.kind === 'hold-pool'
          ? { ...plan, then: { thinkMs: plan.then.thinkMs, action: 'confirm' } }
          : plan;
      }
    }
  }

  private poolBuyer(random: Random, customer: string): BuyerPlan {
    const pools = this.inventory.pools;
    const pool = pools[random.int(0, pools.length - 1)]!.id;
    return { kind: 'hold-pool', customer, pool, quantity: random.int(1, 4), then: this.afterHold(random) };
  }
}
