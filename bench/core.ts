/**
 * `npm run bench:core` — the inventory core through the shard actor, on one core, no I/O.
 *
 *   holds      single-seat holds, every seat of a 100,000-seat shard once      target ≥ 200,000/s
 *   hot seat   100,000 one-shot reserves of ONE seat: exactly one winner       target ≥ 200,000 decisions/s
 *   best       best-available holds of 4 in a 5,000-seat section              target ≥ 50,000/s
 *   heap       heap per 100,000 seats, sold out in 25,000 holds of 4           target ≤ 50 MB
 *
 * Method: commands are built before the clock starts (they arrive decoded from NATS; decoding is
 * not the shard's work), then sent one by one with `actor.send()` to a shard actor created by
 * `createShardActor` around a fresh inventory, each answered through its `reply` callback. Each
 * measure runs 2 warm-up rounds and 7 measured rounds, the measures interleaved round by round so
 * a neighbour's burst of load hits them alike; the table shows the median (min–max).
 * The clock is fixed, so no hold expires mid-run. For scale, the same loop against a bare XState
 * actor with a trivial action is reported as the baseline (a machine's ceiling varies with load:
 * compare ratios on a busy host). Heap is measured with `gc()` before and after (exposed at
 * runtime via v8 flags, no re-exec needed).
 *
 * `--json` prints one object; `--strict` exits 1 when a target is missed; `--rounds N` to change
 * the measured rounds.
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { cpus, loadavg } from 'node:os';
import { createActor, setup } from 'xstate';
import { median } from './median.js';
import {
  createShardActor,
  resolveShardSettings,
  shardMap,
  ShardInventory,
  validateLayout,
  type Layout,
  type NewId,
  type ShardCommand,
  type ShardMachineEvent,
  type ShardResult,
} from '../src/domain/index.js';

const { values: options } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '7' },
  },
});
const ROUNDS = Number(options.rounds);
const WARMUP = 2;
const NOW = 1_700_000_000_000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Measure {
  readonly name: string;
  readonly unit: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** Target and whether more is better. */
  readonly target?: { readonly value: number; readonly atLeast: boolean };
  readonly note?: string;
}

function layoutOf(input: unknown): Layout {
  const validation = validateLayout(input);
  if (!validation.ok) throw new Error(JSON.stringify(validation.errors));
  return validation.layout;
}

/** Ids as an engine could make them cheaply: a prefix and a counter (see the note in the report on random UUIDs). */
function sequentialIds(): NewId {
  let n = 0;
  return (kind) => (kind === 'hold' ? 'h' : 'r') + ++n;
}

function progress(text: string): void {
  if (!options.json) process.stderr.write(`  ${text}…\n`);
}

/** A throughput measure: `round` returns [operations, milliseconds]. */
interface RateScenario {
  readonly name: string;
  readonly unit: string;
  readonly target: number | undefined;
  readonly note: string | undefined;
  readonly round: () => [number, number];
  readonly rates: number[];
}

const scenarios: RateScenario[] = [];

function rate(name: string, unit: string, target: number | undefined, round: () => [number, number], note?: string): RateScenario {
  const scenario = { name, unit, target, note, round, rates: [] };
  scenarios.push(scenario);
  return scenario;
}

/**
 * Runs every scenario WARMUP + ROUNDS times, interleaved (round 1 of each, then round 2 of each,
 * …), so a neighbour's burst of load on a shared host hits all of them alike.
 */
function runScenarios(): void {
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    progress(i < WARMUP ? `warm-up round ${i + 1}/${WARMUP}` : `round ${i - WARMUP + 1}/${ROUNDS}`);
    for (const scenario of scenarios) {
      const [operations, ms] = scenario.round();
      if (i >= WARMUP) scenario.rates.push((operations / ms) * 1000);
      gc();
    }
  }
}

function measureOf(scenario: RateScenario): Measure {
  return {
    name: scenario.name,
    unit: scenario.unit,
    median: median(scenario.rates),
    min: Math.min(...scenario.rates),
    max: Math.max(...scenario.rates),
    ...(scenario.target === undefined ? {} : { target: { value: scenario.target, atLeast: true } }),
    ...(scenario.note === undefined ? {} : { note: scenario.note }),
  };
}

const settings = resolveShardSettings({ customerLimit: 8, holdTtlMs: 600_000 });
const clock = (): number => NOW;
const noPersist = (): void => {};

// --- the bare XState baseline ---------------------------------------------------------------
const bareMachine = setup({
  types: {} as { context: { count: number[] }; events: ShardMachineEvent },
  actions: {
    trivial: ({ context, event }) => {
      context.count[0]!++;
      if (event.type === 'COMMAND') event.reply({ ok: true, type: 'released', holdId: '' }, []);
    },
  },
}).createMachine({ context: { count: [0] }, initial: 'serving', states: { serving: { on: { COMMAND: { actions: 'trivial' } } } } });

// --- single-seat holds over a 100,000-seat shard --------------------------------------------
const bigMap = shardMap(
  layoutOf({ sections: [{ id: 'A', rows: Array.from({ length: 1000 }, (_, i) => ({ id: String(i + 1), seats: 100 })) }] }),
  1,
);
const bigSeats = bigMap.seatsOfShard(0);
let won = 0;
const count = (result: ShardResult): void => {
  if (result.ok) won++;
};
const holdEvents: ShardMachineEvent[] = bigSeats.map((seat, i) => ({
  type: 'COMMAND',
  command: { type: 'hold', key: `k${i}`, customer: `customer-${i >> 3}`, seats: [seat] },
  reply: count,
}));

function sendAll(actor: { send(event: ShardMachineEvent): void }, events: readonly ShardMachineEvent[]): number {
  const started = performance.now();
  for (let i = 0; i < events.length; i++) actor.send(events[i]!);
  return performance.now() - started;
}

const baseline = rate('bare XState actor, trivial action (baseline)', 'events/s', undefined, () => {
  const actor = createActor(bareMachine).start();
  const ms = sendAll(actor, holdEvents);
  actor.stop();
  return [holdEvents.length, ms];
});

const holds = rate('single-seat holds through the actor', 'holds/s', 200_000, () => {
  const inventory = ShardInventory.create({ map: bigMap, shard: 0 }, settings, sequentialIds());
  const actor = createShardActor({ inventory, clock, persistExpired: noPersist });
  won = 0;
  const ms = sendAll(actor, holdEvents);
  actor.stop();
  if (won !== holdEvents.length) throw new Error(`expected every hold to win, ${won} did`);
  return [holdEvents.length, ms];
});

const decideOnly = rate(
  'single-seat holds, decide() without the actor',
  'holds/s',
  undefined,
  () => {
    const inventory = ShardInventory.create({ map: bigMap, shard: 0 }, settings, sequentialIds());
    const started = performance.now();
    for (let i = 0; i < holdEvents.length; i++) inventory.decide((holdEvents[i] as { command: ShardCommand }).command, NOW);
    return [holdEvents.length, performance.now() - started];
  },
  'for reference',
);

// --- hot seat ----------------------------------------------------------------------------------
const hotMap = shardMap(layoutOf({ sections: [{ id: 'A', rows: [{ id: '1', seats: 10 }] }] }), 1);
const HOT_ATTEMPTS = 100_000;
let winners = 0;
let losers = 0;
const hotReply = (result: ShardResult): void => {
  if (result.ok) winners++;
  else if (result.type === 'unavailable') losers++;
};
const hotEvents: ShardMachineEvent[] = Array.from({ length: HOT_ATTEMPTS }, (_, i) => ({
  type: 'COMMAND',
  command: { type: 'reserve', key: `k${i}`, customer: `customer-${i}`, seat: 'A-1-7' },
  reply: hotReply,
}));
const hot = rate('hot seat: 100,000 reserves of one seat', 'decisions/s', 200_000, () => {
  const inventory = ShardInventory.create({ map: hotMap, shard: 0 }, settings, sequentialIds());
  const actor = createShardActor({ inventory, clock, persistExpired: noPersist });
  winners = 0;
  losers = 0;
  const ms = sendAll(actor, hotEvents);
  actor.stop();
  if (winners !== 1 || losers !== HOT_ATTEMPTS - 1) throw new Error(`hot seat: ${winners} winners, ${losers} losers`);
  return [HOT_ATTEMPTS, ms];
});

// --- best-available ----------------------------------------------------------------------------
const sectionMap = shardMap(
  layoutOf({ sections: [{ id: 'A', rows: Array.from({ length: 50 }, (_, i) => ({ id: String(i + 1), seats: 100 })) }] }),
  1,
);
const FILLS = 20;
const PER_FILL = 1250; // 5,000 seats / 4
let heldIds: string[] = [];
const bestReply = (result: ShardResult): void => {
  if (result.type !== 'held') throw new Error(`best-available failed: ${JSON.stringify(result)}`);
  heldIds.push(result.hold.holdId);
};
const ignore = (): void => {};
const best = rate(
  'best-available holds of 4 in a 5,000-seat section',
  'holds/s',
  50_000,
  () => {
    const inventory = ShardInventory.create({ map: sectionMap, shard: 0 }, settings, sequentialIds());
    const actor = createShardActor({ inventory, clock, persistExpired: noPersist });
    let ms = 0;
    let key = 0;
    for (let fill = 0; fill < FILLS; fill++) {
      heldIds = [];
      const events: ShardMachineEvent[] = Array.from({ length: PER_FILL }, (_, i) => ({
        type: 'COMMAND',
        command: { type: 'hold-best', key: `k${key++}`, customer: `customer-${i}`, section: 'A', quantity: 4 },
        reply: bestReply,
      }));
      ms += sendAll(actor, events); // the section fills up completely, then…
      const releases: ShardMachineEvent[] = heldIds.map((holdId, i) => ({
        type: 'COMMAND',
        command: { type: 'release', key: `k${key++}`, customer: `customer-${i}`, holdId },
        reply: ignore,
      }));
      sendAll(actor, releases); // …is emptied again, untimed
    }
    actor.stop();
    return [FILLS * PER_FILL, ms];
  },
  'section filled and emptied 20 times; only the holds are timed',
);

runScenarios();

// --- heap ------------------------------------------------------------------------------------------
function usedAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Heap an inventory holds: used with it, minus used once it is dropped (robust to stale stack slots). */
function heap(name: string, fill: (inventory: ShardInventory) => void, target?: number, note?: string): Measure {
  progress(name);
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    let inventory: ShardInventory | undefined = ShardInventory.create({ map: bigMap, shard: 0 }, settings, sequentialIds());
    fill(inventory);
    const withIt = usedAfterGc();
    if (inventory.stats().seats !== 100_000) throw new Error('unreachable');
    inventory = undefined;
    samples.push((withIt - usedAfterGc()) / 1024 / 1024);
  }
  return {
    name,
    unit: 'MB',
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    ...(target === undefined ? {} : { target: { value: target, atLeast: false } }),
    ...(note === undefined ? {} : { note }),
  };
}

const heapEmpty = heap('heap per 100,000 seats, all available', () => {}, undefined, 'seat state alone');
const heapSoldOut = heap(
  'heap per 100,000 seats, sold out in 25,000 holds of 4',
  (inventory) => {
    for (let i = 0; i < 25_000; i++) {
      const { result } = inventory.decide(
        { type: 'hold-best', key: `key-${i}`, customer: `customer-${i >> 1}`, section: 'A', quantity: 4 },
        NOW,
      );
      if (!result.ok) throw new Error(JSON.stringify(result));
    }
  },
  50,
  'holds, their keys and results remembered',
);
const heapSingles = heap(
  'heap per 100,000 seats, in 100,000 single-seat holds',
  (inventory) => {
    for (let i = 0; i < bigSeats.length; i++) {
      inventory.decide({ type: 'hold', key: `key-${i}`, customer: `customer-${i >> 3}`, seats: [bigSeats[i]!] }, NOW);
    }
  },
  undefined,
  'worst case: one hold and one remembered key per seat',
);

// --- report ----------------------------------------------------------------------------------------
const measures = [...[baseline, holds, decideOnly, hot, best].map(measureOf), heapEmpty, heapSoldOut, heapSingles];
const actorVsBaseline = median(holds.rates) / median(baseline.rates);
const passed = (m: Measure): boolean | undefined =>
  m.target === undefined ? undefined : m.target.atLeast ? m.median >= m.target.value : m.median <= m.target.value;
const allPassed = measures.every((m) => passed(m) !== false);
const environment = {
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  cpus: cpus().length,
  loadavg: loadavg().map((l) => Number(l.toFixed(2))),
};

if (options.json) {
  process.stdout.write(
    `${JSON.stringify({
      bench: 'core',
      environment,
      rounds: ROUNDS,
      warmup: WARMUP,
      results: measures.map((m) => ({ ...m, pass: passed(m) })),
      actorVsBaseline,
      pass: allPassed,
    })}\n`,
  );
} else {
  const format = (m: Measure, v: number): string => (m.unit === 'MB' ? v.toFixed(1) : Math.round(v).toLocaleString('en-US'));
  const rows = measures.map((m) => [
    m.name,
    `${format(m, m.median)} ${m.unit}`,
    `${format(m, m.min)}–${format(m, m.max)}`,
    m.target === undefined ? '' : `${m.target.atLeast ? '≥' : '≤'} ${format(m, m.target.value)}`,
    passed(m) === undefined ? (m.note ?? '') : passed(m) ? 'PASS' : 'FAIL',
  ]);
  const header = ['measure', 'median', 'range', 'target', 'result / note'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 1 || i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(`\nSentinel core benchmark — node ${environment.node}, ${environment.cpu}, load ${environment.loadavg.join(' ')}`);
  console.log(`${ROUNDS} rounds after ${WARMUP} warm-up rounds, median (min–max); one thread\n`);
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  console.log(`\nsingle-seat holds through the actor / bare XState actor: ${actorVsBaseline.toFixed(2)}`);
  console.log(allPassed ? 'all targets met' : 'some targets missed (see FAIL; on a busy host compare with the baseline line)');
}
process.exitCode = options.strict && !allPassed ? 1 : 0;
