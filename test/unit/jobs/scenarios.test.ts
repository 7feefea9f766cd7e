import t from 'tap';
import {
  buyerSeed,
  DEFAULT_SCENARIO_SETTINGS,
  ScenarioPlanner,
  seatList,
  SCALPERS,
  type BuyerPlan,
  type InventoryView,
  type ScenarioName,
} from '../../../src/jobs/stress/scenarios.js';
import { UsageError } from '../../../src/jobs/options.js';
import { Random } from '../../../src/jobs/stress/random.js';

const inventory: InventoryView = {
  sections: [
    {
      id: 'A',
      rows: [
        { id: '1', seats: 10 },
        { id: '2', seats: 10 },
      ],
    },
    { id: 'B', rows: [{ id: '1', seats: 20 }] },
  ],
  pools: [{ id: 'GA', capacity: 100 }],
};
const planner = (scenario: ScenarioName, extra: object = {}, seed = 7) =>
  new ScenarioPlanner(inventory, { ...DEFAULT_SCENARIO_SETTINGS, scenario, ...extra }, seed, 'run1');

t.test('seat ids follow the layout, best first', async (t) => {
  const seats = seatList(inventory);
  t.equal(seats.length, 40);
  t.same(seats.slice(0, 3), ['A-1-1', 'A-1-2', 'A-1-3']);
  t.equal(seats[10], 'A-2-1');
  t.equal(seats[39], 'B-1-20');
});

t.test('hot seat: every buyer wants the same seat, as a distinct customer', async (t) => {
  const p = planner('hot-seat');
  const plans = Array.from({ length: 100 }, (_, i) => p.plan(i));
  t.ok(plans.every((b) => b.kind === 'reserve' && b.seats.length === 1 && b.seats[0] === 'A-1-1'));
  t.equal(new Set(plans.map((b) => b.customer)).size, 100);
  t.equal(planner('hot-seat', { seat: 'B-1-7' }).plan(3).kind, 'reserve');
  t.same((planner('hot-seat', { seat: 'B-1-7' }).plan(3) as { seats: readonly string[] }).seats, ['B-1-7']);
  t.throws(() => planner('hot-seat', { seat: 'Z-9-9' }), /no seat Z-9-9/);
});

t.test('plans depend only on seed and buyer index', async (t) => {
  const a = planner('mixed', {}, 42);
  const b = planner('mixed', {}, 42);
  const forward = Array.from({ length: 200 }, (_, i) => a.plan(i));
  const backward = Array.from({ length: 200 }, (_, i) => b.plan(199 - i)).reverse();
  t.same(forward, backward, 'order of planning does not matter');
  const other = Array.from({ length: 200 }, (_, i) => planner('mixed', {}, 43).plan(i));
  t.notSame(forward, other, 'another seed, other buyers');
  t.not(buyerSeed(1, 2), buyerSeed(2, 1));
});

t.test('flash sale: seats from the first N, attempts, think time and confirm rate', async (t) => {
  const p = planner('flash-sale', { seatLimit: 15, attempts: 2, thinkMs: { min: 10, max: 20 }, confirmRate: 0.7 });
  t.equal(p.seatCount, 15);
  const plans = Array.from({ length: 5000 }, (_, i) => p.plan(i)) as Extract<BuyerPlan, { kind: 'hold-seats' }>[];
  const allowed = new Set(seatList(inventory).slice(0, 15));
  t.ok(plans.every((b) => b.kind === 'hold-seats' && b.seats.length === 2 && b.seats.every((s) => allowed.has(s))));
  t.ok(plans.every((b) => b.then.thinkMs >= 10 && b.then.thinkMs <= 20));
  const confirmed = plans.filter((b) => b.then.action === 'confirm').length / plans.length;
  t.ok(Math.abs(confirmed - 0.7) < 0.03, `confirm share ${confirmed} ≈ 0.7`);
  t.ok(plans.filter((b) => b.then.action !== 'confirm').every((b) => b.then.action === 'release'));
  const expire = planner('flash-sale', { confirmRate: 0, abandon: 'expire' }).plan(1) as Extract<BuyerPlan, { kind: 'hold-seats' }>;
  t.equal(expire.then.action, 'expire');
  const oneShot = planner('flash-sale', { oneShot: true }).plan(1);
  t.equal(oneShot.kind, 'reserve', 'one-shot flash sale reserves');
});

t.test('flash sale skew draws the best seats more often', async (t) => {
  const count = (skew: number) => {
    const p = planner('flash-sale', { skew, attempts: 1 });
    let best = 0;
    for (let i = 0; i < 4000; i++)
      if (['A-1-1', 'A-1-2', 'A-1-3', 'A-1-4'].includes((p.plan(i) as { seats: readonly string[] }).seats[0]!)) best++;
    return best / 4000;
  };
  const uniform = count(0);
  t.ok(Math.abs(uniform - 0.1) < 0.02, `uniform: first 10 % of seats draw ${uniform}`);
  t.ok(count(1) > 0.25, 'skew 1: the first 10 % draw over a quarter');
});

t.test('best available asks for 2 to 6 adjacent seats in a known section', async (t) => {
  const p = planner('best-available');
  const quantities = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const b = p.plan(i);
    if (b.kind !== 'hold-best') return t.fail(`unexpected ${b.kind}`);
    quantities.add(b.quantity);
    if (!['A', 'B'].includes(b.section)) t.fail(`unknown section ${b.section}`);
  }
  t.same([...quantities].sort(), [2, 3, 4, 5, 6]);
});

t.test('mixed: every kind of buyer, and scalpers sharing a few identities', async (t) => {
  const p = planner('mixed');
  const plans = Array.from({ length: 4000 }, (_, i) => p.plan(i));
  const kinds = new Set(plans.map((b) => b.kind));
  t.same([...kinds].sort(), ['hold-best', 'hold-pool', 'hold-seats', 'reserve']);
  const scalpers = plans.filter((b) => b.customer.includes('scalper'));
  t.ok(scalpers.length > 100, `${scalpers.length} scalper buyers`);
  t.ok(new Set(scalpers.map((b) => b.customer)).size <= SCALPERS);
  t.ok(
    scalpers.every((b) => b.kind !== 'reserve' && b.kind !== 'hold-seats' && b.then.action === 'confirm'),
    'scalpers confirm',
  );
  const gaOnly = new ScenarioPlanner(
    { sections: [], pools: [{ id: 'GA', capacity: 10 }] },
    { ...DEFAULT_SCENARIO_SETTINGS, scenario: 'mixed' },
    1,
    'r',
  );
  t.ok(
    Array.from({ length: 50 }, (_, i) => gaOnly.plan(i)).every((b) => b.kind === 'hold-pool'),
    'a GA-only event gets pool buyers',
  );
});

t.test('settings are checked', async (t) => {
  t.throws(() => planner('flash-sale', { confirmRate: 2 }), /confirm rate/);
  t.throws(() => planner('best-available', { quantity: { min: 3, max: 2 } }), /quantity/);
  t.throws(() => planner('flash-sale', { attempts: 0 }), /attempts/);
  t.throws(
    () => new ScenarioPlanner({ sections: [], pools: [] }, { ...DEFAULT_SCENARIO_SETTINGS, scenario: 'flash-sale' }, 1, 'r'),
    /needs assigned seats/,
  );
});

t.test('what the event cannot give is bad usage, naming the value and what would do', async (t) => {
  const refused = (make: () => unknown) => {
    try {
      make();
    } catch (error) {
      return error;
    }
    return t.fail('not refused');
  };
  const seat = refused(() => planner('hot-seat', { seat: 'Z-9-9' }));
  t.ok(seat instanceof UsageError, 'an unknown --seat is a UsageError (exit 2, one line), not a plain Error');
  t.equal(
    (seat as Error).message,
    '--seat: the event has no seat Z-9-9 (seat ids are SECTION-ROW-NUMBER, from A-1-1 to B-1-20; sections A, B)',
  );
  const gaOnly = { sections: [], pools: [{ id: 'GA', capacity: 10 }] };
  for (const scenario of ['hot-seat', 'flash-sale', 'best-available'] as const) {
    const error = refused(() => new ScenarioPlanner(gaOnly, { ...DEFAULT_SCENARIO_SETTINGS, scenario }, 1, 'r'));
    t.ok(error instanceof UsageError, scenario);
    t.equal(
      (error as Error).message,
      `--scenario ${scenario} needs assigned seats; the event has none (only general-admission pools: GA): use --scenario mixed`,
    );
  }
  const empty = refused(
    () => new ScenarioPlanner({ sections: [], pools: [] }, { ...DEFAULT_SCENARIO_SETTINGS, scenario: 'mixed' }, 1, 'r'),
  );
  t.ok(empty instanceof UsageError);
  t.match((empty as Error).message, /the event has none and no pools either/);
});

t.test('the random source is deterministic and covers its ranges', async (t) => {
  const a = new Random(1);
  const b = new Random(1);
  const xs = Array.from({ length: 1000 }, () => a.next());
  t.same(
    xs,
    Array.from({ length: 1000 }, () => b.next()),
  );
  t.ok(xs.every((x) => x >= 0 && x < 1));
  const ints = new Set(Array.from({ length: 1000 }, () => a.int(2, 6)));
  t.same([...ints].sort(), [2, 3, 4, 5, 6]);
  t.equal(
    a.weighted([
      ['x', 0],
      ['y', 1],
    ]),
    'y',
  );
});
